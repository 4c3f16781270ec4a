"""fanout-core: real-time WebSocket fan-out for AWS Lambda on one DynamoDB table.

The public surface: ``Fanout`` and its results, the configuration, the extension points (a
strategy, an access policy) and the errors. Everything else stays importable from its own
module (``fanout_core.store.ConnectionStore``, ``fanout_core.audience.Audience``, ...).
"""

import logging as _logging
import typing as _typing

from fanout_core._lazy import lazy_exports as _lazy_exports

# A library's logger: silent until the application (or, on Lambda, the handlers) gives it
# a handler.
_logging.getLogger("fanout_core").addHandler(_logging.NullHandler())

if _typing.TYPE_CHECKING:
    from fanout_core._version import __version__ as __version__
    from fanout_core.audience import (
        Page,
        Target,
    )
    from fanout_core.config import FanoutConfig
    from fanout_core.errors import (
        ConfigError,
        FanoutError,
        ForbiddenError,
        InvalidConnectionIdError,
        InvalidEventError,
        InvalidIdempotencyKeyError,
        InvalidKeyError,
        InvalidPrincipalError,
        InvalidRoomNameError,
        InvalidStrategyError,
        InvalidValueError,
        NotAMemberError,
        NotConnectedError,
        PayloadTooLargeError,
        PolicyError,
        RateLimitedError,
        UnknownStrategyError,
    )
    from fanout_core.fanout import (
        DisconnectResult,
        Fanout,
    )
    from fanout_core.policy import (
        AccessRequest,
        Decision,
        allow,
        deny,
    )
    from fanout_core.reads import Member
    from fanout_core.result import FanoutResult
    from fanout_core.strategy import FanoutStrategy

__all__ = [
    "AccessRequest",
    "ConfigError",
    "Decision",
    "DisconnectResult",
    "Fanout",
    "FanoutConfig",
    "FanoutError",
    "FanoutResult",
    "FanoutStrategy",
    "ForbiddenError",
    "InvalidConnectionIdError",
    "InvalidEventError",
    "InvalidIdempotencyKeyError",
    "InvalidKeyError",
    "InvalidPrincipalError",
    "InvalidRoomNameError",
    "InvalidStrategyError",
    "InvalidValueError",
    "Member",
    "NotAMemberError",
    "NotConnectedError",
    "Page",
    "PayloadTooLargeError",
    "PolicyError",
    "RateLimitedError",
    "Target",
    "UnknownStrategyError",
    "allow",
    "deny",
]

# Imported on first use: every module of the package imports this one first, and a
# light one (a poster, the store) must not bring the whole fan-out along (nor, for
# __version__, importlib.metadata).
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        "__version__": "fanout_core._version",
        "AccessRequest": "fanout_core.policy",
        "ConfigError": "fanout_core.errors",
        "Decision": "fanout_core.policy",
        "DisconnectResult": "fanout_core.fanout",
        "Fanout": "fanout_core.fanout",
        "FanoutConfig": "fanout_core.config",
        "FanoutError": "fanout_core.errors",
        "FanoutResult": "fanout_core.result",
        "FanoutStrategy": "fanout_core.strategy",
        "ForbiddenError": "fanout_core.errors",
        "InvalidConnectionIdError": "fanout_core.errors",
        "InvalidEventError": "fanout_core.errors",
        "InvalidIdempotencyKeyError": "fanout_core.errors",
        "InvalidKeyError": "fanout_core.errors",
        "InvalidPrincipalError": "fanout_core.errors",
        "InvalidRoomNameError": "fanout_core.errors",
        "InvalidStrategyError": "fanout_core.errors",
        "InvalidValueError": "fanout_core.errors",
        "Member": "fanout_core.reads",
        "NotAMemberError": "fanout_core.errors",
        "NotConnectedError": "fanout_core.errors",
        "Page": "fanout_core.audience",
        "PayloadTooLargeError": "fanout_core.errors",
        "PolicyError": "fanout_core.errors",
        "RateLimitedError": "fanout_core.errors",
        "Target": "fanout_core.audience",
        "UnknownStrategyError": "fanout_core.errors",
        "allow": "fanout_core.policy",
        "deny": "fanout_core.policy",
    },
)
