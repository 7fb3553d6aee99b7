from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esb.errors import NotFound
from esb.readside import ArchivedEvent, ReadModelDefinition, ReadModelStore, project

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)

USERS = ReadModelDefinition(
    name="user_directory",
    event_types=["user.*"],
    key_field="aggregate_id",
    operations={"user.deleted": "delete"},
    fields={"name": "payload.user_name", "email": "payload.email", "city": "payload.address.city",
            "last_event": "event_type"},
)


def event(tenant: str, n: int, event_type: str, aggregate_id: str, payload: dict) -> ArchivedEvent:
    return ArchivedEvent(tenant_id=tenant, event_id=f"evt_{n}", event_type=event_type,
                         time=T0 + timedelta(seconds=n), aggregate_id=aggregate_id,
                         payload=payload)


@pytest.fixture
async def store(db, tenant) -> ReadModelStore:
    store = ReadModelStore(db)
    await store.save_definition(tenant, USERS)
    return store


async def test_upsert_merges_and_delete_removes(store, tenant):
    changes = await store.apply([
        event(tenant, 1, "user.created", "u1", {"user_name": "john", "email": "j@x"}),
        event(tenant, 2, "user.moved", "u1", {"address": {"city": "Oslo"}}),
        event(tenant, 3, "user.created", "u2", {"user_name": "ann"}),
        event(tenant, 4, "order.created", "u1", {"user_name": "ignored"}),
    ])
    assert changes == 3
    doc = await store.get_document(tenant, "user_directory", "u1")
    assert doc.document == {"name": "john", "email": "j@x", "city": "Oslo",
                            "last_event": "user.moved"}
    assert doc.last_event_id == "evt_2"
    await store.apply([event(tenant, 5, "user.deleted", "u1", {})])
    with pytest.raises(NotFound):
        await store.get_document(tenant, "user_directory", "u1")
    assert (await store.get_document(tenant, "user_directory", "u2")).document["name"] == "ann"


async def test_reapplying_the_same_events_gives_the_same_documents(store, tenant):
    events = [event(tenant, 1, "user.created", "u1", {"user_name": "john"}),
              event(tenant, 2, "user.renamed", "u1", {"user_name": "jon"})]
    await store.apply(events)
    await store.apply(events)
    doc = await store.get_document(tenant, "user_directory", "u1")
    assert doc.document == {"name": "jon", "last_event": "user.renamed"}


async def test_list_documents_pages_by_key(store, tenant):
    await store.apply([event(tenant, n, "user.created", f"u{n:02d}", {"user_name": str(n)})
                       for n in range(7)])
    keys, cursor = [], None
    while True:
        page = await store.list_documents(tenant, "user_directory", limit=3, cursor=cursor)
        keys += [d.key for d in page.documents]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert keys == [f"u{n:02d}" for n in range(7)]
    with pytest.raises(NotFound):
        await store.list_documents(tenant, "no_such_model")


async def test_rebuild_replaces_documents_from_the_given_events(store, tenant):
    await store.apply([event(tenant, 1, "user.created", "stale", {"user_name": "old"})])
    replay = [event(tenant, 2, "user.created", "u1", {"user_name": "a"}),
              event(tenant, 3, "user.created", "u2", {"user_name": "b"}),
              event(tenant, 4, "user.deleted", "u2", {}),
              event(f"{tenant}_other", 5, "user.created", "u9", {"user_name": "x"})]

    async def as_async():
        for e in replay:
            yield e

    assert await store.rebuild(tenant, "user_directory", as_async()) == 3
    page = await store.list_documents(tenant, "user_directory")
    assert [(d.key, d.document["name"]) for d in page.documents] == [("u1", "a")]
    assert await store.rebuild(tenant, "user_directory", replay[:1]) == 1  # sync iterables too


async def test_definitions_are_tenant_scoped(store, tenant):
    assert [d.name for d in await store.list_definitions(tenant)] == ["user_directory"]
    assert await store.list_definitions(f"{tenant}_other") == []
    with pytest.raises(NotFound):
        await store.get_definition(f"{tenant}_other", "user_directory")
    # another tenant's events never reach this tenant's documents
    assert await store.apply([event(f"{tenant}_other", 1, "user.created", "u1", {})]) == 0
    await store.apply([event(tenant, 1, "user.created", "u1", {"user_name": "z"})])
    await store.delete_definition(tenant, "user_directory")
    with pytest.raises(NotFound):
        await store.get_document(tenant, "user_directory", "u1")  # cascaded
    with pytest.raises(NotFound):
        await store.delete_definition(tenant, "user_directory")


def test_project_semantics():
    whole = ReadModelDefinition(name="raw", event_types=["order.*"], key_field="payload.order.id",
                                operations={"order.*cancel*": "delete"})
    placed = event("t", 1, "order.placed", "a", {"order": {"id": 42}, "total": 5})
    projection = project(whole, placed)
    assert projection.operation == "upsert" and projection.key == "42"
    assert projection.document == {"order": {"id": 42}, "total": 5}
    assert project(whole, event("t", 2, "order.cancelled", "a", {"order": {"id": 42}})) \
        .operation == "delete"
    assert project(whole, event("t", 3, "order.placed", "a", {"no_key": 1})) is None
    assert project(whole, event("t", 4, "order.placed", "a", {"order": {"id": {"x": 1}}})) is None
    assert project(whole, event("t", 5, "user.created", "a", {"order": {"id": 1}})) is None
    exact_first = ReadModelDefinition(name="m", event_types=["*"],
                                      operations={"*": "delete", "x.keep": "upsert"})
    assert project(exact_first, event("t", 6, "x.keep", "a", {})).operation == "upsert"
    assert project(exact_first, event("t", 7, "x.drop", "a", {})).operation == "delete"
