"""Counted creates in one replica (ADR 0016): inside ``QuotaBook.counting`` the count, the check
and the create are one step, so concurrent creates cannot all pass; other tenants and other
kinds do not wait for each other."""

from __future__ import annotations

import asyncio

from esb.errors import QuotaExceeded
from esb.quotas import QuotaBook, QuotaLimits
from tests.unit.spine.test_quotas import FakeCatalog


async def _create(book: QuotaBook, catalog: FakeCatalog, tenant: str, name: str) -> bool:
    async with book.counting(tenant, "streams"):
        book.check_count(tenant, "max_streams", len(catalog.current.list("stream", tenant)))
        await asyncio.sleep(0.01)  # topic creation, the catalog write: other requests run
        await catalog.write("stream", tenant, name, "put", {"name": name})
    return True


async def test_concurrent_creates_stop_at_the_limit() -> None:
    catalog = FakeCatalog()
    book = QuotaBook(QuotaLimits(max_streams=2), catalog)  # type: ignore[arg-type]
    results = await asyncio.gather(*(_create(book, catalog, t, f"s{n}")
                                     for n in range(10) for t in ("a", "b")),
                                   return_exceptions=True)
    assert sum(r is True for r in results) == 4  # two per tenant
    assert all(r is True or isinstance(r, QuotaExceeded) for r in results), results
    assert {t: len(catalog.current.list("stream", t)) for t in ("a", "b")} == {"a": 2, "b": 2}


async def test_a_failed_create_releases_the_lock() -> None:
    book = QuotaBook(QuotaLimits(max_streams=2), FakeCatalog())  # type: ignore[arg-type]
    try:
        async with book.counting("a", "streams"):
            raise RuntimeError("topic creation failed")
    except RuntimeError:
        pass
    async with asyncio.timeout(1):
        async with book.counting("a", "streams"):
            pass
