"""SigV4 for ``POST @connections`` requests, with everything that repeats computed once.

botocore's ``SigV4Auth`` rebuilds the whole signature for each request: the signing key (four
HMACs), the canonical headers, the payload's SHA-256. For a fan-out only the connection id
varies between posts, so ``PostSigner`` keeps the signing key per day, region and service, the
headers per second (``X-Amz-Date`` has a one-second resolution), and the payload hash per
payload, and signs a post with one SHA-256 and one HMAC. The result is byte for byte what
``SigV4Auth`` produces (``tests/test_http_poster.py`` compares them, and the local Management
API verifies them with botocore when asked to).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials

ALGORITHM = "AWS4-HMAC-SHA256"
_MAX_CACHED = 16  # signing keys and payloads kept: a few regions, a few fan-outs at once


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: HMACs of the day, region, service and ``aws4_request``."""
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def canonical_path(path: str) -> str:
    """The canonical URI of an already percent-encoded path, as ``SigV4Auth`` derives it.

    Dot segments and empty segments are removed, then the path is encoded once more.
    """
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(path), safe="/~")


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Every other ASCII character as quote() escapes it: one str.translate per id, in C.
_ESCAPES = {code: f"%{code:02X}" for code in range(128) if chr(code) not in _UNRESERVED}


def encoded_id(connection_id: str) -> str:
    """A connection id as a URI label, as botocore encodes it: only ``-._~`` stay."""
    if connection_id.isascii():
        return connection_id.translate(_ESCAPES)
    return quote(connection_id, safe="-._~")


@dataclass(frozen=True, slots=True)
class Payload:
    """What a post's body contributes, computed once per payload: hash and request tail."""

    data: bytes
    sha256: str
    tail: bytes  # the headers after Authorization, the blank line and the body


@dataclass(frozen=True, slots=True)
class Stamp:
    """What one second's posts to one host in one region share."""

    second: int
    canonical_tail: str  # the canonical request after the path, without the payload hash
    string_prefix: str  # the string to sign before the canonical request's hash
    head: bytes  # the request from the end of the request line to ``Signature=``
    key: bytes


class PostSigner:
    """Signs ``POST`` requests to the Management API as ``SigV4Auth`` does.

    ``credentials`` are read again (and so refreshed when they expire) once a second; ``clock``
    gives the signing time in seconds since the epoch. Safe to use from several threads: the
    caches are dictionaries replaced or filled whole.
    """

    def __init__(
        self,
        credentials: Callable[[], Credentials],
        *,
        service: str,
        user_agent: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self.service = service
        self.clock = clock
        self._user_agent = user_agent
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._stamps: dict[tuple[str, str], Stamp] = {}
        self._payloads: dict[int, Payload] = {}

    def payload(self, data: bytes) -> Payload:
        """The payload's hash and tail, computed once for the same ``data`` object."""
        # Keyed by identity, which is safe: the cached Payload holds ``data`` alive, so its
        # id cannot be reused by another object while it is cached. A fan-out posts one
        # bytes object to every target.
        payload = self._payloads.get(id(data))
        if payload is None or payload.data is not data:
            tail = f"\r\nUser-Agent: {self._user_agent}\r\nContent-Length: {len(data)}\r\n\r\n"
            payload = Payload(data, hashlib.sha256(data).hexdigest(), tail.encode() + data)
            if len(self._payloads) >= _MAX_CACHED:
                self._payloads = {}
            self._payloads[id(data)] = payload
        return payload

    def stamp(self, host: str, region: str) -> Stamp:
        """This second's headers and signing key for ``host`` in ``region``."""
        now = self.clock()
        second = int(now)
        stamp = self._stamps.get((host, region))
        if stamp is None or stamp.second != second:
            stamp = self._new_stamp(host, region, second)
            if len(self._stamps) >= _MAX_CACHED:
                self._stamps = {}
            self._stamps[(host, region)] = stamp
        return stamp

    def _new_stamp(self, host: str, region: str, second: int) -> Stamp:
        frozen: ReadOnlyCredentials = self._credentials().get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        day = amz_date[:8]
        key = self._keys.get((frozen.secret_key, day, region))
        if key is None:
            key = signing_key(frozen.secret_key, day, region, self.service)
            if len(self._keys) >= _MAX_CACHED:
                self._keys = {}
            self._keys[(frozen.secret_key, day, region)] = key
        scope = f"{day}/{region}/{self.service}/aws4_request"
        canonical = [f"host:{_trim(host)}", f"x-amz-date:{amz_date}"]
        head = [f"Host: {host}", f"X-Amz-Date: {amz_date}"]
        signed = "host;x-amz-date"
        if frozen.token:
            canonical.append(f"x-amz-security-token:{_trim(frozen.token)}")
            head.append(f"X-Amz-Security-Token: {frozen.token}")
            signed += ";x-amz-security-token"
        head.append(
            f"Authorization: {ALGORITHM} Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature="
        )
        return Stamp(
            second=second,
            canonical_tail="\n\n" + "\n".join(canonical) + f"\n\n{signed}\n",
            string_prefix=f"{ALGORITHM}\n{amz_date}\n{scope}\n",
            head=(" HTTP/1.1\r\n" + "\r\n".join(head)).encode("latin-1"),
            key=key,
        )

    def request(self, path: str, canonical: str, stamp: Stamp, payload: Payload) -> bytes:
        """The whole request: ``path`` as sent, ``canonical`` as signed (``canonical_path``)."""
        canonical_request = f"POST\n{canonical}{stamp.canonical_tail}{payload.sha256}"
        digest = hashlib.sha256(canonical_request.encode()).hexdigest()
        signature = hmac.digest(stamp.key, (stamp.string_prefix + digest).encode(), "sha256")
        return b"".join(
            (b"POST ", path.encode(), stamp.head, signature.hex().encode(), payload.tail)
        )


def _trim(value: str) -> str:
    # SigV4's Trimall: no spaces around a value, runs of spaces as one.
    return " ".join(value.split())
