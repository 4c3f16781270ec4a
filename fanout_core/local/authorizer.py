"""A ``$connect`` Lambda authorizer, called as API Gateway calls a REQUEST authorizer.

The authorizer gets the documented REQUEST event (headers, query string, request context,
``methodArn``) and answers an IAM policy with a ``principalId`` and an optional
``context``. Allowed, its ``principalId`` and ``context`` go into every later event of the
connection as ``requestContext.authorizer``; denied, the handshake is refused with 403;
raising ``Exception("Unauthorized")`` refuses it with 401, as on AWS.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Authorizer = Callable[[dict[str, Any], Any], Any]


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``package.module.function``) as the callable it names."""
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"expected MODULE:FUNCTION, got {spec!r}")
    target: Callable[..., Any] | None = getattr(
        importlib.import_module(module_name), attribute, None
    )
    if not callable(target):
        raise ValueError(f"{spec} is not a callable")
    return target


@dataclass(frozen=True)
class Verdict:
    """What the authorizer decided: an HTTP status for the handshake, and the identity."""

    status: int  # 200 to accept; 401, 403 or 500 to refuse
    principal: str | None = None
    context: dict[str, str | int | float | bool] = field(default_factory=dict)
    reason: str = ""

    @property
    def identity(self) -> dict[str, Any]:
        """``requestContext.authorizer`` of every later event: the principal wins over a
        context key of its name."""
        return {**self.context, "principalId": self.principal}


def request_event(
    method_arn: str,
    headers: Mapping[str, str],
    query: Mapping[str, list[str]],
    request_context: Mapping[str, Any],
) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends for a WebSocket ``$connect``."""
    return {
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": dict(query) or None,
        "stageVariables": {},
        "requestContext": dict(request_context),
    }


def _allows(policy: Any, method_arn: str) -> bool:
    """True if the IAM policy allows execute-api:Invoke on ``method_arn`` and denies nothing."""
    statements = policy.get("Statement") if isinstance(policy, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list):
        return False
    allowed = False
    for statement in statements:
        if not isinstance(statement, Mapping):
            return False
        actions, resources = statement.get("Action", []), statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        matches = any(fnmatch.fnmatchcase("execute-api:Invoke", str(a)) for a in actions) and any(
            fnmatch.fnmatchcase(method_arn, str(r)) for r in resources
        )
        if matches and statement.get("Effect") == "Deny":
            return False
        allowed = allowed or (matches and statement.get("Effect") == "Allow")
    return allowed


def verdict(authorizer: Authorizer, event: dict[str, Any], context: Any) -> Verdict:
    """Call ``authorizer`` and read its answer as API Gateway does."""
    try:
        answer = authorizer(event, context)
    except BaseException as error:  # SystemExit too: one refused handshake, not the server
        if str(error) == "Unauthorized":
            return Verdict(401, reason="Unauthorized")
        log.exception("the authorizer raised")
        return Verdict(500, reason="the authorizer failed")
    if not isinstance(answer, Mapping):
        return Verdict(500, reason="the authorizer answered no policy")
    principal = answer.get("principalId")
    extra = answer.get("context") or {}
    if not isinstance(principal, str) or not isinstance(extra, Mapping):
        return Verdict(500, reason="principalId must be a string and context an object")
    if not all(isinstance(v, str | int | float | bool) for v in extra.values()):
        # API Gateway refuses nested context values (AuthorizerConfigurationException).
        return Verdict(500, reason="context values must be strings, numbers or booleans")
    if not _allows(answer.get("policyDocument"), str(event.get("methodArn"))):
        return Verdict(403, principal, dict(extra), reason="Forbidden")
    return Verdict(200, principal, dict(extra))
