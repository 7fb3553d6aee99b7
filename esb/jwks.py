"""Verification keys from an identity provider's JWKS endpoint (``ESB_JWT_JWKS_URL``), ADR 0015.

Keys are fetched with aiohttp (never on the event loop's critical path synchronously), cached by
``kid``, and refetched when the cache is older than ``ESB_JWT_JWKS_REFRESH_S`` or a token names
a ``kid`` the cache lacks (the IdP rotated its key). Unknown-``kid`` refetches are spaced by
:attr:`JwksKeys.cooldown_s`, so a flood of forged ``kid`` values costs one fetch per cooldown.
A failed fetch keeps the previous keys (an IdP hiccup must not log every caller out).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

from esb.errors import redact

log = logging.getLogger(__name__)

#: Signature algorithms accepted from a JWKS (asymmetric only: the IdP keeps the private key).
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})


class JwksKeys:
    """A cached, refreshable ``kid -> key`` map from one JWKS URL."""

    cooldown_s: float = 5.0  # least time between two fetches triggered by an unknown kid

    def __init__(self, url: str, *, refresh_s: float = 300.0, timeout_s: float = 5.0) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    def key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    @property
    def stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self.refresh_s

    def _cooling(self) -> bool:
        fetched = self._fetched_at
        return fetched is not None and time.monotonic() - fetched < self.cooldown_s

    async def refresh(self) -> bool:
        """Fetch the set unless one was fetched within the cooldown; True if the keys changed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._cooling():
                return False
            self._fetched_at = time.monotonic()
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch())
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
                log.warning("JWKS fetch from %s failed (keeping %d cached keys): %s",
                            redact(self.url), len(self._keys), redact(str(exc))[:300])
                return False
            changed = keys.keys() != self._keys.keys()
            self._keys = keys
            return changed

    async def _fetch(self) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(self.url, headers={"Accept": "application/json"}) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document that carry a ``kid`` and an accepted algorithm."""
    if not isinstance(document, dict):
        raise ValueError("JWKS document is not a JSON object")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "kid" not in entry:
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
        if key.algorithm_name in JWKS_ALGORITHMS:
            keys[str(entry["kid"])] = key
    return keys
