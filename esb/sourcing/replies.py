"""In-process replies: a view waits on a future keyed by command id; the owner's agent
(on the same worker, because the request was routed to the owner) completes it.

A command decided elsewhere (after a rebalance) completes nothing here: the waiting request
times out and the client retries with the same event id, which is idempotent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from esb.errors import Timeout


class PendingReplies:
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    def expect(self, command_id: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        return future

    def resolve(self, command_id: str, result: Any) -> bool:
        future = self._waiting.pop(command_id, None)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    def fail(self, command_id: str, error: BaseException) -> bool:
        future = self._waiting.pop(command_id, None)
        if future is None or future.done():
            return False
        future.set_exception(error)
        return True

    def discard(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    async def wait(self, command_id: str, future: asyncio.Future[Any], timeout: float) -> Any:
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Timeout(f"the aggregate's owner did not answer within {timeout:.0f}s; retry "
                          "with the same event_id (appends are idempotent)",
                          retry_after=1) from None
        finally:
            self.discard(command_id)

    def __len__(self) -> int:
        return len(self._waiting)
