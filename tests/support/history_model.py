"""The state machine with history: numbered frames, resume, reconnects, duplicate publishes.

``HistoryMachine`` is the chat machine with history on (or off) per run, a small
``FANOUT_HISTORY_MAX`` in some runs, backend publishes with idempotency keys, history
requests, and clients that reconnect and resume from the last seq they received. Besides
the promise of every send, it checks:

- every frame to a room (or everyone) carries the scope's next seq: no two alike, never
  going back; frames to a user or chosen connections carry none;
- a resume posts exactly the retained frames after ``since`` (not trimmed, not expired),
  once each, in seq order, as first sent, then ``history.end`` with the latest seq and
  ``complete`` false exactly when something after ``since`` is no longer retained;
- a second publish with a key within the dedup window fans out nothing;
- the table holds exactly the counters, frames and keys the model says, with their expiry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from fanout_core import keys
from fanout_core.config import DEFAULT_DEDUP_SECONDS
from fanout_core.history import COUNTER_GRACE_SECONDS
from tests.support.access_model import accesses
from tests.support.harness import Rows
from tests.support.hyp_strategies import ROOMS, connection_id, count_step
from tests.support.machine import (
    OK,
    PRINCIPALS,
    ChatMachine,
    FanoutMachine,
    configure_rule,
)

HISTORY_SECONDS = (90, 30, 0)  # drawn per run; 0: off. Draws lean to the first: mostly on
HISTORY_MAX = (100, 3)  # 3: sends in a run outrun it, and resumes meet trimmed frames
IDEMPOTENCY_KEYS = ("k1", "k2")
KEYED_KINDS = ("room", "everyone", "user")


@dataclass
class Scope:
    """A room's (or everyone's) numbering, and its frames still in the table."""

    latest: int = 0
    frames: dict[int, tuple[str, int]] = field(default_factory=dict)  # seq -> (key, expiry)
    counter_expires_at: int | None = None  # None: no counter row


class HistoryMachine(ChatMachine):
    """The chat machine with history, resumes, reconnects and keyed publishes."""

    STEPS: ClassVar[tuple[str, ...]] = (
        *ChatMachine.STEPS,
        "publish_keyed",
        "duplicate",
        "resume",
        "resume_incomplete",
        "reconnect",
    )

    def __init__(self) -> None:
        super().__init__()
        self.history_seconds = 0
        self.history_max = HISTORY_MAX[0]
        self.scopes: dict[str | None, Scope] = {}
        self.claims: dict[tuple[str, str], int] = {}  # (dedup scope, key) -> expires_at
        self.epochs: dict[str | None, int] = {}  # the epoch each scope's history.end said

    @configure_rule(
        accesses(),
        history_seconds=st.sampled_from(HISTORY_SECONDS),
        history_max=st.sampled_from(HISTORY_MAX),
    )
    def configure(self, history_seconds: int, history_max: int, **settings: Any) -> None:
        """As the others, with history on (or off) and its limit drawn."""
        self.history_seconds = history_seconds
        self.history_max = history_max
        FanoutMachine.configure(self, **settings)

    def run_settings(self) -> dict[str, Any]:
        return {"history_seconds": self.history_seconds, "history_max": self.history_max}

    # -- the model ---------------------------------------------------------------------

    @property
    def dedup_window(self) -> int:
        return self.history_seconds or DEFAULT_DEDUP_SECONDS

    def numbered(self, room: str | None, key: str) -> int | None:
        if not self.history_seconds:
            return None
        scope = self.scopes.setdefault(room, Scope())
        scope.latest += 1
        now = int(self.clock.now)
        scope.frames[scope.latest] = (key, now + self.history_seconds)
        scope.counter_expires_at = now + self.history_seconds + COUNTER_GRACE_SECONDS
        return scope.latest

    def positioned(self, room: str) -> None:
        """A join tells the member its room's position: a room with no counter starts one
        (at seq 0), so that the epoch the member holds is the one its frames get."""
        if not self.history_seconds:
            return
        scope = self.scopes.setdefault(room, Scope())
        if scope.counter_expires_at is None:
            now = int(self.clock.now)
            scope.counter_expires_at = now + self.history_seconds + COUNTER_GRACE_SECONDS

    def retained(self, room: str | None) -> list[int]:
        """The seqs a resume of ``room`` may still post, in order."""
        scope = self.scopes.get(room, Scope())
        now = int(self.clock.now)
        return [
            seq
            for seq, (_, expires_at) in sorted(scope.frames.items())
            if expires_at > now and seq > scope.latest - self.history_max
        ]

    def expected_rows(self) -> Rows:
        rows = super().expected_rows()
        for room, scope in self.scopes.items():
            name = keys.scope_of(room)
            for seq, (_, expires_at) in scope.frames.items():
                rows[(keys.history_pk(name), keys.history_sk(seq))] = expires_at
            if scope.counter_expires_at is not None:
                rows[(keys.counter_pk(name), keys.COUNTER_SK)] = scope.counter_expires_at
        for (scope_name, key), expires_at in self.claims.items():
            rows[(keys.dedup_pk(scope_name, key), keys.DEDUP_SK)] = expires_at
        return rows

    def has_expired(self) -> bool:
        now = int(self.clock.now)
        return (
            super().has_expired()
            or any(expires_at <= now for _, expires_at in self.claims.items())
            or any(f[1] <= now for scope in self.scopes.values() for f in scope.frames.values())
        )

    @precondition(has_expired)
    @rule()
    def sweep(self) -> None:
        """The sweep deletes expired frames, counters and keys as well."""
        super().sweep()
        now = int(self.clock.now)
        for scope in self.scopes.values():
            scope.frames = {s: f for s, f in scope.frames.items() if f[1] > now}
            if scope.counter_expires_at is not None and scope.counter_expires_at <= now:
                scope.latest, scope.counter_expires_at = 0, None  # it starts again at 1
        self.claims = {claim: at for claim, at in self.claims.items() if at > now}

    # -- resume ------------------------------------------------------------------------

    def ask_history(self, cid: str, room: str | None, body: dict[str, Any], since: int) -> None:
        """Ask for ``room``'s history after ``since``; check what came back."""
        request = {"action": "history", "room": room, **body}
        if not self.history_seconds:
            self.refused(lambda: self.call(cid, request), 400, "no_history", "history request")
            return
        before = len(self.all_frames(cid))
        assert self.call(cid, request) == OK
        *replayed, end = self.all_frames(cid)[before:]
        scope = self.scopes.get(room, Scope())
        expected = [seq for seq in self.retained(room) if seq > since]
        assert [f.get("seq") for f in replayed] == expected, (replayed, expected, since)
        for frame in replayed:
            key, _ = scope.frames[frame["seq"]]
            if key in self.first_sent:
                assert frame == self.first_sent[key], "a replay differs from the frame first sent"
            assert key in (frame.get("body"), (frame.get("data") or {}).get("key")), frame
        complete = 0 <= since <= scope.latest and expected == list(
            range(since + 1, scope.latest + 1)
        )
        assert (end["event"], end["room"], end["seq"]) == ("history.end", room, scope.latest), end
        assert end["complete"] is complete, (end, since, expected, scope.latest)
        if scope.latest and self.epochs.setdefault(room, end["epoch"]) != end["epoch"]:
            raise AssertionError(f"the epoch of {room} changed without a new counter: {end}")
        assert self.posts.take() == [(cid, 200)] * (len(expected) + 1)
        count_step("resume")
        if not complete:
            count_step("resume_incomplete")

    def rooms_of(self, cid: str) -> list[str | None]:
        conn = self.conns[cid]
        return [None, *sorted(room for room in conn.rooms if self.live_member(conn, room))]

    @precondition(FanoutMachine.has_sender)
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        """A live client asks a scope's history: since a seq it drew, or its last N."""
        cid = data.draw(st.sampled_from(self.senders()), label="cid")
        room = data.draw(st.sampled_from(self.rooms_of(cid)), label="room")
        latest = self.scopes.get(room, Scope()).latest
        if data.draw(st.booleans(), label="by last"):
            last = data.draw(st.integers(0, 4), label="last")
            self.ask_history(cid, room, {"last": last}, max(0, latest - last))
            return
        since = data.draw(st.integers(0, latest + 1), label="since")
        body: dict[str, Any] = {"since": since}
        if room in self.epochs:
            body["epoch"] = self.epochs[room]
        self.ask_history(cid, room, body, since)

    def seen(self, cid: str) -> dict[str | None, int]:
        """The last seq ``cid`` received of each scope."""
        last: dict[str | None, int] = {}
        for frame in self.all_frames(cid):
            if "seq" in frame and frame["event"] != "history.end":
                last[frame["room"]] = max(last.get(frame["room"], 0), frame["seq"])
        return last

    def has_reconnectable(self) -> bool:
        return self.can_connect() and any(not c.open for c in self.conns.values())

    @precondition(has_reconnectable)
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        """A client that dropped comes back as a new connection and resumes a scope from the
        last seq it received (everyone's from 0, if it received none)."""
        old = data.draw(st.sampled_from(self.ids(lambda c: not c.open)), label="old")
        last = self.seen(old) or {None: 0}
        room = data.draw(st.sampled_from(sorted(last, key=str)), label="room")
        conn = self.conns[old]
        self.connect([] if room is None else [room], conn.principal, conn.claims, False)
        cid = connection_id(self.opened - 1)  # the connection that connect just opened
        count_step("reconnect")
        self.ask_history(cid, room, {"since": last[room]}, last[room])

    # -- keyed publishes ---------------------------------------------------------------

    @precondition(lambda self: bool(self.conns))
    @rule(data=st.data())
    def publish_keyed(self, data: st.DataObject) -> None:
        """Backend code publishes with an idempotency key; again within the window, it is a
        duplicate that fans out nothing."""
        kind = data.draw(st.sampled_from(KEYED_KINDS), label="kind")
        key = data.draw(st.sampled_from(IDEMPOTENCY_KEYS), label="key")
        target: dict[str, Any] = {}
        if kind == "room":
            target["room"] = data.draw(st.sampled_from(ROOMS), label="room")
            scope, audience = keys.scope_of(target["room"]), self.audience(target["room"])
        elif kind == "user":
            target["user"] = data.draw(st.sampled_from(PRINCIPALS), label="user")
            scope, audience = (
                keys.user_index_pk(target["user"]),
                self.users_connections(target["user"]),
            )
        else:
            scope, audience = keys.scope_of(None), self.audience(None)
        self.publish_once(target, key, scope, audience, numbered=kind != "user")
        # As a Lambda retry or an SQS redelivery of the producer would, mostly.
        if data.draw(st.sampled_from([True, False]), label="retried"):
            self.publish_once(target, key, scope, audience, numbered=kind != "user")

    def publish_once(
        self,
        target: dict[str, Any],
        key: str,
        scope: str,
        audience: set[str],
        *,
        numbered: bool,
    ) -> None:
        """One keyed publish: a duplicate if the key's claim is live, else delivered."""
        self.sends += 1
        message = f"{self.sends}|keyed"
        now = int(self.clock.now)
        if self.claims.get((scope, key), now) > now:
            count_step("duplicate")
            result = self.fanout.publish({"key": message}, idempotency_key=key, **target)
            self.drain()
            assert (result.duplicate, result.delivered, result.seq) == (True, 0, None), result
            assert self.posts.take() == [], "a duplicate posted"
            assert all(self.frames(cid, message) == [] for cid in self.conns)
            return
        count_step("publish_keyed")
        self.claims[(scope, key)] = now + self.dedup_window

        def publish() -> None:
            result = self.fanout.publish({"key": message}, idempotency_key=key, **target)
            assert not result.duplicate, result
            self.drain()

        self.check_delivery(
            audience, publish, key=message, sender=None, room=target.get("room"), numbered=numbered
        )
