"""Sign-in on ``$connect``: a REQUEST authorizer checking JWTs from any OIDC issuer, or your own
check (``FANOUT_AUTHORIZER``). ``fanout_core.handlers.authorizer`` is its Lambda handler.

Only the authorizer imports this, and it imports nothing the other handlers need; the JWT
check needs the ``jwt`` extra (``pip install 'fanout-core[jwt]'``).
"""

from fanout_core.signin.authorizer import Unauthorized, authorize, reset
from fanout_core.signin.refusal import Refused
from fanout_core.signin.settings import SignInConfig

__all__ = ["Refused", "SignInConfig", "Unauthorized", "authorize", "reset"]
