"""The authorizer's answer: an IAM policy on the ``methodArn``, the principal and a context
API Gateway accepts (strings, numbers and booleans, the whole answer within 8 KB)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fanout_core.signin.refusal import Refused

# API Gateway's "Lambda authorizer result size" quota for WebSocket APIs.
MAX_ANSWER_BYTES = 8 * 1024
# The principal a refusal names: API Gateway requires one, and nothing reads it.
REFUSED_PRINCIPAL = "unauthenticated"
_ARN = re.compile(r"arn:[a-z-]+:execute-api:[\w-]+:\d+:\w+/[\w-]+/\$connect")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_EXACT = 2**53  # numbers a JavaScript client (and JSON at large) reads exactly
Context = dict[str, str | int | float | bool]


def is_method_arn(value: object) -> bool:
    """Whether ``value`` is a WebSocket ``$connect`` method ARN."""
    return isinstance(value, str) and _ARN.fullmatch(value) is not None


def scalar(value: object) -> str | int | float | bool:
    """``value`` as API Gateway's context takes it: a string, number or boolean as is,
    anything else as its JSON text."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int) and -_EXACT <= value <= _EXACT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def context_of(claims: Mapping[str, Any], names: Iterable[tuple[str, str]]) -> Context:
    """The claims named, those the token has, as context values under their context names."""
    return {name: scalar(claims[claim]) for name, claim in names if claim in claims}


def checked_context(context: object) -> Context:
    """A hook's context, each name usable and each value a context value; Refused 403 if not."""
    if not isinstance(context, Mapping):
        raise Refused(403, "FANOUT_AUTHORIZER answered a context that is not a mapping")
    for name in context:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "principalId":
            raise Refused(403, "FANOUT_AUTHORIZER answered a context name API Gateway cannot take")
    return {name: scalar(value) for name, value in context.items()}


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def allow(principal: str, method_arn: str, context: Context) -> dict[str, Any]:
    """Allow ``$connect`` for ``principal``; Refused 403 if the answer would pass 8 KB."""
    answer = {"principalId": principal, "policyDocument": _policy("Allow", method_arn)}
    answer["context"] = dict(context)
    if len(json.dumps(answer, separators=(",", ":")).encode()) > MAX_ANSWER_BYTES:
        raise Refused(403, "the context claims make an answer over API Gateway's 8 KB")
    return answer


def deny(method_arn: str | None) -> dict[str, Any]:
    """Deny ``$connect`` (403): for a token that could not be checked."""
    return {
        "principalId": REFUSED_PRINCIPAL,
        "policyDocument": _policy("Deny", method_arn or "*"),
    }
