"""Strategies by name: the four built in, plugins through the `fanout.strategies` group."""

from __future__ import annotations

from pathlib import Path

import moto
import pytest

from fanout_core import handlers
from fanout_core.delivery.posting import PostOutcome, PostStatus
from fanout_core.errors import ConfigError, InvalidStrategyError, UnknownStrategyError
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.runtime import build_runtime
from fanout_core.strategy import strategy_class, strategy_names
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import message_event
from tests.support.harness import make_chat
from tests.support.strategy_classes import FullScan, GsiQuery, ParallelScan, SqsBatched


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install a distribution whose entry points name a strategy of the tests."""
    dist = tmp_path / "fanout_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fanout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[fanout.strategies]\n"
        "shard_by_shard = tests.support.plugin_strategy:ShardByShard\n"
        "broken = tests.support.plugin_strategy:NotAStrategy\n"
        "misnamed = tests.support.plugin_strategy:Misnamed\n"
        "nameless = tests.support.plugin_strategy:Nameless\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "shard_by_shard"


def test_builtin_names() -> None:
    assert strategy_class("full_scan") is FullScan
    assert strategy_class("gsi_query") is GsiQuery
    assert strategy_class("parallel_scan") is ParallelScan
    assert strategy_class("sqs_batched") is SqsBatched
    assert {"full_scan", "gsi_query", "parallel_scan", "sqs_batched"} <= set(strategy_names())


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownStrategyError) as raised:
        strategy_class("fastest")
    message = str(raised.value)
    assert message.startswith("FANOUT_STRATEGY: unknown strategy 'fastest'")
    assert "full_scan, gsi_query, parallel_scan, sqs_batched" in message
    assert isinstance(raised.value, ConfigError)


def test_unknown_strategy_in_the_environment_fails_the_handler_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FANOUT_STRATEGY", "fastest")
    event = message_event("A1", {"action": "sendMessage", "text": "x"})
    response = handlers.send_message(event, None)
    assert response["statusCode"] == 500
    assert "valid: full_scan, gsi_query, parallel_scan, sqs_batched" in response["body"]


def test_plugin_from_entry_point(plugin: str, local_api: LocalManagementApi) -> None:
    assert plugin in strategy_names()
    with moto.mock_aws():
        chat = make_chat(Backend("moto", None), local_api, FakeClock(), plugin)
        assert type(chat.runtime.strategy).__name__ == "ShardByShard"
        a = chat.connect(rooms=["r"])
        b = chat.connect()
        chat.send(a, "all")
        chat.send(a, "room", room="r")
        assert chat.texts(a) == ["all", "room"]
        assert chat.texts(b) == ["all"]


ENDPOINT = "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"


class Accepting:
    """A poster every post succeeds on."""

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        return PostOutcome(PostStatus.OK)

    def close(self) -> None:
        pass


def test_plugin_that_is_not_a_strategy(plugin: str) -> None:
    with pytest.raises(TypeError, match="not a FanoutStrategy"):
        strategy_class("broken")


def test_build_runtime_rejects_unknown_name() -> None:
    with pytest.raises(UnknownStrategyError):
        build_runtime(Backend("moto", None).config(strategy="nope"))


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (
            "misnamed",
            "tests.support.plugin_strategy.Misnamed is named 'shard_by_shard_v2' but registered",
        ),
        ("nameless", "tests.support.plugin_strategy.Nameless has no `name`"),
    ],
)
def test_a_strategy_that_cannot_serve_fails_when_loaded(plugin: str, name: str, says: str) -> None:
    """Not at the first message: loading it (build_runtime does) names the class and why."""
    with pytest.raises(InvalidStrategyError) as raised:
        strategy_class(name)
    assert says in str(raised.value)
    assert raised.value.variable == "FANOUT_STRATEGY"
    with pytest.raises(InvalidStrategyError):
        build_runtime(Backend("moto", None).config(strategy=name))
