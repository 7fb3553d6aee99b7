"""The blocking facade: the same methods as :class:`EsbClient`, for scripts and the CLI.

Design choice: one private event loop on a daemon thread per client (not ``asyncio.run`` per
call), so the HTTP session and its keep-alive connections are reused across calls and the
facade also works when the caller's thread already runs a loop (e.g. inside Jupyter).
Coroutine methods return their result; async-iterator methods return plain iterators.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from esb.sdk.client import EsbClient


class SyncEsbClient:
    """``with SyncEsbClient(url, token) as esb: esb.publish(event_type=..., ...)``."""

    def __init__(self, url: str | None = None, token: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="esb-sdk",
                                        daemon=True)
        self._thread.start()
        self.aio = EsbClient(url, token, **options)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aio, name)
        if inspect.isasyncgenfunction(attr):
            return self._iterator(attr)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._run(attr(*a, **kw))
        return attr

    def _iterator(self, func: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
        def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
            agen = func(*args, **kwargs)
            try:
                while True:
                    try:
                        yield self._run(agen.__anext__())
                    except StopAsyncIteration:
                        return
            finally:
                self._run(agen.aclose())

        return iterate

    def tail(self, stream: str, event_type: str = "*", *, from_beginning: bool = False,
             limit: int | None = None, timeout_s: float | None = None
             ) -> Iterator[dict[str, Any]]:
        """:meth:`EsbClient.follow`; stops after ``limit`` events or ``timeout_s`` of silence."""
        events = self.aio.follow(stream, event_type, from_beginning=from_beginning)
        seen = 0
        try:
            while limit is None or seen < limit:
                try:
                    item = self._run(asyncio.wait_for(events.__anext__(), timeout_s))
                except (StopAsyncIteration, TimeoutError):
                    return
                seen += 1
                yield item
        finally:
            self._run(events.aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self.aio.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncEsbClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
