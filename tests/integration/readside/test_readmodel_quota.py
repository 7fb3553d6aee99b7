"""The read-model count quota is atomic (ADR 0016): concurrent creates of new models cannot
both pass the count check; replacing an existing model never counts."""

from __future__ import annotations

import asyncio

import pytest

from esb.errors import QuotaExceeded
from esb.quotas import QuotaBook, QuotaLimits
from esb.readside import ReadModelDefinition, ReadModelStore
from tests.unit.spine.test_quotas import FakeCatalog

pytestmark = pytest.mark.postgres


def _model(name: str) -> ReadModelDefinition:
    return ReadModelDefinition(name=name, event_types=["x.*"])


async def test_concurrent_creates_never_exceed_the_count(db, tenant) -> None:
    quotas = QuotaBook(QuotaLimits(max_read_models=3), FakeCatalog())  # type: ignore[arg-type]
    stores = [ReadModelStore(db, quotas=quotas) for _ in range(4)]  # as if several replicas

    async def busy() -> None:
        async with db.connection() as conn:
            await conn.execute("SELECT pg_sleep(0.05)")

    await asyncio.gather(*(busy() for _ in range(4)))  # every pooled connection open: a race
    results = await asyncio.gather(*(stores[n % 4].save_definition(tenant, _model(f"m{n}"))
                                     for n in range(20)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(refused) == 17 and all(r is None or isinstance(r, QuotaExceeded)
                                      for r in results), results
    assert len(await stores[0].list_definitions(tenant)) == 3
    created = (await stores[0].list_definitions(tenant))[0]
    await stores[1].save_definition(tenant, created)  # replacing one is not a new one
