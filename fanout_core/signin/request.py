"""Where the token is: the query string, or the subprotocol header after ``fanout``."""

from __future__ import annotations

from collections.abc import Mapping

from fanout_core import subprotocol
from fanout_core.signin.refusal import Refused


def _query_values(event: Mapping[str, object], name: str) -> list[str]:
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, Mapping) and isinstance(multi.get(name), list):
        return [value for value in multi[name] if isinstance(value, str) and value]
    single = event.get("queryStringParameters")
    if isinstance(single, Mapping) and isinstance(single.get(name), str) and single[name]:
        return [single[name]]
    return []


def token_of(event: object, query_param: str) -> str:
    """The one token the handshake carries; Refused 401 if none, or more than one."""
    if not isinstance(event, Mapping):
        raise Refused(401, "the event is not an object")
    query = _query_values(event, query_param)
    if len(query) > 1:
        raise Refused(401, f"the query string has more than one {query_param}")
    offered = subprotocol.offered(event)
    from_header = None
    if offered[:1] == [subprotocol.PROTOCOL] and len(offered) > 1:
        if len(offered) != 2:
            raise Refused(401, "the subprotocol header holds more than fanout and a token")
        from_header = offered[1]
    if query and from_header is not None:
        raise Refused(401, "a token in both the query string and the subprotocol header")
    token = query[0] if query else from_header
    if not token:
        raise Refused(401, "no token")
    return token
