"""fanout-core: real-time WebSocket fan-out for AWS Lambda on one DynamoDB table."""

import typing as _typing

from fanout_core._lazy import lazy_exports as _lazy_exports

if _typing.TYPE_CHECKING:
    from fanout_core.audience import Audience
    from fanout_core.config import FanoutConfig
    from fanout_core.errors import (
        ConfigError,
        FanoutError,
        InvalidConnectionIdError,
        InvalidEventError,
        InvalidKeyError,
        InvalidPrincipalError,
        InvalidRoomNameError,
        NotConnectedError,
        PayloadTooLargeError,
    )
    from fanout_core.fanout import DisconnectResult, Fanout
    from fanout_core.result import FanoutResult
    from fanout_core.store import ConnectionStore, Member, Page, SweepResult, Target

__all__ = [
    "Audience",
    "ConfigError",
    "ConnectionStore",
    "DisconnectResult",
    "Fanout",
    "FanoutConfig",
    "FanoutError",
    "FanoutResult",
    "InvalidConnectionIdError",
    "InvalidEventError",
    "InvalidKeyError",
    "InvalidPrincipalError",
    "InvalidRoomNameError",
    "Member",
    "NotConnectedError",
    "Page",
    "PayloadTooLargeError",
    "SweepResult",
    "Target",
]

_ERRORS = "fanout_core.errors"
_STORE = "fanout_core.store"
# Imported on first use: every module of the package imports this one first, and a
# light one (a poster, the store) must not bring the whole fan-out along (nor, for
# __version__, importlib.metadata).
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        "__version__": "fanout_core._version",
        "Audience": "fanout_core.audience",
        "ConfigError": _ERRORS,
        "ConnectionStore": _STORE,
        "DisconnectResult": "fanout_core.fanout",
        "Fanout": "fanout_core.fanout",
        "FanoutConfig": "fanout_core.config",
        "FanoutError": _ERRORS,
        "FanoutResult": "fanout_core.result",
        "InvalidConnectionIdError": _ERRORS,
        "InvalidEventError": _ERRORS,
        "InvalidKeyError": _ERRORS,
        "InvalidPrincipalError": _ERRORS,
        "InvalidRoomNameError": _ERRORS,
        "Member": _STORE,
        "NotConnectedError": _ERRORS,
        "Page": _STORE,
        "PayloadTooLargeError": _ERRORS,
        "SweepResult": _STORE,
        "Target": _STORE,
    },
)
