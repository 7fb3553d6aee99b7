"""The webhook HTTP adapter: connects only to the addresses the SSRF guard vetted, no redirects.

``aiohttp`` would resolve the host again between our check and the connect (DNS rebinding), so the
session uses :class:`PinnedResolver`, which answers only from the vetted addresses handed in with
each request. TLS still verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from esb.delivery.cloudevents_http import DeliveryRequest
from esb.delivery.ssrf import ResolvedTarget
from esb.observability import tracing

__all__ = ["HttpAnswer", "PinnedResolver", "WebhookClient"]


class PinnedResolver(AbstractResolver):
    """Resolves a host only to the addresses last vetted for it; anything else fails."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[str, ...]] = {}

    def pin(self, host: str, addresses: tuple[str, ...]) -> None:
        self._pins[host.lower()] = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        addresses = self._pins.get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"{host} was not vetted for delivery")
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addresses]

    async def close(self) -> None:
        self._pins.clear()


class HttpAnswer:
    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers


class WebhookClient:
    """One pooled session per worker; ``post`` raises on network errors and timeouts."""

    def __init__(self, *, limit_per_host: int = 64) -> None:
        self._resolver = PinnedResolver()
        self._session: aiohttp.ClientSession | None = None
        self._limit_per_host = limit_per_host

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False,
                                             limit=512, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def post(self, url: str, target: ResolvedTarget, request: DeliveryRequest,
                   timeout_s: float) -> HttpAnswer:
        self._resolver.pin(target.host, target.addresses)
        session = self._get_session()
        headers = request.headers
        if tracing.ENABLED:  # W3C traceparent of the current (delivery attempt) span
            headers = tracing.inject_http(dict(headers))
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=request.body, headers=headers,
                                    allow_redirects=False) as response:
                await response.read()  # drain, so the connection can be reused
                return HttpAnswer(response.status, dict(response.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
