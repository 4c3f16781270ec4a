"""A CDK construct for fanout-core: ``pip install fanout-core[cdk]``.

No handler imports it, and the Lambda artifact leaves it out.
"""

try:
    import aws_cdk as _aws_cdk  # noqa: F401
except ImportError as missing:  # pragma: no cover - depends on the extras installed
    raise ImportError(
        "fanout_core.cdk needs the AWS CDK: pip install 'fanout-core[cdk]'"
    ) from missing

from fanout_core.cdk.construct import FanoutWebSocket, WorkerOptions
from fanout_core.cdk.monitoring import Monitoring
from fanout_core.cdk.settings import FanoutSettings
from fanout_core.cdk.signin import SignIn

__all__ = ["FanoutSettings", "FanoutWebSocket", "Monitoring", "SignIn", "WorkerOptions"]
