from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esb.db import Database
from esb.errors import InvalidRequest, NotFound
from esb.readside import ArchivedEvent, EventArchive, EventQuery
from esb.readside.paging import encode_cursor
from esb.sourcing import ReducerRegistry, reconstruct

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)


def make_event(tenant: str, n: int, **overrides) -> ArchivedEvent:
    fields = {
        "tenant_id": tenant,
        "event_id": f"evt_{n:04d}",
        "event_type": "user.created",
        "time": T0 + timedelta(seconds=n),
        "stream_id": "str_users",
        "stream_name": "user_events",
        "source": "user_management",
        "aggregate_id": f"usr_{n % 3}",
        "aggregate_type": "User",
        "sequence_number": n,
        "correlation_id": "cor_1",
        "payload": {"user_name": f"u{n}", "department": "Engineering", "n": n},
        "metadata": {"ip_address": "192.168.1.100"},
        "topic": "esb.t.user_events",
        "partition": 0,
        "offset": n,
    }
    fields.update(overrides)
    return ArchivedEvent(**fields)


@pytest.fixture
def archive(db: Database) -> EventArchive:
    return EventArchive(db)


async def ids(archive: EventArchive, tenant: str, **filters) -> list[str]:
    page = await archive.query(tenant, EventQuery(**filters))
    return [e.event_id for e in page.events]


async def test_insert_is_idempotent_by_event_id(archive, tenant):
    events = [make_event(tenant, n) for n in range(3)]
    assert await archive.insert_many(events) == 3
    changed = make_event(tenant, 1, payload={"changed": True})
    assert await archive.insert_many([changed, make_event(tenant, 3)]) == 1
    assert (await archive.get(tenant, "evt_0001")).payload["n"] == 1  # first write wins
    assert await archive.insert_many([]) == 0


async def test_get_round_trips_every_field(archive, tenant):
    event = make_event(tenant, 7, causation_id="evt_0006", user_id="user_admin",
                       priority="HIGH", schema_version="1.0", event_version="1.0",
                       payload=[1, "two", None])
    await archive.insert_many([event])
    stored = await archive.get(tenant, "evt_0007")
    assert stored.model_dump(exclude={"archived_at"}) == event.model_dump(exclude={"archived_at"})
    assert stored.archived_at is not None
    seed = stored.to_seed_dict()
    assert seed["timestamp"] == "2025-01-26T10:30:07Z"
    assert seed["source_capability"] == "user_management"


async def test_other_tenants_events_are_not_found(archive, tenant):
    await archive.insert_many([make_event(tenant, 1)])
    with pytest.raises(NotFound):
        await archive.get("someone_else", "evt_0001")
    assert await ids(archive, "someone_else") == []
    # the same id in another tenant is a different event, not a duplicate
    other = f"{tenant}_other"
    assert await archive.insert_many([make_event(other, 1, payload={"mine": True})]) == 1
    assert (await archive.get(other, "evt_0001")).payload == {"mine": True}
    assert (await archive.get(tenant, "evt_0001")).payload["n"] == 1


async def test_filters(archive, tenant):
    await archive.insert_many([
        make_event(tenant, 1),
        make_event(tenant, 2, event_type="user.updated", correlation_id="cor_2"),
        make_event(tenant, 3, event_type="order.created", aggregate_type="Order",
                   stream_id="str_orders", payload={"total": 5, "department": "Sales"}),
        make_event(tenant, 4, event_type="user.deleted", user_id="admin", source="admin_ui"),
        make_event(tenant, 5, causation_id="evt_0004"),
    ])
    assert await ids(archive, tenant) == [f"evt_000{n}" for n in range(1, 6)]
    assert await ids(archive, tenant, event_types=["user.*"]) == [
        "evt_0001", "evt_0002", "evt_0004", "evt_0005"]
    assert await ids(archive, tenant, event_types=["order.created", "user.upd?ted"]) == [
        "evt_0002", "evt_0003"]
    assert await ids(archive, tenant, event_type="*.created") == [
        "evt_0001", "evt_0003", "evt_0005"]
    assert await ids(archive, tenant, aggregate_id="usr_1") == ["evt_0001", "evt_0004"]
    assert await ids(archive, tenant, aggregate_type="Order") == ["evt_0003"]
    assert await ids(archive, tenant, stream_id="str_orders") == ["evt_0003"]
    assert await ids(archive, tenant, correlation_id="cor_2") == ["evt_0002"]
    assert await ids(archive, tenant, causation_id="evt_0004") == ["evt_0005"]
    assert await ids(archive, tenant, user_id="admin", source="admin_ui") == ["evt_0004"]
    assert await ids(archive, tenant, start_time=T0 + timedelta(seconds=2),
                     end_time=T0 + timedelta(seconds=4)) == ["evt_0002", "evt_0003"]
    assert await ids(archive, tenant, payload_contains={"department": "Sales"}) == ["evt_0003"]
    assert await ids(archive, tenant, payload_contains={"n": 2}) == ["evt_0002"]
    assert await ids(archive, tenant, event_types=["user.*"], aggregate_id="usr_2",
                     order="desc") == ["evt_0005", "evt_0002"]


async def test_glob_special_characters_are_literal(archive, tenant):
    await archive.insert_many([
        make_event(tenant, 1, event_type="rate_100%.hit"),
        make_event(tenant, 2, event_type="rateX100Y.hit"),
        make_event(tenant, 3, event_type="a\\b.c"),
        make_event(tenant, 4, event_type="aXb.c"),
    ])
    assert await ids(archive, tenant, event_types=["rate_100%.*"]) == ["evt_0001"]
    assert await ids(archive, tenant, event_types=["rate_100%.hit"]) == ["evt_0001"]
    assert await ids(archive, tenant, event_types=["rate?100?.hit"]) == ["evt_0001", "evt_0002"]
    assert await ids(archive, tenant, event_types=["a\\b.*"]) == ["evt_0003"]
    assert await ids(archive, tenant, event_types=["%"]) == []
    assert await ids(archive, tenant, event_types=["' OR 1=1 --"]) == []


async def test_keyset_paging_visits_every_event_once(archive, tenant):
    same_time = T0 + timedelta(seconds=100)
    events = [make_event(tenant, n) for n in range(1, 8)]
    events += [make_event(tenant, n, time=same_time) for n in range(20, 25)]  # ties on time
    await archive.insert_many(events)
    for order in ("asc", "desc"):
        seen, cursor, pages = [], None, 0
        while True:
            page = await archive.query(tenant, EventQuery(limit=5, cursor=cursor, order=order))
            seen += [e.event_id for e in page.events]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = sorted(e.event_id for e in events)
        assert seen == (expected if order == "asc" else expected[::-1])
        assert pages == 3


async def test_bad_cursor_is_invalid_request(archive, tenant):
    for cursor in ["not-a-cursor", encode_cursor("tasc", ["yesterday", "x"]),
                   encode_cursor("s", [1, "x"]), encode_cursor("tasc", [1, 2])]:
        with pytest.raises(InvalidRequest):
            await archive.query(tenant, EventQuery(cursor=cursor))
    page = await archive.query(tenant, EventQuery(limit=1, order="asc"))
    assert page.next_cursor is None


async def test_stream_events(archive, tenant):
    await archive.insert_many([make_event(tenant, 1), make_event(tenant, 2, stream_id="other"),
                               make_event(tenant, 3)])
    page = await archive.stream_events(tenant, "str_users", limit=1)
    assert [e.event_id for e in page.events] == ["evt_0001"]
    page = await archive.stream_events(tenant, "str_users", limit=1, cursor=page.next_cursor)
    assert [e.event_id for e in page.events] == ["evt_0003"]
    assert page.next_cursor is None


async def test_aggregate_events_in_version_order_with_paging(archive, tenant):
    events = [make_event(tenant, n, event_id=f"evt_x{9 - n}", aggregate_id="usr_A",
                         sequence_number=n, time=T0 - timedelta(seconds=n)) for n in range(1, 6)]
    events.append(make_event(tenant, 50, aggregate_id="usr_A", sequence_number=None))
    events.append(make_event(tenant, 51, aggregate_id="usr_B", sequence_number=1))
    await archive.insert_many(events)
    page = await archive.aggregate_events(tenant, "usr_A", limit=3)
    assert [e.sequence_number for e in page.events] == [1, 2, 3]
    page = await archive.aggregate_events(tenant, "usr_A", limit=3, cursor=page.next_cursor)
    assert [e.sequence_number for e in page.events] == [4, 5]
    assert page.next_cursor is None
    page = await archive.aggregate_events(tenant, "usr_A", after_version=2, to_version=4)
    assert [e.sequence_number for e in page.events] == [3, 4]
    assert (await archive.aggregate_events(tenant, "usr_A", aggregate_type="Order")).events == []


def test_query_rejects_unknown_filters_and_bad_ranges():
    with pytest.raises(ValueError):
        EventQuery(evnt_type="x")  # a typo must not silently widen the query
    with pytest.raises(ValueError):
        EventQuery(start_time=T0, end_time=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError):
        EventQuery(limit=0)


async def test_aggregate_events_feed_reconstruction(archive, tenant):
    await archive.insert_many([
        make_event(tenant, n, aggregate_id="usr_R", sequence_number=n, payload=patch)
        for n, patch in enumerate([{"name": "a"}, {"email": "e"}, {"name": None}], start=1)])
    page = await archive.aggregate_events(tenant, "usr_R")
    result = reconstruct("usr_R", "User", [e.to_sourced_event() for e in page.events],
                         reducers=ReducerRegistry())
    assert result.current_version == 3 and result.state == {"email": "e"}
    with pytest.raises(InvalidRequest):
        make_event(tenant, 9, sequence_number=None).to_sourced_event()
