"""FanoutConfig reads the environment and fails fast, naming the variable."""

from __future__ import annotations

import pytest

from fanout_core.config import DEFAULT_TTL_SECONDS, FanoutConfig
from fanout_core.errors import ConfigError


def test_defaults() -> None:
    config = FanoutConfig.from_env({})
    assert config.table == "fanout"
    assert config.ttl_seconds == DEFAULT_TTL_SECONDS
    assert 2 * 3600 < config.ttl_seconds <= 2 * 3600 + 600  # just over API Gateway's cap
    assert config.dynamodb_endpoint is None
    assert config.region == "us-east-1"


def test_reads_standard_endpoint_variables() -> None:
    both = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2/",
    }
    assert FanoutConfig.from_env(both).dynamodb_endpoint == "http://127.0.0.1:2"
    generic = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    assert FanoutConfig.from_env(generic).dynamodb_endpoint == "http://127.0.0.1:1"
    env = {"FANOUT_TABLE": "chat", "FANOUT_TTL_SECONDS": "900", "AWS_REGION": "eu-west-1"}
    config = FanoutConfig.from_env(env)
    assert (config.table, config.ttl_seconds, config.region) == ("chat", 900, "eu-west-1")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FANOUT_TTL_SECONDS": "two hours"}, "FANOUT_TTL_SECONDS"),
        ({"FANOUT_TTL_SECONDS": "5"}, "FANOUT_TTL_SECONDS"),
        ({"FANOUT_TTL_SECONDS": "-1"}, "FANOUT_TTL_SECONDS"),
        ({"FANOUT_TABLE": "a"}, "FANOUT_TABLE"),
        ({"FANOUT_TABLE": "bad name!"}, "FANOUT_TABLE"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": "localhost:8000"}, "AWS_ENDPOINT_URL_DYNAMODB"),
        ({"AWS_ENDPOINT_URL": "ftp://x"}, "AWS_ENDPOINT_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        FanoutConfig.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable)


def test_config_is_frozen() -> None:
    config = FanoutConfig()
    with pytest.raises(AttributeError):
        config.table = "other"  # type: ignore[misc]
