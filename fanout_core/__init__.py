"""fanout-core: real-time WebSocket fan-out for AWS Lambda on one DynamoDB table."""

from fanout_core.config import FanoutConfig
from fanout_core.errors import (
    ConfigError,
    FanoutError,
    InvalidConnectionIdError,
    InvalidKeyError,
    InvalidRoomNameError,
    NotConnectedError,
)
from fanout_core.store import ConnectionStore, Page, SweepResult, Target

__all__ = [
    "ConfigError",
    "ConnectionStore",
    "FanoutConfig",
    "FanoutError",
    "InvalidConnectionIdError",
    "InvalidKeyError",
    "InvalidRoomNameError",
    "NotConnectedError",
    "Page",
    "SweepResult",
    "Target",
]
