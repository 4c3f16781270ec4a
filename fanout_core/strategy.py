"""The fan-out strategy interface and the registry that finds strategies by name.

A strategy only says how the audience is found (``audience_pages`` for a room or everyone;
``user_pages`` and ``connection_pages`` have defaults that read the index and the rows)
and, if it does not post itself, how pages are handed on (``dispatch``, and the worker side
``task_runner``). It gets a message checked and framed already (``publishing.Outgoing``);
the base class times and counts (pages included, whatever ``dispatch`` does), and delivers
with bounded concurrency and 410 cleanup. The registry checks a strategy class when it
loads it.
"""

from __future__ import annotations

import importlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from fanout_core import metrics
from fanout_core.audience import Audience, Page, targets_of, without
from fanout_core.config import FanoutConfig
from fanout_core.errors import InvalidStrategyError, UnknownStrategyError
from fanout_core.result import FanoutResult, counted, report

if TYPE_CHECKING:
    from fanout_core.delivery import Deliverer
    from fanout_core.outgoing import Outgoing
    from fanout_core.store import ConnectionStore
    from fanout_core.worker import TaskRunner

ENTRY_POINT_GROUP = "fanout.strategies"
BUILTIN_STRATEGIES = {
    "full_scan": "fanout_core.strategies.full_scan:FullScan",
    "gsi_query": "fanout_core.strategies.gsi_query:GsiQuery",
    "parallel_scan": "fanout_core.strategies.parallel_scan:ParallelScan",
    "sqs_batched": "fanout_core.strategies.sqs_batched:SqsBatched",
}


class FanoutStrategy(ABC):
    """Fans one message out to a room, a user's connections, chosen connections or everyone."""

    name: ClassVar[str]

    def __init__(self, store: ConnectionStore, deliverer: Deliverer, config: FanoutConfig) -> None:
        self.store = store
        self.deliverer = deliverer
        self.config = config

    def fanout(self, message: Outgoing) -> FanoutResult:
        """Deliver ``message`` to its live audience; returns what happened, in counts."""
        result = message.result(self.name)
        started = time.perf_counter()
        try:
            self.run(message.audience, message.frame.payload, result)
        finally:
            result.elapsed_seconds = time.perf_counter() - started
            # An audience handed on as read tasks only is read (and counted) by workers.
            unread = result.queue_messages > 0 and not result.enqueued
            reached = result.delivered + result.gone + result.failed + result.enqueued
            metrics.fanout_ended(None if unread else reached, result.elapsed_seconds)
            report("fanout", result)
        return result

    def run(self, audience: Audience, data: bytes, result: FanoutResult) -> None:
        """Read the audience's pages (counted, excluded ones left out) and dispatch them.

        A strategy that does not read the audience itself (sqs_batched's tree) overrides
        this; one that only hands pages on differently overrides ``dispatch``.
        """
        pages = counted(self.pages_of(audience), result)
        if audience.exclude:
            pages = without(pages, audience.exclude)
        self.dispatch(pages, data, result)

    def pages_of(self, audience: Audience) -> Iterator[Page]:
        """The live audience's pages, by the method for its kind."""
        if audience.user is not None:
            return self.user_pages(audience.user)
        if audience.connections is not None:
            return self.connection_pages(audience.connections)
        return self.audience_pages(audience.room)

    @abstractmethod
    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """The live members of ``room`` (None: everyone), page by page, to the end."""

    def user_pages(self, principal: str) -> Iterator[Page]:
        """The live connections of ``principal``: by default its index partition."""
        return self.store.user_pages(principal, page_size=self.config.page_size)

    def connection_pages(self, connection_ids: tuple[str, ...]) -> Iterator[Page]:
        """The live ones of ``connection_ids``: by default their rows, 100 per request."""
        return self.store.connection_pages(connection_ids)

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        """Hand the audience on (pages are counted already); by default post to it from here."""
        self.deliverer.deliver_targets(targets_of(pages), data, result)

    def task_runner(self) -> TaskRunner | None:
        """What runs this strategy's queued tasks in the ``sqs_worker`` (None: it queues none)."""
        return None


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
