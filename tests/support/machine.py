"""The promise as a Hypothesis state machine, shared by test_properties.py and test_faults.py.

``FanoutMachine`` drives the real handlers (``fanout_core.handlers.websocket``, ``sweep``
and, for sqs_batched, ``sqs_worker`` through the local SQS event source) over a table on
moto in-process or dynalite, posting over real HTTP to the local Management API. It keeps a
model of every connection: its rows and their expiry, whether its client is still there.
Rules: connect (with rooms), disconnect, drop (the client vanishes without $disconnect),
join, leave, ping, tick and expire (the FakeClock moves; nothing deletes the expired rows),
sweep, and sends to a room or to everyone.

After each send: every live member received the frame exactly once (sqs_batched: at least
once, and at most once per record naming it that the worker handled, so exactly once unless
such a record was redelivered); nobody outside the audience, expired or
gone received it; every connection that answered 410 is deleted with all its memberships;
no live connection was deleted. After every step the table holds exactly the model's rows:
nothing but a 410, a disconnect or a sweep of expired rows deletes anything.

Page size (1..5), segments (1..4), concurrency (1..4) and, for sqs_batched, ids per SQS
message (1..3) are drawn per run, so reads cross page boundaries, dynalite's empty last
page included. One table serves all runs of a test: each run starts from an empty table
with its own clock, queue and runtime, and leaves the table empty.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from fanout_core import handlers
from fanout_core.fanout import Fanout
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.presence import JOIN, LEAVE
from fanout_core.runtime import Runtime
from tests.support import frames
from tests.support.access_model import Access, Bucket, PresenceLog, accesses
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event, message_event
from tests.support.faults import CrashingWorker, PostLog
from tests.support.harness import Harness, Rows
from tests.support.hyp_strategies import (
    ROOMS,
    assert_steps_fired,
    connection_id,
    count_example,
    count_step,
    message_texts,
    profile,
    run_machine,
    scaled,
)
from tests.support.strategy_classes import SqsBatched

PROPERTY_BACKENDS = ["moto", "dynalite"]
TTL = 60  # the shortest FANOUT_TTL_SECONDS: expiry is a small clock step
START = 1_700_000_000.5  # a fractional start: expiry compares float "now" with int seconds
MAX_ATTEMPTS = 4  # FANOUT_MAX_ATTEMPTS
POST_TIMEOUT = 1.5  # the Management API client's timeout: ample for a local post under load
MAX_CLIENTS = 8  # open clients at once: enough for several pages of 1..5 rows
OK = {"statusCode": 200}
MACHINE_EXAMPLES = 0.2  # examples per state machine test: fast 20, thorough 200
# The two kinds of broken promise, named in every failure message of their kind, so a test
# can tell which one a counterexample broke.
SKIPPED = "skipped a connection of the audience"
WRONG = "unexpected 410 or wrong deletion"
# Several connections per user; one principal with the punctuation authorizers use.
PRINCIPALS = ("alice", "bob", "auth0|c.d+e@x.io")
PUBLISH_KINDS = ("room", "user", "connections", "everyone")
NEVER_CONNECTED = "NeverConnectedId01"


Configure = Callable[..., None]


def configure_rule(
    access: st.SearchStrategy[Access], **more: st.SearchStrategy[Any]
) -> Callable[[Configure], Configure]:
    """The first rule of a run: its settings, first clients and access settings drawn (and
    ``more``, a subclass's own, drawn last)."""
    draws: dict[str, st.SearchStrategy[Any]] = {
        "page_size": st.integers(1, 5),
        "segments": st.integers(1, 4),
        "concurrency": st.integers(1, 4),
        "per_message": st.integers(1, 3),
        "clients": st.lists(st.lists(st.sampled_from(ROOMS), max_size=3), min_size=1, max_size=3),
        "access": access,
        **more,
    }
    # Its stubs cannot tell that a dict of draws holds no `target`: only keyword draws.
    rule_: Callable[[Configure], Configure] = initialize(**draws)  # type: ignore[call-overload]
    return rule_


def connect_rule(principals: Sequence[str | None]) -> Callable[[Configure], Configure]:
    """The connect rule's draws: its rooms, a principal of ``principals`` (Hypothesis leans
    to the first), the rooms its token claims, and whether those include its rooms."""
    draws: dict[str, st.SearchStrategy[Any]] = {
        "rooms": st.lists(st.sampled_from(ROOMS), max_size=3),
        "principal": st.sampled_from(principals),
        "claims": st.lists(st.sampled_from(ROOMS), max_size=3),
        "claims_all": st.sampled_from([True, True, False]),
    }
    # As configure_rule's: keyword draws only, which its stubs cannot tell from a dict.
    rule_: Callable[[Configure], Configure] = rule(**draws)  # type: ignore[call-overload]
    return rule_


@dataclass
class Conn:
    """The model of one connection."""

    cid: str
    expires_at: int  # of its connection row
    rooms: dict[str, int] = field(default_factory=dict)  # room -> its membership's expires_at
    in_table: bool = True  # its rows exist
    open: bool = True  # its client is there: posts to it are delivered, not answered 410
    principal: str | None = None  # what its authorizer said; listed under USER#<principal>
    claims: tuple[str, ...] = ()  # the rooms its authorizer's context lists (owner_rooms)
    bucket: Bucket = field(default_factory=Bucket)  # its send bucket, under a rate limit


def joined(response: dict[str, Any], room: str) -> bool:
    """A joinRoom's success: 200, with the room's position (``fanout.joined``) if history is on."""
    if response == OK:
        return True
    frame = frames.decode(response["body"]) if response.get("statusCode") == 200 else {}
    assert (frame.get("event"), frame.get("room")) == ("fanout.joined", room), response
    return True


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(status, error code) of a JSON error answer."""
    assert response["headers"]["Content-Type"] == "application/json", response
    body = frames.check(json.loads(response["body"]), "errorAnswer")
    return response["statusCode"], body["error"]


def set_post_timeout(runtime: Runtime) -> None:
    """Keep the poster users get from ``build_runtime``, with a shorter timeout."""
    poster: Any = runtime.deliverer.poster
    assert isinstance(poster.timeout, float)  # read at each post; nothing built before
    poster.timeout = POST_TIMEOUT


def no_sleep(seconds: float) -> None:
    """The delivery loop's backoff sleep, skipped: the properties do not depend on it."""
    assert 0 <= seconds <= 2.0


class FanoutMachine(RuleBasedStateMachine):
    """Clients of one strategy, driven through the handlers, against a model."""

    harness: ClassVar[Harness]
    # What count_step names: every one must run in each test (the chat rule counts two).
    STEPS: ClassVar[tuple[str, ...]] = (
        "configure",
        "connect",
        "disconnect",
        "drop",
        "join",
        "leave",
        "ping",
        "tick",
        "expire",
        "sweep",
        "chat_in_room",
        "chat_to_everyone",
        *(f"publish_to_{kind}" for kind in PUBLISH_KINDS),
        "disconnect_user",
    )
    DRAW_ACCESS: ClassVar[bool] = False  # AccessMachine draws a policy, a rate limit...

    @classmethod
    def steps(cls) -> tuple[str, ...]:
        """The steps a run of this machine on its harness's strategy can take."""
        return cls.STEPS

    def __init__(self) -> None:
        super().__init__()
        count_example()
        self.h = type(self).harness
        self.clock = FakeClock(START)
        self.conns: dict[str, Conn] = {}
        self.opened = 0
        self.sends = 0
        self.worker = CrashingWorker(handlers.sqs_worker)
        self.posts = PostLog(self.h.api)
        self.access = Access()
        self.chats = 0  # sends drawn by alternate(): room and everyone in turn
        self.presence_seen: Counter[str] = Counter()  # presence frames checked, per client
        self.presence = PresenceLog()  # what the current step must post
        self.presence_gone: set[str] = set()  # found gone by this step's presence events
        self.first_sent: dict[str, dict[str, Any]] = {}  # message key -> its frame as posted
        self.user_buckets: dict[str, Bucket] = {}  # principal -> its bucket, if limited

    @property
    def runtime(self) -> Runtime | None:
        return self.h.runtime

    @property
    def pump(self) -> SqsEventSource | None:
        return self.h.pump

    # -- setup and teardown ------------------------------------------------------------

    @configure_rule(accesses())
    def configure(
        self,
        page_size: int,
        segments: int,
        concurrency: int,
        per_message: int,
        clients: list[list[str]],
        access: Access,
    ) -> None:
        """A runtime over the shared table with this run's settings, and the first clients.

        A run starts with clients: with none, most rules have nothing to act on.
        """
        count_step("configure")
        self.access = access if self.DRAW_ACCESS else Access()
        self.h.start(
            self.clock,
            worker=self.worker,
            page_size=page_size,
            segments=segments,
            concurrency=concurrency,
            policy=self.access.policy(),
            **self.access.settings(),
            **self.run_settings(),
        )
        runtime = self.runtime
        assert runtime is not None
        set_post_timeout(runtime)
        runtime.deliverer.sleep = no_sleep
        if isinstance(runtime.strategy, SqsBatched):
            runtime.strategy.targets_per_message = per_message
            assert runtime.tasks is not None
            # Pages of 1..5 and batches of 1..3: the tree reads, hands on and overflows.
            runtime.tasks.inline = runtime.tasks.per_message = per_message
        for index, rooms in enumerate(clients):
            self.connect(rooms, (None, *PRINCIPALS)[index % 4], (*rooms, *ROOMS[:index]))
        self.configured()

    def run_settings(self) -> dict[str, Any]:
        """A subclass's own settings of the run's runtime (FanoutConfig fields)."""
        return {}

    def configured(self) -> None:
        """What a run does first, once its first clients are connected."""

    def positioned(self, room: str) -> None:
        """A member joined ``room`` and was told its position (history keeps counters)."""

    def teardown(self) -> None:
        self.posts.close()
        self.h.api.faults.clear()
        self.h.stop()
        self.h.wipe()

    # -- the model ---------------------------------------------------------------------

    def live(self, conn: Conn) -> bool:
        return conn.in_table and conn.expires_at > self.clock.now

    def live_member(self, conn: Conn, room: str) -> bool:
        return room in conn.rooms and conn.rooms[room] > self.clock.now

    def audience(self, room: str | None) -> set[str]:
        """Whom a send to ``room`` (None: everyone) must be posted to."""
        if room is None:
            return {c.cid for c in self.conns.values() if self.live(c)}
        return {c.cid for c in self.conns.values() if self.live_member(c, room)}

    def users_connections(self, principal: str) -> set[str]:
        """The live connections of ``principal``."""
        return {c.cid for c in self.conns.values() if c.principal == principal and self.live(c)}

    def expected_rows(self) -> Rows:
        rows: Rows = {}
        for conn in self.conns.values():
            if conn.in_table:
                rows[(conn.cid, "CONN")] = conn.expires_at
                if conn.principal is not None:
                    rows[(conn.cid, "USER")] = conn.expires_at
            for room, expires_at in conn.rooms.items():
                rows[(conn.cid, f"ROOM#{room}")] = expires_at
            if conn.bucket.expires_at is not None:
                rows[(conn.cid, "RATE")] = conn.bucket.expires_at
        for principal, bucket in self.user_buckets.items():
            if bucket.expires_at is not None:
                rows[(f"RATE#USER#{principal}", "RATE")] = bucket.expires_at
        return rows

    def user_bucket(self, principal: str) -> Bucket:
        return self.user_buckets.setdefault(principal, Bucket())

    def take_tokens(self, cid: str) -> bool:
        """A repeatable action's token: the connection's bucket, then its principal's. A
        refusal by the principal's has taken the connection's."""
        conn, now = self.conns[cid], self.clock.now
        if not conn.bucket.take(self.access.rate_limit, now):
            return False
        return conn.principal is None or self.user_bucket(conn.principal).take(
            self.access.user_rate_limit, now
        )

    def numbered(self, room: str | None, key: str) -> int | None:
        """The seq a message to ``room`` (None: everyone) just took: none, history off."""
        return None

    def forget(self, cid: str) -> None:
        """The connection and its memberships are deleted, its client gone."""
        conn = self.conns[cid]
        conn.in_table = False
        conn.open = False
        conn.rooms.clear()
        conn.bucket = Bucket()

    def remove(self, cid: str) -> None:
        """Its rows deleted (a disconnect, a 410): the rooms it was in hear it left."""
        rooms = sorted(self.conns[cid].rooms)
        self.forget(cid)
        for room in rooms:
            self.announce(LEAVE, room, cid)

    def announce(self, event: str, room: str, subject: str) -> None:
        """A presence event to the room's live members but ``subject``, if events are on.

        A member that is gone answers 410: its rows go, and its rooms hear that it left.
        """
        if not self.access.presence_events:
            return
        for cid in sorted(self.audience(room) - {subject}):
            if self.conns[cid].open:
                self.presence.expected.add((cid, event, subject, room))
            else:
                self.presence_gone.add(cid)
                self.remove(cid)

    def identity(self, cid: str) -> dict[str, Any] | None:
        """``requestContext.authorizer`` of the client's events, as its authorizer made it."""
        conn = self.conns.get(cid)
        if conn is None or (conn.principal is None and not conn.claims):
            return None
        return {"principalId": conn.principal, "rooms": ",".join(conn.claims)}

    def sign_in(self, cid: str) -> tuple[bool, dict[str, Any]]:
        """Whether the client's handshake passes its authorizer, and the identity bound to
        it (here the model's own; SignedInAccessMachine's comes from a real token)."""
        return True, self.identity(cid) or {}

    def allows(self, cid: str, action: str, room: str | None) -> bool:
        """What this run's policy must answer for ``cid``."""
        conn = self.conns[cid]
        member = self.live_member(conn, room) if room is not None else None
        return self.access.allows(
            action, room, principal=conn.principal, claims=conn.claims, is_member=member
        )

    def ids(self, predicate: Callable[[Conn], bool]) -> list[str]:
        return sorted(c.cid for c in self.conns.values() if predicate(c))

    def senders(self) -> list[str]:
        return self.ids(lambda c: c.open and self.live(c))

    def has_sender(self) -> bool:
        return bool(self.senders())

    def has_open(self) -> bool:
        return any(c.open for c in self.conns.values())

    def can_connect(self) -> bool:
        return sum(c.open for c in self.conns.values()) < MAX_CLIENTS

    # -- talking to the handlers -------------------------------------------------------

    def call(self, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        """One WebSocket message through the single-entry router, then the SQS workers."""
        event = message_event(cid, body)
        identity = self.identity(cid)
        if identity is not None:
            event["requestContext"]["authorizer"] = identity
        response = handlers.websocket(event, None)
        self.drain()
        return response

    def refused(self, act: Callable[[], dict[str, Any]], status: int, code: str, step: str) -> None:
        """``act`` is refused, writes nothing and posts nothing (the invariant checks the
        table). Judged on its own call's posts: a presence event an earlier action of the
        same rule posted (a connect's join) is the invariant's to check."""
        with self.posts.apart() as made:
            response = act()
        assert error_of(response) == (status, code), response
        assert made == [], f"a refused {step} posted {made}"
        count_step("denied" if code == "forbidden" else code)

    def drain(self) -> None:
        if self.pump is None:
            return
        for _ in range(200):  # each poll ends with its answers posted and its tasks enqueued
            if self.pump.poll_once() == 0:
                return
        raise AssertionError("messages left on the queue after 200 polls")

    @property
    def fanout(self) -> Fanout:
        """What backend code publishes with, over the handlers' runtime."""
        assert self.runtime is not None
        return Fanout(runtime=self.runtime)

    def frames(self, cid: str, key: str) -> list[dict[str, Any]]:
        """The frames of the message ``key`` that ``cid`` received: its text, or its data."""
        decoded = [frames.decode(raw) for raw in self.h.api.connections.inbox(cid)]
        return [f for f in decoded if f.get("body") == key or f.get("data") == {"key": key}]

    def alternate(self, data: st.DataObject) -> bool:
        """True for a room send: alternating unless Hypothesis flips it (its draws of booleans
        lean to False, and few examples would then send only to rooms, or only to everyone).
        """
        self.chats += 1
        return (self.chats % 2 == 1) != data.draw(st.booleans(), label="flip")

    def draw_sender_and_room(self, data: st.DataObject, to_room: bool) -> tuple[str, str | None]:
        sender = data.draw(st.sampled_from(self.senders()), label="sender")
        if not to_room:
            return sender, None
        own = sorted(self.conns[sender].rooms)
        rooms = st.sampled_from(own) | st.sampled_from(ROOMS) if own else st.sampled_from(ROOMS)
        return sender, data.draw(rooms, label="room")

    def send(
        self,
        sender: str,
        room: str | None,
        text: str,
        *,
        injected_gone: frozenset[str] = frozenset(),
    ) -> None:
        """Send through the handlers and check every property of the promise."""
        self.sends += 1
        text = f"{self.sends}|{text}"
        body: dict[str, Any] = {"action": "sendMessage", "text": text}
        if room is not None:
            body["room"] = room
        if not self.allows(sender, "send", room):
            self.refused(lambda: self.call(sender, body), 403, "forbidden", "send")
            return
        if room is not None and not self.live_member(self.conns[sender], room):
            self.refused(lambda: self.call(sender, body), 403, "not_a_member", "send")
            return
        if not self.take_tokens(sender):
            self.refused(lambda: self.call(sender, body), 429, "rate_limited", "send")
            return
        audience = self.audience(room)
        assert sender in audience
        self.check_delivery(
            audience,
            lambda: self.call(sender, body),
            key=text,
            sender=sender,
            room=room,
            injected_gone=injected_gone,
        )

    def check_delivery(
        self,
        audience: set[str],
        act: Callable[[], object],
        *,
        key: str,
        sender: str | None,
        room: str | None,
        injected_gone: frozenset[str] = frozenset(),
        numbered: bool = True,
    ) -> None:
        """Run ``act`` (a send or a publish) and check every property of the promise.

        ``numbered``: to a room or everyone, so it takes the scope's next seq (history on).
        """
        gone = {cid for cid in audience if not self.conns[cid].open} | set(injected_gone)
        receivers = audience - gone
        handled_before = self.worker.handled.copy()
        crashes_before = self.worker.crashes

        response = act()
        seq = self.numbered(room, key) if numbered else None

        assert response in (OK, None), response
        # Deletions first: a live row deleted mid-send also makes its later pages miss it,
        # and the report should name the cause.
        rows = self.h.rows()
        for cid in sorted(receivers):
            assert (cid, "CONN") in rows, f"{WRONG}: live connection {cid} was deleted by a send"
        # sqs_batched: a worker's crash redelivers its whole batch, whose read tasks then
        # read and post their pages again, and whose post batches post to their ids again:
        # only then may a receiver get a copy more (at most one per post batch naming it,
        # any number through a redelivered read task). Else every receiver gets one post.
        handled = self.worker.handled - handled_before
        crashed = self.worker.crashes > crashes_before
        frame_ids: set[str] = set()
        for cid in sorted(self.conns):
            got = self.frames(cid, key)
            if cid in receivers:
                assert got, f"{SKIPPED}: live connection {cid} missed {key!r} (room {room})"
                most = max(1, handled[cid]) if self.pump is not None else 1
                if crashed:
                    most = len(got)  # a redelivered read task: at least once is the promise
                assert len(got) <= most, (
                    f"{cid} received {key!r} {len(got)} times; at most {most} allowed"
                )
            else:
                assert got == [], f"{cid} is outside the live audience yet received {key!r}"
            for frame in got:
                assert (frame["from"], frame["room"]) == (sender, room), frame
                assert frame.get("seq") == seq, f"seq {frame.get('seq')}, expected {seq}"
                frame_ids.add(frame["id"])
                self.first_sent.setdefault(key, frame)
        assert len(frame_ids) == (1 if receivers else 0), f"one send, frame ids {frame_ids}"
        posted_gone = {cid for cid, status in self.posts.peek() if status == 410}
        for cid in sorted(gone):
            left = sorted(sk for owner, sk in rows if owner == cid)
            # Its rows stay because nothing posted to it: the cause to name is the skip.
            assert not left or cid in posted_gone, (
                f"{SKIPPED}: gone connection {cid} was never posted (its rows {left} stay)"
            )
            assert not left, f"{cid} answered 410 but these rows were not deleted: {left}"
            self.remove(cid)  # presence.leave to its rooms, maybe more 410s
        # This call's presence events' 410s are judged here, with the posts it takes: the
        # next send of the same step (a burst) must not expect them again.
        gone |= self.presence_gone
        self.presence_gone = set()
        answered_gone = {cid for cid, status in self.posts.take() if status == 410}
        skipped = sorted(gone - answered_gone)
        assert not skipped, (
            f"{SKIPPED}: gone connections never posted (so never deleted): {skipped}"
        )
        unexpected = sorted(answered_gone - gone)
        assert not unexpected, f"{WRONG}: live connections answered 410: {unexpected}"

    # -- rules ---------------------------------------------------------------------------

    @precondition(can_connect)
    @connect_rule((None, *PRINCIPALS))
    def connect(
        self,
        rooms: list[str],
        principal: str | None = None,
        claims: Sequence[str] = (),
        claims_all: bool = True,
    ) -> None:
        """A client connects; its authorizer's ``rooms`` claim lists the rooms it asks for
        (under owner_rooms, mostly: else the connect is refused) and maybe others."""
        count_step("connect")
        if claims_all:
            claims = sorted({*rooms, *claims})
        cid = connection_id(self.opened)
        self.opened += 1
        self.h.api.connections.open(cid)
        conn = Conn(cid, int(self.clock.now) + TTL, principal=principal, claims=tuple(claims))
        self.conns[cid] = conn
        admitted, identity = self.sign_in(cid)
        if not admitted:  # the authorizer refused: API Gateway never calls $connect
            del self.conns[cid]
            self.h.api.connections.close(cid)
            return
        event = connect_event(cid, rooms=rooms)
        if identity:
            event["requestContext"]["authorizer"] = identity
        distinct = list(dict.fromkeys(rooms))  # a room asked twice is one membership
        allowed = self.allows(cid, "connect", None) and all(
            self.allows(cid, "join", room) for room in distinct
        )
        limit, now = self.access.max_connections, self.clock.now
        refusal = None
        if len(distinct) > self.access.max_rooms:
            refusal = (400, "too_many_rooms")
        elif not allowed:
            refusal = (403, "forbidden")
        elif (
            principal is not None
            and limit is not None
            and len(self.users_connections(principal) - {cid}) >= limit
        ):
            refusal = (403, "too_many_connections")
        if (
            refusal is None
            and principal is not None
            and not self.user_bucket(principal).take(self.access.user_rate_limit, now)
        ):
            refusal = (429, "rate_limited")

        def handshake() -> dict[str, Any]:
            response: dict[str, Any] = handlers.websocket(event, None)
            self.drain()
            return response

        if refusal is not None:  # refused: the handshake fails, nothing is written
            self.refused(handshake, *refusal, "connect")
            del self.conns[cid]
            self.h.api.connections.close(cid)
            return
        response = handshake()
        assert response == OK, response
        conn.rooms = dict.fromkeys(distinct, conn.expires_at)
        for room in distinct:
            self.positioned(room)
            self.announce(JOIN, room, cid)

    @precondition(lambda self: any(c.open or c.in_table for c in self.conns.values()))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        """A clean close, or a late $disconnect for a client that dropped."""
        count_step("disconnect")
        cid = data.draw(st.sampled_from(self.ids(lambda c: c.open or c.in_table)), label="cid")
        self.h.api.connections.close(cid)
        assert handlers.websocket(disconnect_event(cid), None) == OK
        self.drain()
        self.remove(cid)

    @precondition(has_open)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        """The client vanishes; API Gateway never calls $disconnect."""
        count_step("drop")
        cid = data.draw(st.sampled_from(self.ids(lambda c: c.open)), label="cid")
        self.h.api.connections.close(cid)
        self.conns[cid].open = False

    @precondition(has_open)
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids(lambda c: c.open)), label="cid")
        self.join_room(cid, data.draw(st.sampled_from(ROOMS), label="room"))

    def join_room(self, cid: str, room: str) -> None:
        count_step("join")
        body = {"action": "joinRoom", "room": room}
        conn = self.conns[cid]
        if not self.allows(cid, "join", room):
            self.refused(lambda: self.call(cid, body), 403, "forbidden", "join")
            return
        if not self.live(conn):
            self.refused(lambda: self.call(cid, body), 403, "not_connected", "join")
            return
        rooms = [r for r in conn.rooms if self.live_member(conn, r)]
        if room not in rooms and len(rooms) >= self.access.max_rooms:
            self.refused(lambda: self.call(cid, body), 400, "too_many_rooms", "join")
            return
        if not self.take_tokens(cid):  # a member's join too: every repeat costs
            self.refused(lambda: self.call(cid, body), 429, "rate_limited", "join")
            return
        assert joined(self.call(cid, body), room)
        if room not in rooms:  # a member's join changes nothing and announces nothing
            self.positioned(room)
            conn.rooms[room] = conn.expires_at
            self.announce(JOIN, room, cid)

    @precondition(has_open)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.ids(lambda c: c.open)), label="cid")
        self.leave_room(cid, data.draw(st.sampled_from(ROOMS), label="room"))

    def leave_room(self, cid: str, room: str) -> None:
        count_step("leave")
        body = {"action": "leaveRoom", "room": room}
        if not self.take_tokens(cid):
            self.refused(lambda: self.call(cid, body), 429, "rate_limited", "leave")
            return
        assert self.call(cid, body) == OK
        if self.conns[cid].rooms.pop(room, None) is not None:
            self.announce(LEAVE, room, cid)

    @precondition(has_open)
    @rule(data=st.data())
    def ping(self, data: st.DataObject) -> None:
        self.ping_as(data.draw(st.sampled_from(self.ids(lambda c: c.open)), label="cid"))

    def ping_as(self, cid: str) -> None:
        count_step("ping")
        body = {"action": "ping"}
        conn = self.conns[cid]
        if not self.live(conn):  # no token: a dead connection's ping writes nothing
            self.refused(lambda: self.call(cid, body), 403, "not_connected", "ping")
            return
        if not self.take_tokens(cid):
            self.refused(lambda: self.call(cid, body), 429, "rate_limited", "ping")
            return
        assert self.call(cid, body) == OK
        conn.expires_at = int(self.clock.now) + TTL
        conn.rooms = dict.fromkeys(conn.rooms, conn.expires_at)

    @precondition(lambda self: bool(self.conns))
    @rule(seconds=st.integers(1, TTL))
    def tick(self, seconds: int) -> None:
        count_step("tick")
        self.clock.advance(seconds)

    @precondition(lambda self: any(self.live(c) for c in self.conns.values()))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """The clock reaches one connection's expires_at exactly: from now on it is expired."""
        count_step("expire")
        cid = data.draw(st.sampled_from(self.ids(self.live)), label="cid")
        self.clock.advance(self.conns[cid].expires_at - self.clock.now)

    def has_expired(self) -> bool:
        now = self.clock.now
        buckets = [c.bucket for c in self.conns.values()] + list(self.user_buckets.values())
        return any(c.in_table and not self.live(c) for c in self.conns.values()) or any(
            b.expires_at is not None and b.expires_at <= now for b in buckets
        )

    @precondition(has_expired)
    @rule()
    def sweep(self) -> None:
        count_step("sweep")
        now = int(self.clock.now)
        expired = [c for c in self.conns.values() if c.in_table and c.expires_at <= now]
        memberships = sum(len(c.rooms) for c in expired)
        result = handlers.sweep({}, None)
        assert result == {"connections": len(expired), "memberships": memberships}
        for conn in expired:
            conn.in_table = False
            conn.rooms.clear()
            conn.bucket = Bucket()
        for conn in self.conns.values():  # a send bucket expires on its own
            if conn.bucket.expires_at is not None and conn.bucket.expires_at <= now:
                conn.bucket = Bucket()
        for principal, bucket in list(self.user_buckets.items()):
            if bucket.expires_at is not None and bucket.expires_at <= now:
                del self.user_buckets[principal]

    def repeats(self) -> list[int]:
        """How many sends in a row a chat draws from."""
        return [2, 1, 3]

    @precondition(has_sender)
    @rule(data=st.data())
    def chat(self, data: st.DataObject) -> None:
        """A live client sends to one of its rooms, to another room, or to everyone: once,
        or a few times in a row (what a rate limit meets)."""
        to_room = self.alternate(data)
        count_step("chat_in_room" if to_room else "chat_to_everyone")
        sender, room = self.draw_sender_and_room(data, to_room=to_room)
        for _ in range(data.draw(st.sampled_from(self.repeats()), label="times")):
            if not (self.conns[sender].open and self.live(self.conns[sender])):
                break  # a 410 in its own room's presence events took it
            self.send(sender, room, data.draw(message_texts(), label="text"))

    @precondition(lambda self: bool(self.conns))
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        """Backend code publishes to a room, a user, chosen connections or everyone."""
        kind = data.draw(st.sampled_from(PUBLISH_KINDS), label="kind")
        count_step(f"publish_to_{kind}")
        self.sends += 1
        key = f"{self.sends}|publish"
        known = sorted(self.conns)
        exclude = data.draw(st.lists(st.sampled_from(known), max_size=2, unique=True), "exclude")
        target: dict[str, Any] = {}
        if kind == "room":
            target["room"] = data.draw(st.sampled_from(ROOMS), label="room")
            audience = self.audience(target["room"])
        elif kind == "user":
            target["user"] = data.draw(st.sampled_from(PRINCIPALS), label="user")
            audience = self.users_connections(target["user"])
        elif kind == "connections":
            chosen = st.sampled_from([*known, NEVER_CONNECTED])
            ids = data.draw(st.lists(chosen, min_size=1, max_size=4), label="connections")
            target["connections"] = ids
            audience = {cid for cid in ids if cid in self.conns and self.live(self.conns[cid])}
        else:
            audience = self.audience(None)

        def publish() -> None:
            self.fanout.publish({"key": key}, exclude=exclude, **target)
            self.drain()

        self.check_delivery(
            audience - set(exclude),
            publish,
            key=key,
            sender=None,
            room=target.get("room"),
            numbered=kind in ("room", "everyone"),
        )

    @precondition(lambda self: any(c.principal for c in self.conns.values()))
    @rule(data=st.data())
    def disconnect_user(self, data: st.DataObject) -> None:
        """Backend code closes every live connection of a user and deletes their rows."""
        count_step("disconnect_user")
        users = sorted({c.principal for c in self.conns.values() if c.principal})
        user = data.draw(st.sampled_from(users), label="user")
        live = self.users_connections(user)
        still_open = {cid for cid in live if self.conns[cid].open}

        result = self.fanout.disconnect_user(user)

        assert (result.connections, result.closed, result.gone, result.failed) == (
            len(live),
            len(still_open),
            len(live - still_open),
            0,
        ), result
        for cid in live:
            assert not self.h.api.connections.is_open(cid), f"{cid} of {user} is still open"
        if self.pump is not None:
            # sqs_batched: the workers read each room's audience after every row of the user
            # is deleted, so the user's own other connections are neither posted nor 410.
            rooms = {cid: sorted(self.conns[cid].rooms) for cid in live}
            for cid in live:
                self.forget(cid)
            for cid in sorted(live):
                for room in rooms[cid]:
                    self.announce(LEAVE, room, cid)
        else:
            for cid in sorted(live):  # in the order of its index partition: CONN#<id>
                self.conns[cid].open = False
                self.remove(cid)
        self.drain()
        posts = self.posts.take()
        if not self.access.presence_events:
            assert posts == [], "disconnect_user posted a frame"
        gone = {cid for cid, status in posts if status == 410}
        assert gone == self.presence_gone, (gone, self.presence_gone)

    # -- after every step ----------------------------------------------------------------

    def all_frames(self, cid: str) -> list[dict[str, Any]]:
        return [frames.decode(raw) for raw in self.h.api.connections.inbox(cid)]

    @invariant()
    def presence_events_reached_exactly_the_live_members(self) -> None:
        """The presence events of the last step: each to the room's other live members."""
        posted: Counter[tuple[str, str, str, str]] = Counter()
        for cid in sorted(self.conns):
            events = [f for f in self.all_frames(cid) if f["event"] in (JOIN, LEAVE)]
            for frame in events[self.presence_seen[cid] :]:
                assert frame["from"] is None, frame
                posted[(cid, frame["event"], frame["data"]["connection_id"], frame["room"])] += 1
            self.presence_seen[cid] = len(events)
        repeated = sorted(event for event, n in posted.items() if n > 1)
        assert not repeated, f"presence events announced more than once: {repeated}"
        received = set(posted)
        expected, self.presence.expected = self.presence.expected, set()
        gone, self.presence_gone = self.presence_gone, set()
        # Posts no check of the step took: only presence events, to whom they were due.
        for cid, status in self.posts.take():
            if status == 410:
                assert cid in gone, f"{WRONG}: {cid} answered 410 to a presence event"
            else:
                assert any(r == cid for r, *_ in expected), f"{cid} was posted {status}"
        more, missed = sorted(received - expected), sorted(expected - received)
        assert (more, missed) == ([], []), f"presence events: {more} more, {missed} missed"
        if received:
            count_step("presence_event")

    @invariant()
    def no_membership_expires_before_its_live_connection(self) -> None:
        """A ping refreshes a connection's memberships before its own row: whatever stops it
        part way, no membership of a live connection expires while the connection lives."""
        rows, now = self.h.rows(), self.clock.now
        for (cid, sk), expires_at in rows.items():
            connection = rows.get((cid, "CONN"))
            if sk.startswith("ROOM#") and connection is not None and connection > now:
                assert expires_at >= connection, f"{cid}'s {sk} expires before it: {rows}"

    @invariant()
    def table_matches_model(self) -> None:
        """Exactly the model's rows, with the model's expiry: nothing deleted by mistake."""
        actual, expected = self.h.rows(), self.expected_rows()
        lost = sorted(expected.keys() - actual.keys())
        assert not lost, f"{WRONG}: rows deleted without a 410, a disconnect or a sweep: {lost}"
        extra = sorted(actual.keys() - expected.keys())
        assert not extra, f"rows that should have been deleted: {extra}"
        assert actual == expected, "expires_at differs from the model"


class ChatMachine(FanoutMachine):
    """The machine with clients' chat only, no backend publishes: for the fault tests and
    the bug hunts, whose own steps the others would thin out (they have few examples)."""

    STEPS = tuple(
        step
        for step in FanoutMachine.STEPS
        if not step.startswith("publish_to_") and step != "disconnect_user"
    )

    # Not rules here: plain methods in place of the rules of the same names.
    def publish(self, data: st.DataObject) -> None:
        raise AssertionError("not a rule of ChatMachine")

    disconnect_user = publish


class AccessMachine(FanoutMachine):
    """The machine under a policy, a rate limit and presence events drawn per run.

    A frame never reaches a connection whose connect or join was denied (it has no row);
    a denied or rate-limited action writes nothing and posts nothing; presence lists
    exactly the room's live members; presence events reach exactly the others, for the
    clients' actions and the backend's publishes and ``disconnect_user`` alike. Every
    message a client sends also claims, in its body, a principal and rooms it does not
    have: identity comes from the authorizer only, so they change nothing.
    """

    DRAW_ACCESS = True
    STEPS = (
        *FanoutMachine.STEPS,
        "presence",
        "denied",
        "rate_limited",
        "presence_event",
        "too_many_rooms",
        "too_many_connections",
    )
    FORGED: ClassVar[dict[str, str]] = {
        "principal": PRINCIPALS[0],
        "principalId": PRINCIPALS[0],
        "rooms": ",".join(ROOMS),
    }

    @configure_rule(accesses(lean_on=True))
    def configure(self, **settings: Any) -> None:
        """As the others, drawing a rate limit and presence events in most runs."""
        FanoutMachine.configure(self, **settings)

    def call(self, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        return super().call(cid, {**self.FORGED, **body})

    def configured(self) -> None:
        """Each limit drawn is met at once, not only in a rule (Hypothesis turns a random
        subset of rules off in each run, and this machine has many): the first client joins
        every room (under a cap of fewer); a principal connects once more than its cap;
        under a rate limit, the first client sends one more message in a row than its
        bucket holds: the last is refused (429)."""
        senders = self.senders()
        if senders and self.access.max_rooms < len(ROOMS):
            for name in ROOMS:
                self.join_room(senders[0], name)
        if self.access.max_rooms < len(ROOMS) and self.can_connect():
            # The joins above meet the cap only where the policy lets the sender join every
            # room; a connect asking for them all meets it first, whatever the policy.
            self.connect(list(ROOMS), PRINCIPALS[0])
        if self.access.max_connections is not None:
            for _ in range(self.access.max_connections + 1):
                if self.can_connect():
                    self.connect([], PRINCIPALS[0])
        limit = self.access.rate_limit
        senders = self.senders()
        if limit is None or not senders:
            return
        sender = senders[0]
        room = min(self.conns[sender].rooms, default=None)
        count_step("chat_in_room" if room is not None else "chat_to_everyone")
        for n in range(limit.count + 1):
            self.send(sender, room, f"burst {n}")

    def repeats(self) -> list[int]:
        """Under a rate limit a chat is mostly one send more than the bucket holds."""
        limit = self.access.rate_limit
        return [2, 1, 3] if limit is None else [limit.count + 1, 1]

    @precondition(FanoutMachine.has_sender)
    @rule(data=st.data())
    def ask_presence(self, data: st.DataObject) -> None:
        """A live client asks who is in a room."""
        count_step("presence")
        cid, room = self.draw_sender_and_room(data, to_room=True)
        assert room is not None
        body = {"action": "presence", "room": room}
        if not self.allows(cid, "presence", room):
            self.refused(lambda: self.call(cid, body), 403, "forbidden", "presence")
            return
        if not self.take_tokens(cid):  # an answer to the caller costs a token too
            self.refused(lambda: self.call(cid, body), 429, "rate_limited", "presence")
            return
        members = self.audience(room)
        assert self.call(cid, body) == OK
        answers = [f for f in self.all_frames(cid) if f["event"] == "presence"]
        assert answers, f"{cid} got no presence answer for {room}"
        last = answers[-1]
        listed = {m["connection_id"] for m in last["members"]}
        assert (listed, last["count"], last["room"]) == (members, len(members), room), last
        principals = {m["connection_id"]: m["principal"] for m in last["members"]}
        assert principals == {m: self.conns[m].principal for m in members}
        assert self.posts.take() == [(cid, 200)]


def machine_for(harness: Harness, base: type[FanoutMachine] = FanoutMachine) -> type[FanoutMachine]:
    """A subclass of ``base`` bound to ``harness``."""
    return type(f"{base.__name__}_{harness.config.strategy}", (base,), {"harness": harness})


def machine_settings(fraction: float = MACHINE_EXAMPLES, **overrides: Any) -> settings:
    """The loaded profile's settings (see tests/conftest.py), for a state machine."""
    overrides.setdefault("max_examples", scaled(fraction))
    return settings(
        profile(),
        suppress_health_check=[*profile().suppress_health_check, HealthCheck.too_slow],
        **overrides,
    )


def run_and_check_steps(machine: type[FanoutMachine], machine_settings: settings) -> None:
    """Run the machine, then fail if one of its rules never ran (it checked nothing)."""
    run_machine(machine, machine_settings)
    assert_steps_fired(machine.steps())
