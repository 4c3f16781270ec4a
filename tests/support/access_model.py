"""The state machine's model of access control: a drawn policy, the rate limit, presence.

``Access`` is what one run draws: a policy (``open``, ``owner_rooms``, or ``open`` with a
random set of denied (action, room) pairs), maybe a rate limit per connection and one per
principal, maybe presence events, a cap on rooms per connection and maybe one on a
principal's connections. Its ``allows`` decides as the library's policy must, from what the
model knows; ``Bucket`` keeps a token bucket as ``fanout_core.ratelimit`` must.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from fanout_core.config import DEFAULT_MAX_ROOMS, RateLimit
from fanout_core.policy import AccessRequest, Decision, deny, open_policy, owner_rooms
from tests.support.hyp_strategies import ROOMS

POLICY_KINDS = ("open", "owner_rooms", "deny_set")
MICROS = 1_000_000
Pair = tuple[str, str | None]  # (action, room or None for everyone / a bare connect)


@dataclass(frozen=True)
class Access:
    """One run's access settings."""

    kind: str = "open"
    denied: frozenset[Pair] = frozenset()
    rate_limit: RateLimit | None = None
    presence_events: bool = False
    user_rate_limit: RateLimit | None = None
    max_rooms: int = DEFAULT_MAX_ROOMS
    max_connections: int | None = None  # a principal's live connections

    def policy(self) -> Any:
        """The callable the runtime is built with."""
        if self.kind == "owner_rooms":
            return owner_rooms
        if self.kind == "open":
            return open_policy
        denied = self.denied

        def deny_set(request: AccessRequest) -> Decision:
            if (request.action, request.room) in denied:
                return deny(f"{request.action} {request.room} is in this run's deny set")
            return open_policy(request)

        return deny_set

    def allows(
        self,
        action: str,
        room: str | None,
        *,
        principal: str | None,
        claims: tuple[str, ...],
        is_member: bool | None = None,
    ) -> bool:
        """What the policy must answer, computed from the model alone."""
        members_only = action in ("presence", "history")
        if self.kind == "owner_rooms" and not (action == "connect" and room is None):
            mine = set(claims) | ({f"user:{principal}"} if principal else set())
            if room is None or room not in mine:
                return False
        if self.kind == "deny_set" and (action, room) in self.denied:
            return False
        return not members_only or bool(is_member)

    def settings(self) -> dict[str, Any]:
        """The runtime's settings (FanoutConfig fields) of this run's limits."""
        return {
            "rate_limit": self.rate_limit,
            "presence_events": self.presence_events,
            "user_rate_limit": self.user_rate_limit,
            "max_rooms_per_connection": self.max_rooms,
            "max_connections_per_user": self.max_connections,
        }


def accesses(*, lean_on: bool = False, caps: bool = True) -> st.SearchStrategy[Access]:
    """What a run draws: mostly with something switched on, so each check is met.

    Draws lean to the first of their choices: ``lean_on`` puts a rate limit and presence
    events first, and draws a rate limit per principal and the caps (``caps``), for the
    access machine; the others keep the draws they were tuned with.
    """
    # Not ("connect", None): a run in which nobody can connect checks nothing.
    pairs = st.tuples(
        st.sampled_from(["join", "send", "presence"]), st.sampled_from([None, *ROOMS])
    )
    limit = st.builds(RateLimit, st.sampled_from([1, 1, 2, 3]), st.sampled_from([5.0, 30.0]))
    limits = (limit | st.none()) if lean_on else (st.none() | limit)
    events = st.sampled_from([True, False]) if lean_on else st.booleans()
    draws: dict[str, st.SearchStrategy[Any]] = {
        "kind": st.sampled_from(POLICY_KINDS),
        "denied": st.frozensets(pairs, max_size=4),
        "rate_limit": limits,
        "presence_events": events,
    }
    if lean_on and caps:  # the others keep the draws they were tuned with
        # Caps a run meets: 3 rooms (ROOMS) against 2, a principal's connections against 1, 2.
        user_limit = st.builds(RateLimit, st.sampled_from([2, 4]), st.sampled_from([5.0, 30.0]))
        draws["user_rate_limit"] = user_limit | st.none()
        draws["max_rooms"] = st.sampled_from([2, DEFAULT_MAX_ROOMS])
        draws["max_connections"] = st.sampled_from([1, 2]) | st.none()
    return st.builds(Access, **draws)


@dataclass
class Bucket:
    """A connection's send bucket, as GCRA keeps it: the theoretical arrival time."""

    tat: int | None = None  # epoch microseconds
    expires_at: int | None = None  # of its row; None: no row

    def take(self, limit: RateLimit | None, now: float) -> bool:
        """Take a token at ``now``; False (nothing changes) if the bucket is empty. No limit:
        True, and no row."""
        if limit is None:
            return True
        interval = max(1, round(limit.seconds * MICROS / limit.count))
        burst = interval * (limit.count - 1)
        at = int(now * MICROS)
        if self.tat is None or self.tat <= at:
            self.tat = at + interval
        elif self.tat <= at + burst:
            self.tat += interval
        else:
            return False
        self.expires_at = math.ceil((at + burst + interval) / MICROS)
        return True


@dataclass
class PresenceLog:
    """The presence frames the model expects one step to post: (receiver, event, subject, room)."""

    expected: set[tuple[str, str, str, str]] = field(default_factory=set)
