"""``authorize``: the ``$connect`` REQUEST authorizer, in API Gateway's event and answer shapes.

Allowed: the principal, an Allow on the ``methodArn`` and the chosen claims as context.
Refused: ``Exception("Unauthorized")`` (401) when the token is missing or invalid, a Deny
(403) when it could not be checked. Either way one INFO line (ERROR for a misconfiguration)
says why, and never holds the token. Nothing else refuses differently, and nothing allows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fanout_core import metrics
from fanout_core.config import load_hook
from fanout_core.errors import ConfigError, InvalidKeyError
from fanout_core.keys import validate_principal
from fanout_core.signin import answer
from fanout_core.signin.keyset import KeySet
from fanout_core.signin.refusal import Refused
from fanout_core.signin.request import token_of
from fanout_core.signin.settings import SignInConfig, fingerprint
from fanout_core.signin.verify import claims_of, principal_of

log = logging.getLogger("fanout_core.signin")

Hook = Callable[[str, Mapping[str, Any]], Any]
MISSING_JWT = (
    "PyJWT is missing: the JWT check needs the jwt extra (pip install 'fanout-core[jwt]'; "
    "`make package` builds it into build/lambda/authorizer)"
)


class Unauthorized(Exception):
    """Raised with the message ``Unauthorized``: API Gateway answers 401."""


@dataclass
class Checker:
    """One configuration's check: the JWT's, with its key set, or the hook's."""

    config: SignInConfig
    key_set: KeySet | None = None
    hook: Hook | None = None

    def check(self, token: str, event: Mapping[str, Any]) -> tuple[str, answer.Context]:
        """The principal and context the token signs in as; Refused if it does not."""
        if self.hook is not None:
            return self._hooked(token, event)
        assert self.key_set is not None
        claims = claims_of(token, self.config, self.key_set)
        principal = principal_of(claims, self.config.principal_claim)
        return principal, answer.context_of(claims, self.config.context_claims)

    def _hooked(self, token: str, event: Mapping[str, Any]) -> tuple[str, answer.Context]:
        assert self.hook is not None
        try:
            result = self.hook(token, event)
        except Refused:
            raise
        except Exception as error:
            raise Refused(403, f"FANOUT_AUTHORIZER raised {type(error).__name__}") from None
        if result is None:
            raise Refused(401, "FANOUT_AUTHORIZER refused the token")
        principal: object = result
        context: object = {}
        if isinstance(result, tuple) and len(result) == 2:
            principal, context = result
        try:
            principal = validate_principal(principal)
        except InvalidKeyError:
            raise Refused(403, "FANOUT_AUTHORIZER answered no valid principal") from None
        return principal, answer.checked_context(context)


_lock = threading.Lock()
_current: tuple[tuple[str, ...], Checker] | None = None
_key_sets: dict[str, KeySet] = {}  # by URL: kept when other settings change


def checker() -> Checker:
    """This container's checker, rebuilt only when a variable changed; Refused 403 if the
    settings are bad or PyJWT is missing."""
    global _current
    seen = fingerprint()
    with _lock:
        if _current is not None and _current[0] == seen:
            return _current[1]
        try:
            config = SignInConfig.from_env()
            if config.hook is not None:
                made = Checker(config, hook=load_hook("FANOUT_AUTHORIZER", config.hook))
            else:
                made = Checker(config, key_set=_key_set(config.key_set_url))
        except ConfigError as error:
            log.error("sign-in misconfigured: %s", error)
            raise Refused(403, "the authorizer is misconfigured") from None
        except ImportError:
            log.error("sign-in: %s", MISSING_JWT)
            raise Refused(403, "PyJWT is missing") from None
        _current = (seen, made)
        return made


def _key_set(url: str) -> KeySet:
    if url not in _key_sets:
        if len(_key_sets) >= 8:
            _key_sets.clear()
        _key_sets[url] = KeySet(url)
    return _key_sets[url]


def reset() -> None:
    """Forget the checker and every key set (a new container's state)."""
    global _current
    with _lock:
        _current = None
        _key_sets.clear()


def _where(event: object) -> str:
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    if not isinstance(context, Mapping):
        return "?"
    identity = context.get("identity")
    source = identity.get("sourceIp") if isinstance(identity, Mapping) else None
    return f"connection {str(context.get('connectionId'))[:128]} from {str(source)[:64]}"


def authorize(event: Any, context: Any = None) -> dict[str, Any]:
    """The REQUEST authorizer's answer to ``event``; raises Unauthorized for a 401."""
    method_arn = event.get("methodArn") if isinstance(event, Mapping) else None
    resource = method_arn if answer.is_method_arn(method_arn) else None
    try:
        if resource is None:
            raise Refused(403, "the event has no $connect methodArn")
        check = checker()
        token = token_of(event, check.config.query_param)
        principal, claims = check.check(token, event)
        return answer.allow(principal, resource, claims)
    except Refused as refusal:
        metrics.add("Denied")
        log.info("sign-in refused (%d) %s: %s", refusal.status, _where(event), refusal.reason)
        if refusal.status == 401:
            raise Unauthorized("Unauthorized") from None
        return answer.deny(resource)
    except Exception as error:  # a fault of ours: refused, and only its kind is logged
        metrics.add("Errors")
        log.error("sign-in failed %s: %s", _where(event), type(error).__name__)
        return answer.deny(resource)
