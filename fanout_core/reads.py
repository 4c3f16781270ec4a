"""The audience reads of the table: rooms, users, chosen connections and everyone, page by page.

Every page is read to the end (``LastEvaluatedKey`` followed) and every expired row is
skipped: DynamoDB deletes expired items only within about two days, local backends never.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pynamodb.pagination import ResultIterator

from fanout_core import keys
from fanout_core.audience import Page, Target
from fanout_core.delivery.backoff import Backoff
from fanout_core.models import Models, TableItem
from fanout_core.ranges import KeyRange

if TYPE_CHECKING:
    from fanout_core.config import FanoutConfig

Clock = Callable[[], float]
BATCH_GET_KEYS = 100  # BatchGetItem's limit
# Items a page asks for where the library chooses (FANOUT_PAGE_SIZE unset): a fan-out tree's
# task and a concurrent shard read. A 1 MB page (~6,600 index entries) is tens of MB while
# botocore parses it; 1,000 entries keep a worker's page, and memory, small.
LIBRARY_PAGE_ITEMS = 1000
UNPROCESSED_BACKOFF = Backoff(attempts=8, base=0.05, cap=1.0)
_CONNECTION_ATTRIBUTES = {"#c": "connection_id", "#e": "endpoint", "#x": "expires_at"}


@dataclass(frozen=True, slots=True)
class Member:
    """A live connection of a room and the principal its authorizer gave it (or None)."""

    connection_id: str
    principal: str | None


class AudienceReads:
    """The reads a fan-out makes; mixed into ``ConnectionStore``."""

    config: FanoutConfig
    models: Models
    clock: Clock

    def room_pages(self, room: str, *, page_size: int | None = None) -> Iterator[Page]:
        """The live members of ``room`` from the audience index, page by page."""
        return self._index_pages(self.models.membership, keys.room_index_pk(room), page_size)

    def user_pages(self, principal: str, *, page_size: int | None = None) -> Iterator[Page]:
        """The live connections of ``principal`` from the audience index: one partition."""
        return self._index_pages(self.models.user, keys.user_index_pk(principal), page_size)

    def everyone_pages(self, *, page_size: int | None = None) -> Iterator[Page]:
        """Every live connection from the audience index, shard by shard, page by page."""
        for shard in range(keys.EVERYONE_SHARDS):
            yield from self.shard_pages(shard, page_size=page_size)

    def shard_pages(self, shard: int, *, page_size: int | None = None) -> Iterator[Page]:
        """The live connections listed under one everyone-shard."""
        return self._index_pages(self.models.connection, keys.everyone_index_pk(shard), page_size)

    def partition_page(
        self,
        partition: str,
        start: dict[str, Any] | None,
        *,
        page_size: int,
        key_range: KeyRange | None = None,
    ) -> tuple[Page, dict[str, Any] | None]:
        """One page of an audience index partition (``ROOM#``, ``USER#``, ``ALL#nn``) from
        ``start``, within ``key_range`` if given, and where the next page starts (None: this
        was the last)."""
        item = self.models.item
        result = item.audience.query(
            keys.validate_partition(partition),
            range_key_condition=(
                None if key_range is None else item.gsi1sk.between(key_range.lower, key_range.upper)
            ),
            filter_condition=item.expires_at > int(self.clock()),
            page_size=page_size,
            last_evaluated_key=start,
        )
        page = next(self._pages(result), Page((), 0, None))
        if key_range is not None and page.targets:
            # BETWEEN includes its upper bound; the range does not (the next one starts there).
            last = page.targets[-1]
            if not key_range.holds(keys.CONNECTION_PREFIX + last.connection_id):
                page = replace(page, targets=page.targets[:-1])
        return page, result.page_iter.last_evaluated_key

    def partition_last_key(self, partition: str) -> tuple[str | None, Page]:
        """The largest sort key of a partition (None: it is empty), and the read as a page."""
        item = self.models.item
        result = item.audience.query(
            keys.validate_partition(partition), scan_index_forward=False, limit=1
        )
        page = next(self._pages(result), Page((), 0, None))
        # An index entry's sort key is its connection's (key layout); the read finds no target.
        last = keys.CONNECTION_PREFIX + page.targets[0].connection_id if page.targets else None
        return last, replace(page, targets=())

    def connection_pages(self, connection_ids: Iterable[str]) -> Iterator[Page]:
        """The live ones of ``connection_ids`` (each once), by BatchGetItem of 100 keys."""
        wanted = list(dict.fromkeys(keys.validate_connection_id(cid) for cid in connection_ids))
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            items, units = self._batch_get(wanted[start : start + BATCH_GET_KEYS])
            now = int(self.clock())
            live = [item for item in items if int(item["expires_at"]["N"]) > now]
            yield Page(
                targets=tuple(
                    Target(item["connection_id"]["S"], item["endpoint"]["S"]) for item in live
                ),
                scanned=len(items),
                read_units=units,
            )

    def members(self, room: str, *, page_size: int | None = None) -> Iterator[list[Member]]:
        """The live members of ``room`` with their principals, one list per index page.

        The index does not carry principals: each page costs a BatchGetItem of the
        members' connection rows besides its query.
        """
        for page in self.room_pages(room, page_size=page_size):
            ids = [target.connection_id for target in page.targets]
            principals: dict[str, str | None] = {}
            for start in range(0, len(ids), BATCH_GET_KEYS):
                items, _ = self._batch_get(ids[start : start + BATCH_GET_KEYS], principal=True)
                now = int(self.clock())
                for item in items:
                    if int(item["expires_at"]["N"]) > now:
                        principals[item["connection_id"]["S"]] = item.get("principal", {}).get("S")
            members = [Member(cid, principals[cid]) for cid in ids if cid in principals]
            if members:
                yield members

    def scan_pages(
        self,
        room: str | None,
        *,
        principal: str | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """The live audience by scanning the table: ``room``'s, ``principal``'s, or everyone."""
        now = int(self.clock())
        result: ResultIterator[Any]
        model: type[Any]
        if room is not None:
            model = self.models.membership
            condition = (model.room == keys.validate_room(room)) & (model.expires_at > now)
        else:
            model = self.models.connection
            condition = model.expires_at > now
            if principal is not None:
                condition &= model.principal == keys.validate_principal(principal)
        result = model.scan(
            condition, segment=segment, total_segments=total_segments, page_size=page_size
        )
        return self._pages(result)

    # -- helpers -----------------------------------------------------------------------

    def _index_pages(
        self, model: type[TableItem], partition: str, page_size: int | None
    ) -> Iterator[Page]:
        """The live rows of one audience index partition, page by page."""
        result = model.audience.query(
            partition, filter_condition=model.expires_at > int(self.clock()), page_size=page_size
        )
        return self._pages(result)

    def _batch_get(
        self, connection_ids: Sequence[str], *, principal: bool = False
    ) -> tuple[list[dict[str, Any]], float | None]:
        """The connection rows of up to 100 ids, consistently read, and the read units."""
        names = dict(_CONNECTION_ATTRIBUTES)
        if principal:
            names["#p"] = "principal"
        request: dict[str, Any] = {
            self.config.table: {
                "Keys": [
                    {"pk": {"S": keys.connection_pk(cid)}, "sk": {"S": keys.CONNECTION_SK}}
                    for cid in connection_ids
                ],
                "ConsistentRead": True,
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        items: list[dict[str, Any]] = []
        units: float | None = None

        def read(request: dict[str, Any]) -> dict[str, Any]:
            nonlocal units
            response = self.models.client.batch_get_item(
                RequestItems=request, ReturnConsumedCapacity="TOTAL"
            )
            items.extend(response.get("Responses", {}).get(self.config.table, []))
            for consumed in response.get("ConsumedCapacity", []):
                if "CapacityUnits" in consumed:
                    units = (units or 0.0) + float(consumed["CapacityUnits"])
            # DynamoDB returns what it could not read under load: read it again, later.
            return dict(response.get("UnprocessedKeys") or {})

        UNPROCESSED_BACKOFF.until_done(
            read,
            request,
            gave_up=lambda _: RuntimeError("DynamoDB left keys unprocessed after every retry"),
        )
        return items, units

    def _pages(self, result: ResultIterator[Any]) -> Iterator[Page]:
        # Raw pages, not model instances: a fan-out page needs two strings per row, and
        # the page's ScannedCount and ConsumedCapacity that ResultIterator hides.
        for raw in result.page_iter:
            items: list[dict[str, dict[str, str]]] = raw.get("Items", [])
            capacity = raw.get("ConsumedCapacity", {}).get("CapacityUnits")
            yield Page(
                targets=tuple(
                    Target(item["connection_id"]["S"], item["endpoint"]["S"]) for item in items
                ),
                scanned=int(raw.get("ScannedCount", len(items))),
                read_units=None if capacity is None else float(capacity),
            )
