"""The async client and the sync facade against a real worker: every call is an HTTP round trip."""

from __future__ import annotations

import asyncio

import pytest

from esb.sdk import (
    AlreadyExists,
    EsbClient,
    NotFound,
    SyncEsbClient,
    Unauthenticated,
    ValidationFailed,
    VersionConflict,
)
from tests.support import ce_headers, eventually, produce, unique

pytestmark = pytest.mark.integration


async def test_streams_publish_query_and_typed_errors(bus_url, token_for) -> None:
    tenant = unique()
    async with EsbClient(bus_url, token_for(tenant)) as esb:
        name = unique("s")
        created = await esb.create_stream(stream_name=name, source_capability="shop",
                                          partitions=2)
        assert created["stream_id"] == f"str_{name}"
        assert [s["stream_name"] for s in await esb.list_streams()] == [name]
        assert (await esb.get_stream(name))["stream_id"] == created["stream_id"]
        with pytest.raises(AlreadyExists):
            await esb.create_stream(stream_name=name, source_capability="shop")
        with pytest.raises(NotFound):
            await esb.get_stream("nope")

        first = await esb.publish(event_type="order.created", source_capability="shop",
                                  payload={"n": 0})
        assert first["event_id"].startswith("evt_")
        again = await esb.publish(event_id=first["event_id"], event_type="order.created",
                                  source_capability="shop", payload={"n": 0})
        assert again == first  # same Idempotency-Key: the first answer, not a second event
        batch = await esb.publish_batch([{"event_type": "order.created",
                                          "source_capability": "shop", "payload": {"n": i}}
                                         for i in range(1, 5)])
        assert batch["published"] == 4

        async def archived() -> list:
            return [e async for e in esb.query_events(event_type="order.*", page_size=2)]

        events = await eventually(lambda: _when(archived(), 5))
        assert sorted(e["payload"]["n"] for e in events) == [0, 1, 2, 3, 4]
        assert (await esb.get_event(first["event_id"]))["event_id"] == first["event_id"]
        streamed = [e async for e in esb.stream_events(name, page_size=3)]
        assert len(streamed) == 5

        with pytest.raises(ValidationFailed) as bad:
            await esb.publish(event_type="", source_capability="shop")
        assert bad.value.status == 422 and bad.value.errors

        await esb.append(aggregate_id="a1", aggregate_type="Cart", event_type="cart.opened",
                         expected_version=0)
        with pytest.raises(VersionConflict) as conflict:
            await esb.append(aggregate_id="a1", aggregate_type="Cart", event_type="cart.closed",
                             expected_version=0)
        assert conflict.value.current_version == 1

    async with EsbClient(bus_url, "not-a-token") as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.list_streams()


async def _when(coro, count: int) -> list:
    items = await coro
    return items if len(items) >= count else []


async def test_dead_letters_page_by_cursor_and_redrive(bus, bus_url, token_for,
                                                       bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    async with EsbClient(bus_url, token_for(tenant)) as esb:
        await esb.create_stream(stream_name=unique("s"), source_capability="users")
        await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                      [(None, b"{}", ce_headers(tenant, "pay.done", source="pay"))
                       for _ in range(5)])

        async def letters() -> list:
            items = [d async for d in esb.dead_letters(page_size=100, reason="no_route")]
            return items if len(items) == 5 else []

        items = await eventually(letters)
        assert len({d["dlq_id"] for d in items}) == 5
        one = await esb.get_dead_letter(items[0]["dlq_id"])
        assert one["reason"] == "no_route"
        with pytest.raises(NotFound):
            await esb.get_dead_letter("dlq_missing")

        await esb.create_stream(stream_name=unique("s"), source_capability="pay")
        single = await esb.redrive_dead_letter(items[0]["dlq_id"])
        assert single["event_id"] == items[0]["event_id"]
        bulk = await esb.redrive_dead_letters(reason="no_route")
        assert bulk["redriven"] == 4
        assert [d async for d in esb.dead_letters()] == []


async def test_live_tail_sees_what_is_published_after_it_opens(bus_url, token_for) -> None:
    tenant = unique()
    async with EsbClient(bus_url, token_for(tenant)) as esb:
        name = unique("s")
        await esb.create_stream(stream_name=name, source_capability="shop")
        async with esb.tail(name, event_type="order.*") as live:
            await esb.publish(event_type="user.created", source_capability="shop")
            sent = await esb.publish(event_type="order.paid", source_capability="shop",
                                     payload={"total": 3})
            item = await asyncio.wait_for(anext(aiter(live)), 20)
        assert item["event"]["id"] == sent["event_id"]  # the user.* event was filtered out
        assert item["event"]["data"] == {"total": 3}
        with pytest.raises(NotFound):
            async with esb.tail("missing"):
                pass


def test_sync_facade_has_the_same_methods(bus_url, token_for) -> None:
    tenant = unique()
    with SyncEsbClient(bus_url, token_for(tenant)) as esb:
        group = esb.create_consumer_group(group_name="billing")
        lag = esb.consumer_lag(group["group_id"])
        assert lag["total_lag"] == 0 and lag["group_name"] == "billing"
        assert [g["group_name"] for g in esb.list_consumer_groups()] == ["billing"]
        schema = esb.register_schema(
            schema_name="order", event_type="order.created",
            json_schema={"type": "object", "required": ["id"]})
        assert not esb.validate(schema["schema_id"], {})["is_valid"]
        assert esb.validate(schema["schema_id"], {"id": 1})["is_valid"]
        assert [s["event_type"] for s in esb.list_schemas()] == ["order.created"]
        assert list(esb.dead_letters()) == []
        with pytest.raises(NotFound):
            esb.consumer_lag("missing")


async def test_dead_letter_pages_cover_every_letter(bus, bus_url, token_for, bootstrap) -> None:
    """Letters failing at distinct times: paging one by one must still list all five. The
    cursor once compared only dlq_id (a hash) while pages were sorted by time, so pages
    skipped letters (this passed by chance 1 time in 120)."""
    group, _ = bus
    tenant = unique()
    async with EsbClient(bus_url, token_for(tenant)) as esb:
        await esb.create_stream(stream_name=unique("s"), source_capability="users")
        for n in range(1, 6):
            await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                          [(None, b"{}", ce_headers(tenant, "pay.done", source="pay"))])

            async def indexed(n: int = n) -> bool:
                return len([d async for d in esb.dead_letters(page_size=100)]) == n

            await eventually(indexed)
        paged = [d["dlq_id"] async for d in esb.dead_letters(page_size=1)]
        assert len(set(paged)) == 5
