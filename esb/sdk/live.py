"""Live tail over the bus's WebSocket (``/ws/events/{stream}``): events as they are routed.

Used where the client has no broker access. Entering the context waits for the server's
``subscribed`` hello, so anything published after ``__aenter__`` returns is seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from esb.sdk import errors
from esb.sdk.transport import Transport


class LiveTail:
    """``async with client.tail("orders", event_type="order.*") as tail: async for m in tail``.

    Each item is the server's message: ``{"type": "event", "partition", "offset", "event"}``
    where ``event`` is a structured CloudEvent (JSON ``data`` decoded).
    """

    def __init__(self, transport: Transport, stream: str, event_type: str = "*") -> None:
        self.transport = transport
        self.stream = stream
        self.event_type = event_type
        self.hello: dict[str, Any] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> LiveTail:
        url = f"{self.transport.url}/ws/events/{quote(self.stream, safe='')}"
        params = {"event_type": self.event_type}
        if self.transport.token:
            params["access_token"] = self.transport.token
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(url, params=params, heartbeat=20)
            self.hello = await self._ws.receive_json(timeout=30)
        except aiohttp.WSServerHandshakeError as exc:
            await self.close()
            raise errors.from_response(exc.status, {"detail": exc.message}) from None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            await self.close()
            raise errors.Unavailable(f"live tail {self.stream}: {type(exc).__name__}") from exc
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self._ws = self._session = None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        assert self._ws is not None, "use `async with` first"
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                item = msg.json()
                if item.get("type") == "event":
                    yield item
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break
        code = self._ws.close_code if self._ws is not None else None
        if code not in (None, 1000):
            raise errors.Unavailable(f"live tail {self.stream} closed by the server ({code})")
