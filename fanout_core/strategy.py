"""The fan-out strategy interface and the registry that finds strategies by name.

A strategy only says how the audience is found (``audience_pages``) and, if it does not
post itself, how pages are handed on (``dispatch``). The base class validates, frames,
times and counts (pages included, whatever ``dispatch`` does), and delivers with bounded
concurrency and 410 cleanup. The registry checks a strategy class when it loads it.
"""

from __future__ import annotations

import importlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from fanout_core import keys
from fanout_core.audience import Page, targets_of
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.errors import InvalidStrategyError, UnknownStrategyError
from fanout_core.message import Message
from fanout_core.result import FanoutResult, counted
from fanout_core.store import ConnectionStore

ENTRY_POINT_GROUP = "fanout.strategies"
BUILTIN_STRATEGIES = {
    "full_scan": "strategies.full_scan:FullScan",
    "gsi_query": "strategies.gsi_query:GsiQuery",
    "parallel_scan": "strategies.parallel_scan:ParallelScan",
    "sqs_batched": "strategies.sqs_batched:SqsBatched",
}


class FanoutStrategy(ABC):
    """Fans one message out to a room, or to everyone."""

    name: ClassVar[str]

    def __init__(self, store: ConnectionStore, deliverer: Deliverer, config: FanoutConfig) -> None:
        self.store = store
        self.deliverer = deliverer
        self.config = config

    def fanout(self, message: Message) -> FanoutResult:
        """Deliver ``message`` to its live audience; return what happened, in counts."""
        if message.room is not None:
            keys.validate_room(message.room)
        data = message.frame()  # over 128 KB raises here, before any read or post
        result = FanoutResult(strategy=self.name, room=message.room, message_id=message.id)
        started = time.perf_counter()
        try:
            self.dispatch(counted(self.audience_pages(message.room), result), data, result)
        finally:
            result.elapsed_seconds = time.perf_counter() - started
        return result

    @abstractmethod
    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """The live audience, page by page, every page read to the end."""

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        """Hand the audience on (pages are counted already); by default post to it from here."""
        self.deliverer.deliver_targets(targets_of(pages), data, result)


def _builtin_or_plugin(name: str) -> str | None:
    if name in BUILTIN_STRATEGIES:
        return BUILTIN_STRATEGIES[name]
    # Entry points are read only for a name that is not built in: importing and scanning
    # package metadata costs cold start.
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return str(entry.value)
    return None


def strategy_names() -> list[str]:
    """Every strategy name: the built-in ones and those of the ``fanout.strategies`` group."""
    from importlib.metadata import entry_points

    names = set(BUILTIN_STRATEGIES)
    names.update(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def strategy_class(name: str) -> type[FanoutStrategy]:
    """The strategy class registered as ``name``; UnknownStrategyError lists the valid ones."""
    target = _builtin_or_plugin(name)
    if target is None:
        raise UnknownStrategyError(name, strategy_names())
    module_name, _, attribute = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, FanoutStrategy)):
        raise TypeError(f"{target} is not a FanoutStrategy subclass")
    check_strategy_class(cls, name)
    return cls


def check_strategy_class(cls: type[FanoutStrategy], registered_as: str) -> None:
    """Raise InvalidStrategyError, naming the class, unless it can serve as ``registered_as``."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise InvalidStrategyError(registered_as, f"{where} leaves {missing} unimplemented")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidStrategyError(registered_as, f"{where} has no `name` (a class attribute)")
    if name != registered_as:
        raise InvalidStrategyError(
            registered_as, f"{where} is named {name!r} but registered as {registered_as!r}"
        )
