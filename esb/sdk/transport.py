"""HTTP transport: bearer auth, problem+json to typed errors, retries with backoff and jitter.

Retries are safe only where a repeat cannot do the work twice: a 429 was never processed, so it
is always retried; 503s and connection failures are retried for reads and for writes that carry
an ``Idempotency-Key`` (every publish does), never for other writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from esb.sdk import errors

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n sleeps uniform(0, min(cap, base*2**n))."""

    attempts: int = 4
    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.cap_s, retry_after)
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


def base_url(url: str | None) -> str:
    """``url`` or ``$ESB_URL``, without a trailing ``/api/v1`` (both spellings are accepted)."""
    value = (url or os.environ.get("ESB_URL") or DEFAULT_URL).rstrip("/")
    return value.removesuffix(API)


class Transport:
    """One aiohttp session (created lazily, in the caller's loop) and the retry policy."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 retry: RetryPolicy | None = None, timeout_s: float = 30.0,
                 persistent: bool = True) -> None:
        self.url = base_url(url)
        self.token = token if token is not None else os.environ.get("ESB_TOKEN")
        self.retry = retry or RetryPolicy()
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.persistent = persistent
        self._session: aiohttp.ClientSession | None = None

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**out, **(extra or {})}

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, data: bytes | None = None,
                      api: bool = True) -> Any:
        """The decoded JSON answer (None for 204), or a typed :mod:`esb.sdk.errors` error."""
        url = self.url + (API if api else "") + path
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        hdrs = self.headers(headers)
        retry_unavailable = method in _SAFE_METHODS or "Idempotency-Key" in hdrs
        attempt = 0
        try:
            while True:
                try:
                    return await self._once(method, url, query, hdrs, json_body, data)
                except errors.RateLimited as exc:
                    if attempt + 1 >= self.retry.attempts:
                        raise
                    await asyncio.sleep(self.retry.delay(attempt, exc.retry_after))
                except errors.Unavailable:
                    if not retry_unavailable or attempt + 1 >= self.retry.attempts:
                        raise
                    await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
        finally:
            if not self.persistent:
                await self.close()

    async def _once(self, method: str, url: str, query: dict[str, str], headers: dict[str, str],
                    json_body: Any, data: bytes | None) -> Any:
        session = await self.session()
        try:
            async with session.request(method, url, params=query, headers=headers,
                                       json=json_body if data is None else None,
                                       data=data) as resp:
                text = await resp.text()
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise errors.Unavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        if status >= 400:
            raise errors.from_response(status, body, resp_headers)
        return body


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
