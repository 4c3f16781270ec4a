"""The access machine with principals from real tokens, through the library's authorizer.

Each client with a principal signs in with a JWT signed by the test issuer (its ``rooms``
claim a list for some clients, comma-separated text for others); ``fanout_core.handlers.
authorizer`` checks it against the key set served over HTTP (``FANOUT_JWT_*`` set by the
test), and what it answers is the identity every later event of the connection carries. A
client without a principal has no token: it is refused before ``$connect`` and writes
nothing. Everything else is AccessMachine's: the model's rooms must be what the token's
claims grant through ``owner_rooms``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis.stateful import precondition

from fanout_core import handlers
from fanout_core.signin import Unauthorized
from tests.support import issuer
from tests.support.access_model import accesses
from tests.support.hyp_strategies import count_step
from tests.support.machine import (
    PRINCIPALS,
    AccessMachine,
    FanoutMachine,
    configure_rule,
    connect_rule,
)


class SignedInAccessMachine(AccessMachine):
    """AccessMachine; identities come from the authorizer's answers to real tokens."""

    # Its runs are half AccessMachine's: the caps and a principal's bucket are that one's to
    # meet; here they would leave rooms too empty for presence events.
    STEPS = (
        *(step for step in AccessMachine.STEPS if not step.startswith("too_many_")),
        "signed_in",
        "refused_sign_in",
    )

    @configure_rule(accesses(lean_on=True, caps=False))
    def configure(self, **settings: Any) -> None:
        """As AccessMachine's, without the caps."""
        FanoutMachine.configure(self, **settings)

    def __init__(self) -> None:
        super().__init__()
        self.signed: dict[str, dict[str, Any]] = {}
        self.issuer = os.environ["FANOUT_JWT_ISSUER"]

    # AccessMachine's connect, with the draws leaning to a principal (Hypothesis leans to the
    # first choice): a client without one is refused, and too many of those would leave
    # rooms too empty for presence events.
    @precondition(FanoutMachine.can_connect)
    @connect_rule((*PRINCIPALS, None))
    def connect(
        self,
        rooms: list[str],
        principal: str | None = None,
        claims: Sequence[str] = (),
        claims_all: bool = True,
    ) -> None:
        """A client connects, signing in with a token for its principal (if it has one)."""
        AccessMachine.connect(self, rooms, principal, claims, claims_all)

    def sign_in(self, cid: str) -> tuple[bool, dict[str, Any]]:
        conn = self.conns[cid]
        if conn.principal is None:
            with pytest.raises(Unauthorized):
                handlers.authorizer(issuer.request(), None)
            count_step("refused_sign_in")
            return False, {}
        rooms: object = list(conn.claims) if len(self.signed) % 2 else ",".join(conn.claims)
        key = issuer.ec_key() if len(self.signed) % 3 else issuer.rsa_key()
        token = issuer.sign(issuer.claims(self.issuer, sub=conn.principal, rooms=rooms), key)
        answer = handlers.authorizer(issuer.request(token), None)
        assert answer["principalId"] == conn.principal
        identity = {"principalId": answer["principalId"], **answer["context"]}
        self.signed[cid] = identity
        count_step("signed_in")
        return True, identity

    def identity(self, cid: str) -> dict[str, Any] | None:
        """What the authorizer answered at its connect: API Gateway repeats it."""
        return self.signed.get(cid)
