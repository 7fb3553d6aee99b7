"""Idempotency keys for publishing: a retried request returns the first answer and publishes nothing.

The first request with a key claims it (SET NX) with the request's fingerprint, publishes, then
stores its response. A retry with the same key gets the stored response; one still in flight waits
briefly for it; the same key with a different body is a 422. Redis shares keys across replicas;
without Redis an in-process store serves a single node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from esb.errors import Conflict, StorageUnavailable, ValidationFailed

PENDING = "pending"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


class KeyValueBackend(Protocol):
    async def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool: ...
    async def set(self, key: str, value: str, ttl_s: int) -> None: ...
    async def get(self, key: str) -> str | None: ...
    async def delete(self, key: str) -> None: ...


class MemoryBackend:
    """Single-process fallback with TTLs and a size bound."""

    def __init__(self, max_items: int = 100_000) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_items

    def _live(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        return item[1]

    async def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl_s)
        return True

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        self._items[key] = (time.monotonic() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)


class RedisBackend:
    def __init__(self, client: Any) -> None:
        self._redis = client

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except Exception as exc:  # redis.exceptions.RedisError and connection errors
            raise StorageUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc

    async def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        return bool(await self._call(self._redis.set(key, value, nx=True, ex=ttl_s)))

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        await self._call(self._redis.set(key, value, ex=ttl_s))

    async def get(self, key: str) -> str | None:
        value = await self._call(self._redis.get(key))
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, key: str) -> None:
        await self._call(self._redis.delete(key))


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IdempotencyStore:
    PENDING_TTL_S = 120

    def __init__(self, backend: KeyValueBackend, *, ttl_s: int = 86400, wait_s: float = 30.0) -> None:
        self._backend = backend
        self._ttl = ttl_s
        self._wait = wait_s

    @staticmethod
    def _key(tenant: str, key: str) -> str:
        return f"esb:idem:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def claim(self, tenant: str, key: str, body_fingerprint: str) -> StoredResponse | None:
        """None: the caller owns the key and must ``complete`` or ``release`` it.
        Otherwise: the stored response of the first request."""
        if not key or len(key) > 255:
            raise ValidationFailed("Idempotency-Key must be 1-255 characters",
                                   errors=[{"path": "header:Idempotency-Key", "message": "length"}])
        storage_key = self._key(tenant, key)
        pending = json.dumps({"state": PENDING, "fp": body_fingerprint})
        deadline = time.monotonic() + self._wait
        while True:
            if await self._backend.set_if_absent(storage_key, pending, self.PENDING_TTL_S):
                return None
            raw = await self._backend.get(storage_key)
            if raw is None:
                continue  # expired between the two calls: try to claim again
            stored = json.loads(raw)
            if stored["fp"] != body_fingerprint:
                raise ValidationFailed(
                    "Idempotency-Key was already used with a different request body",
                    errors=[{"path": "header:Idempotency-Key", "message": "reused"}])
            if stored["state"] != PENDING:
                return StoredResponse(stored["status"], stored["body"])
            if time.monotonic() > deadline:
                raise Conflict("a request with this Idempotency-Key is still in progress")
            await asyncio.sleep(0.05)

    async def complete(self, tenant: str, key: str, body_fingerprint: str,
                       response: StoredResponse) -> None:
        value = json.dumps({"state": "done", "fp": body_fingerprint,
                            "status": response.status, "body": response.body})
        await self._backend.set(self._key(tenant, key), value, self._ttl)

    async def release(self, tenant: str, key: str) -> None:
        await self._backend.delete(self._key(tenant, key))
