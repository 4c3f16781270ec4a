"""An issuer's public keys, fetched with PyJWT's ``PyJWKClient`` and kept across invocations.

The set is fetched with a short timeout and kept for ``lifespan`` seconds. A token whose
``kid`` is not in it refetches the set, at most once per ``cooldown``: a stream of tokens
with made-up key ids costs the issuer one fetch per cooldown, not one each. A fetch that
fails also waits out the cooldown; meanwhile the last set fetched is used, up to
``max_stale`` seconds past its lifespan (the issuer's outage does not sign everyone out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fanout_core.signin.refusal import Refused

log = logging.getLogger("fanout_core.signin")

FETCH_TIMEOUT = 2.0  # seconds; API Gateway waits for the authorizer, the client for both
LIFESPAN = 300.0
COOLDOWN = 30.0
MAX_STALE = 3600.0
KEY_TYPES = frozenset({"RSA", "EC", "OKP"})  # never "oct": a shared secret is no public key


@dataclass(frozen=True)
class PublicKey:
    """One signing key of the set: the key PyJWT checks with, and what its JWK says of it."""

    key: Any  # a cryptography public key
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own alg, when it names one


class KeySet:
    """The signing keys at ``url``, by key id."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None = None,
        lifespan: float = LIFESPAN,
        cooldown: float = COOLDOWN,
        max_stale: float = MAX_STALE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from jwt import PyJWKClient

        # Its own cache is off: this one also waits out the cooldown after a failed fetch.
        timeout = FETCH_TIMEOUT if timeout is None else timeout
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self.url = url
        self.lifespan = lifespan
        self.cooldown = cooldown
        self.max_stale = max_stale
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PublicKey] | None = None
        self._fetched_at = 0.0
        self._tried_at: float | None = None
        self.fetches = 0  # attempts, for tests and logs

    def key(self, kid: str) -> PublicKey:
        """The key ``kid``; Refused 401 if the issuer has no such key, 403 if no set is had."""
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self.lifespan:
                self._refresh(now)
            found = self._keys.get(kid) if self._keys is not None else None
            if found is None and self._keys is not None:
                self._refresh(now)  # a key the issuer may have just added
                found = self._keys.get(kid) if self._keys is not None else None
            if found is not None:
                return found
            if self._keys is None:
                raise Refused(403, "the issuer's key set cannot be fetched")
            raise Refused(401, "no key of the issuer has the token's key id")

    def _refresh(self, now: float) -> None:
        if self._tried_at is not None and now - self._tried_at < self.cooldown:
            self._expire(now)
            return
        self._tried_at = now
        self.fetches += 1
        try:
            keys = self._fetch()
        except Exception as error:
            # The exception's text may quote the server's answer: only its kind is logged.
            kind = type(error).__name__
            log.warning("sign-in: the key set at %s cannot be fetched (%s)", self.url, kind)
            self._expire(now)
            return
        self._keys, self._fetched_at = keys, now

    def _expire(self, now: float) -> None:
        if self._keys is not None and now - self._fetched_at > self.lifespan + self.max_stale:
            self._keys = None

    def _fetch(self) -> dict[str, PublicKey]:
        from jwt import PyJWK

        data = self._client.fetch_data()
        entries = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError("not a JWK set")
        keys: dict[str, PublicKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if entry.get("kty") not in KEY_TYPES or not isinstance(kid, str) or not kid:
                continue
            try:
                key = PyJWK(entry).key
            except Exception:  # an algorithm or curve PyJWT cannot use: not this key
                continue
            alg, crv = entry.get("alg"), entry.get("crv")
            keys[kid] = PublicKey(
                key,
                entry["kty"],
                crv if isinstance(crv, str) else None,
                alg if isinstance(alg, str) else None,
            )
        if not keys:
            raise ValueError("no usable signing key")
        return keys
