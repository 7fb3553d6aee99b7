"""Erasure by crypto-shredding, end to end (ADR 0018).

Events with a personal email reach a marked stream over HTTP, the Kafka ingress and the
event-sourcing API; they land in the raw topics, the archive, a read model, an aggregate
snapshot and (through a failing webhook) the dead letters. A reader sees the email, other roles
see only the sealed token. After ``POST /subjects/{id}/erase`` no topic and no table of the
bus holds the email in any readable form, reads show the field as erased, and another
subject's fields still open. Another tenant erasing the same subject id erases nothing of it.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql

from esb.crypto.sealing import ENC, ERASED
from esb.sdk.client import EsbClient
from esb.topics import TopicNames
from tests.integration.delivery_e2e.conftest import Receiver, delivery_env
from tests.support import Api, ce_headers, eventually, produce, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]


async def _topic_bytes(bootstrap: str, prefix: str) -> dict[str, bytes]:
    """Every record (key, value, headers) of every topic of this bus, read to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(prefix)]
        tps = [tp for t in topics for tp in _partitions(consumer, t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        chunks: dict[str, list[bytes]] = {t: [] for t in topics}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    chunks[r.topic] += [r.key or b"", r.value or b"",
                                        *(v or b"" for _, v in r.headers)]
        return {t: b"\n".join(c) for t, c in chunks.items()}
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in parts]


def _table_text(database_url: str, schema: str) -> str:
    """Every row of every table in the bus's schema, as JSON text (bytea shows as hex)."""
    out: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE'", (schema,))]
        for table in tables:
            rows = conn.execute(sql.SQL("SELECT row_to_json(t)::text FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table)))
            out.extend(r[0] for r in rows)
    return "\n".join(out)


def _leaks(email: str, topic_bytes: dict[str, bytes], table_text: str) -> list[str]:
    """Where ``email`` appears readably: raw bytes, or hex-encoded bytea in a row."""
    found = [topic for topic, raw in topic_bytes.items() if email.encode() in raw]
    if email in table_text or email.encode().hex() in table_text:
        found.append("tables")
    return found


async def test_erased_subjects_leave_no_readable_personal_value(
        worker_group, redis_url, database_url, bootstrap, http) -> None:
    receiver = await Receiver(behaviour={"down": "down"}).start()
    try:
        await _scenario(worker_group, redis_url, database_url, bootstrap, http, receiver)
    finally:
        await receiver.stop()


async def _scenario(group: Any, redis_url: str, database_url: str, bootstrap: str, http: Any,
                    receiver: Receiver) -> None:
    port = group.start(**delivery_env(redis_url))
    tenant, other = unique(), unique()

    def api(roles: list[str], who: str = tenant) -> Api:
        return Api(http, group.url(port), group.token(who, roles=roles))

    admin, reader, subscriber = api(["admin"]), api(["reader"]), api(["subscriber"])
    alice, bob = unique("alice"), unique("bob")
    emails = {alice: f"{alice}@example.com", bob: f"{bob}@example.com"}

    status, stream = await admin.post("/api/v1/streams", {
        "stream_name": "users", "source_capability": "users", "partitions": 3,
        "personal_fields": ["payload.email"]})
    assert status == 201 and stream["stream"]["personal_fields"] == ["payload.email"], stream
    status, body = await admin.post("/api/v1/read-models",
                                    {"name": "people", "event_types": ["user.*"]})
    assert status == 201, body
    status, body = await admin.post("/api/v1/subscriptions", {
        "subscription_name": "crm", "stream_id": "users", "webhook_url": receiver.url("down"),
        "consumer_group_id": "crm", "webhook_timeout_ms": 1000,
        "retry_policy": {"max_retries": 0, "retry_delay_ms": 100}})
    assert status == 201, body

    published: dict[str, str] = {}
    for subject in (alice, bob):  # HTTP path
        status, body = await admin.post("/api/v1/events", {
            "event_type": "user.created", "source_capability": "users", "stream_id": "users",
            "aggregate_id": subject, "aggregate_type": "User",
            "payload": {"email": emails[subject], "plan": "pro"}})
        assert status == 201, body
        published[subject] = body["event_id"]
    ingress = TopicNames(group.prefix).tenant_ingress_topics(tenant)[0]
    await produce(bootstrap, ingress, [(alice.encode(), json.dumps(  # Kafka ingress path
        {"email": emails[alice], "plan": "team"}).encode(),
        ce_headers(tenant, "user.changed", source="users", aggregateid=alice))])
    status, body = await admin.post("/api/v1/event-sourcing/append", {  # event sourcing
        "aggregate_id": alice, "aggregate_type": "User", "event_type": "user.renamed",
        "event_data": {"email": emails[alice], "name": "Alice"}, "stream_id": "users"})
    assert status == 201, body
    status, body = await admin.post("/api/v1/event-sourcing/reconstruct", {
        "aggregate_id": alice, "aggregate_type": "User", "update_snapshots": True})
    assert status == 200 and body["snapshot_version"] == 1, body

    async def everything_landed() -> Any:
        _, page = await admin.post("/api/v1/events/query", {"stream_id": "str_users"})
        _, dead = await admin.get("/api/v1/dead-letters?stage=delivery")
        _, docs = await admin.get("/api/v1/read-models/people/documents")
        return (len(page.get("events", [])) >= 4 and len(dead.get("dead_letters", [])) >= 4
                and len(docs.get("documents", [])) >= 2) or None
    await eventually(everything_landed, timeout=60)

    # before erasure: readers see the value, other roles only the sealed token
    _, seen = await reader.get(f"/api/v1/events/{published[alice]}")
    assert seen["payload"]["email"] == emails[alice], seen
    async with EsbClient(group.url(port), group.token(tenant, roles=["reader"])) as sdk:
        assert (await sdk.get_event(published[alice]))["payload"]["email"] == emails[alice]
    _, sealed = await subscriber.get(f"/api/v1/events/{published[alice]}")
    assert sealed["payload"]["email"][ENC] == "v1"
    assert emails[alice] not in json.dumps(sealed)

    # another tenant's subject of the same id is another subject
    status, body = await api(["admin"], other).post(f"/api/v1/subjects/{alice}/erase")
    assert status == 200 and body["erased_keys"] == 0, body
    _, seen = await reader.get(f"/api/v1/events/{published[alice]}")
    assert seen["payload"]["email"] == emails[alice]

    status, body = await reader.post(f"/api/v1/subjects/{alice}/erase")
    assert status == 403, body  # erasure is an admin's
    for bad in ("a%01b", "x" * 257):
        status, body = await admin.post(f"/api/v1/subjects/{bad}/erase")
        assert status == 400 and body["code"] == "invalid_request", body
    status, body = await admin.post(f"/api/v1/subjects/{alice}/erase")
    assert status == 200 and body["erased_keys"] == 1, body

    async def erasure_audited() -> Any:  # the audit trail records it (ADR 0017)
        _, audit = await admin.get("/api/v1/audit?limit=1000")
        return [e for e in audit.get("entries", []) if e.get("operation") == "erase_subject"
                and e.get("outcome") == 200 and alice in json.dumps(e.get("target"))] or None
    await eventually(erasure_audited, timeout=20)

    # no readable personal value anywhere: raw topics (streams, ingress, dead letters,
    # changelogs of aggregates and snapshots) and every table (archive, read models, dead
    # letters, keys)
    topic_bytes = await _topic_bytes(bootstrap, group.prefix)
    table_text = _table_text(database_url, group.prefix)
    assert topic_bytes and table_text
    # the one exception: the tenant's ingress topic keeps what the Kafka-native producer wrote
    # there itself, before the bus saw it (ADR 0018: short ingress retention, or seal in the
    # producer); nothing the bus wrote holds the value
    assert _leaks(emails[alice], topic_bytes, table_text) == [ingress]
    assert _leaks(emails[bob], topic_bytes, table_text) == []  # never stored in clear either

    # reads show alice's field as erased everywhere; bob's still opens
    _, page = await reader.post("/api/v1/events/query", {"stream_id": "str_users"})
    by_subject: dict[str, list[Any]] = {}
    for event in page["events"]:
        by_subject.setdefault(event["aggregate_id"], []).append(event["payload"]["email"])
    assert len(by_subject[alice]) == 3
    assert all(v == {ERASED: True, "path": "email"} for v in by_subject[alice]), by_subject
    assert by_subject[bob] == [emails[bob]]
    async with EsbClient(group.url(port), group.token(tenant, roles=["reader"])) as sdk:
        assert (await sdk.get_event(published[alice]))["payload"]["email"][ERASED] is True
        assert (await sdk.get_event(published[bob]))["payload"]["email"] == emails[bob]
    _, doc = await reader.get(f"/api/v1/read-models/people/documents/{alice}")
    assert doc["document"]["email"][ERASED] is True, doc
    _, doc = await reader.get(f"/api/v1/read-models/people/documents/{bob}")
    assert doc["document"]["email"] == emails[bob], doc
    _, state = await reader.post("/api/v1/event-sourcing/reconstruct",
                                 {"aggregate_id": alice, "aggregate_type": "User"})
    assert state["state"]["email"][ERASED] is True and state["state"]["name"] == "Alice", state
    _, dead = await reader.get("/api/v1/dead-letters?stage=delivery")
    assert dead["dead_letters"] and emails[alice] not in json.dumps(dead)
