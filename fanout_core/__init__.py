"""fanout-core: real-time WebSocket fan-out for AWS Lambda on one DynamoDB table."""

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
