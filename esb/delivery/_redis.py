"""Shared plumbing of the Redis-backed delivery stores: scripts and error translation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from esb.errors import StorageUnavailable

__all__ = ["LuaScript", "redis_errors", "text"]


@contextmanager
def redis_errors() -> Iterator[None]:
    """Translate redis-py errors where they enter our code: Redis down = 503, retriable."""
    try:
        yield
    except RedisError as exc:
        raise StorageUnavailable(f"Redis call failed: {exc}") from exc


def text(value: bytes | str) -> str:
    """A reply as ``str`` whether or not the client was built with ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else value


class LuaScript:
    """A Lua script run atomically by Redis (EVALSHA, falling back to EVAL once per server)."""

    def __init__(self, client: Redis, source: str) -> None:
        self._script = client.register_script(source)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with redis_errors():
            return await self._script(keys=list(keys), args=list(args))
