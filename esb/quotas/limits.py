"""What each tenant may use: defaults from the settings, per-tenant overrides in the catalog.

Overrides live in the metadata catalog (kind ``quota``, one record per tenant), the compacted
log every replica reads: a ``PUT /api/v1/quotas`` on one replica applies on all of them, with
no database on the publish path. A limit of 0 means unlimited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from esb.catalog import Outcome
from esb.errors import QuotaExceeded, StorageUnavailable, Timeout

KIND = "quota"
_NAME = "limits"

CountLimit = Literal["max_streams", "max_partitions", "max_processors", "max_patterns",
                     "max_subscriptions", "max_schemas", "max_read_models"]
COUNT_LIMITS: tuple[CountLimit, ...] = (
    "max_streams", "max_partitions", "max_processors", "max_patterns", "max_subscriptions",
    "max_schemas", "max_read_models")
#: A rate is 0 (unlimited) or in this range: slower rates would ask clients to wait for days,
#: faster ones overflow a burst; both would be configuration mistakes.
MIN_RATE, MAX_EVENTS_RATE, MAX_BYTES_RATE, MAX_COUNT = 0.001, 1e9, 1e12, 10**9
RATES = ("publish_events_per_s", "publish_bytes_per_s")


def _rate(value: float | None) -> float | None:
    if value is not None and 0 < value < MIN_RATE:
        raise ValueError(f"a rate is 0 (unlimited) or at least {MIN_RATE}/s")
    return value


class QuotaLimits(BaseModel):
    """One tenant's effective limits (0 = unlimited); field names are the settings' without
    the ``quota_`` prefix, and the ``limit`` a refusal names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    publish_events_per_s: float = Field(0, ge=0, le=MAX_EVENTS_RATE)
    publish_bytes_per_s: float = Field(0, ge=0, le=MAX_BYTES_RATE)
    burst_s: float = Field(1.0, gt=0, le=60)
    max_streams: int = Field(0, ge=0, le=MAX_COUNT)
    max_partitions: int = Field(0, ge=0, le=MAX_COUNT)
    max_processors: int = Field(0, ge=0, le=MAX_COUNT)
    max_patterns: int = Field(0, ge=0, le=MAX_COUNT)
    max_subscriptions: int = Field(0, ge=0, le=MAX_COUNT)
    max_schemas: int = Field(0, ge=0, le=MAX_COUNT)
    max_read_models: int = Field(0, ge=0, le=MAX_COUNT)

    _rates = field_validator(*RATES)(_rate)

    @classmethod
    def from_settings(cls, settings: Any) -> QuotaLimits:
        """The defaults every tenant has unless overridden (``ESB_QUOTA_*``)."""
        return cls(**{name: getattr(settings, f"quota_{name}") for name in cls.model_fields})


class QuotaUpdate(BaseModel):
    """``PUT /api/v1/quotas``: the overrides to set; ``null`` drops one (back to the default)."""

    model_config = ConfigDict(extra="forbid")

    publish_events_per_s: float | None = Field(None, ge=0, le=MAX_EVENTS_RATE)
    publish_bytes_per_s: float | None = Field(None, ge=0, le=MAX_BYTES_RATE)
    burst_s: float | None = Field(None, gt=0, le=60)
    max_streams: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_partitions: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_processors: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_patterns: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_subscriptions: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_schemas: int | None = Field(None, ge=0, le=MAX_COUNT)
    max_read_models: int | None = Field(None, ge=0, le=MAX_COUNT)

    _rates = field_validator(*RATES)(_rate)


class QuotaDocument(BaseModel):
    """``GET/PUT /api/v1/quotas``: the tenant's effective limits and its own overrides."""

    tenant_id: str
    limits: QuotaLimits
    overrides: dict[str, float | int]


class _State(Protocol):
    def get(self, kind: str, tenant: str, name: str) -> dict[str, Any] | None: ...


class _Catalog(Protocol):
    @property
    def current(self) -> _State: ...

    async def write(self, kind: str, tenant: str, name: str, op: str,
                    data: dict[str, Any] | None = None, *, timeout: float = 15.0) -> Outcome: ...


class QuotaBook:
    """Reads a tenant's limits (cheap: a dict lookup per call) and checks counts at create."""

    def __init__(self, defaults: QuotaLimits, catalog: _Catalog) -> None:
        self.defaults = defaults
        self.catalog = catalog
        #: per tenant: the override record the limits were built from (held, compared by
        #: identity: the catalog stores a new dict on every write) and the limits
        self._cache: dict[str, tuple[dict[str, Any] | None, QuotaLimits]] = {}
        #: count-and-create, serialised per (tenant, what) here, and across replicas through
        #: Redis when :meth:`share_locks` gave a client
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._redis: Callable[[], Any] = lambda: None
        self._lock_prefix = ""

    def share_locks(self, redis: Callable[[], Any], prefix: str) -> None:
        """Serialise counted creates across replicas with a Redis lock (``redis()`` is the
        client once the runtime opened it, or None without Redis)."""
        self._redis, self._lock_prefix = redis, prefix

    @asynccontextmanager
    async def counting(self, tenant: str, what: str, *, wait_s: float = 15.0
                       ) -> AsyncIterator[None]:
        """Hold while counting, checking (:meth:`check_count`) and creating ``what`` (e.g.
        ``streams``): another create of the same tenant's ``what`` waits, so two cannot both
        pass the count. Across replicas the holder first catches up with the catalog, so the
        count includes what another replica created under the lock before."""
        lock = self._locks.setdefault((tenant, what), asyncio.Lock())
        async with lock:
            redis = self._redis()
            if redis is None:
                yield
                return
            from redis.exceptions import LockError, RedisError

            shared = redis.lock(f"{self._lock_prefix}quota-lock:{tenant}:{what}", timeout=120,
                                blocking_timeout=wait_s)
            try:
                got = await shared.acquire()
            except RedisError as exc:
                raise StorageUnavailable(f"quota lock: {exc}") from exc
            if not got:
                raise Timeout(f"another create of {what} for this tenant is still running; "
                              "retry")
            try:
                sync = getattr(self.catalog, "sync", None)
                if sync is not None:
                    await sync(force=True)
                yield
            finally:
                with suppress(LockError, RedisError):  # expired or Redis gone: it times out
                    await shared.release()

    def overrides(self, tenant: str) -> dict[str, Any]:
        record = self.catalog.current.get(KIND, tenant, _NAME)
        return dict(record.get("overrides") or {}) if record else {}

    def document(self, tenant: str) -> QuotaDocument:
        return QuotaDocument(tenant_id=tenant, limits=self.limits(tenant),
                             overrides=self.overrides(tenant))

    def limits(self, tenant: str) -> QuotaLimits:
        """Defaults with the tenant's overrides applied (memoised per override record)."""
        record = self.catalog.current.get(KIND, tenant, _NAME)
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] is record:
            return cached[1]
        limits = (QuotaLimits.model_validate(
            {**self.defaults.model_dump(), **(record.get("overrides") or {})})
            if record else self.defaults)
        self._cache[tenant] = (record, limits)
        return limits

    async def update(self, tenant: str, update: QuotaUpdate, *, user: str) -> QuotaLimits:
        """Merge ``update`` into the tenant's overrides (``null`` removes one) and store them."""
        overrides = self.overrides(tenant)
        for name, value in update.model_dump(exclude_unset=True).items():
            if value is None:
                overrides.pop(name, None)
            else:
                overrides[name] = value
        await self.catalog.write(KIND, tenant, _NAME, "put",
                                 {"tenant_id": tenant, "overrides": overrides, "updated_by": user})
        return self.limits(tenant)

    def check_count(self, tenant: str, limit: CountLimit, current: int, adding: int = 1) -> None:
        """Refuse (409 ``quota_exceeded`` naming ``limit``) when ``current + adding`` would
        exceed the tenant's maximum. Call it inside :meth:`counting`, with the create, so that
        concurrent creates cannot both pass."""
        maximum = getattr(self.limits(tenant), limit)
        if maximum and current + adding > maximum:
            raise QuotaExceeded(
                f"tenant quota {limit} is {maximum}; {current} in use, this needs {adding} more",
                limit=limit, maximum=maximum, current=current)
