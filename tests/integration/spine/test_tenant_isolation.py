"""Tenant isolation, generated from the route table: every authenticated route, called by tenant
B with tenant A's ids, is refused (403/404) or answers only B's (empty) data, and never shows A's
data. Every row of ``esb.api_spec.ROUTES`` needs a case here: a new route without one fails.

Tenant A gets one of everything (streams, an event, a dead letter, JSON and Confluent schemas,
an aggregate, a read model with a document, a subscription, a consumer group, a processor, a
pattern). Every answer to B is searched for A's markers (ids, the tenant name, a payload secret)
that B's own request did not contain: a 404 may echo the id B sent, nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from esb import api_spec
from esb.api_spec import Resource, Route
from tests.support import Api, WorkerGroup, ce_headers, eventually, produce, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REFUSED = frozenset({403, 404})
OWN = "own"  # B acted on its own namespace (same name, different tenant): allowed, but no leak


@dataclass(frozen=True)
class Case:
    """How B calls one route: a body (may name A's resources), which statuses are correct."""

    body: Any = None
    allow: frozenset[int] = REFUSED
    empty_list: str | None = None  # list routes: the key that must hold an empty list


@dataclass
class TenantA:
    tenant: str
    secret: str
    ids: dict[Resource, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def markers(self) -> set[str]:
        """Distinctive strings only: a version "1" or a global schema id "2" proves nothing."""
        values = {self.tenant, self.secret, *self.ids.values(), *self.extra.values()}
        return {v for v in values if len(v) >= 8}


def _cases(a: TenantA) -> dict[str, Case]:
    """One entry per non-public operation id; path ids come from ``Route.scoped``."""
    stream = a.extra["stream_name"]
    agg = a.ids[Resource.AGGREGATE]
    bad = frozenset({400, 403, 404, 422})
    cases: dict[str, Case] = {
        "list_streams": Case(allow=frozenset({200}), empty_list="streams"),
        "create_stream": Case({"stream_name": stream, "tenant_id": a.tenant}, frozenset({403})),
        "publish_event": Case({"event_type": "iso.created", "source_capability": "iso_cap",
                               "stream_name": stream, "payload": {}}, bad),
        "anumate_publish_event": Case({"event_type": "com.anumate.iso.created", "data": {},
                                       "tenant_id": a.tenant}, frozenset({403})),
        "anumate_health": Case(allow=frozenset({200, 503})),
        # status endpoints (ADR 0020): B's own counts and series only
        "get_status": Case(allow=frozenset({200})),
        "get_kafka_health": Case(allow=frozenset({200})),
        "get_database_health": Case(allow=frozenset({200})),
        "get_tenant_metrics": Case(allow=frozenset({200})),
        "ws_monitoring": Case(allow=frozenset({400})),  # a plain GET is no WebSocket upgrade
        "publish_batch": Case({"events": [{"event_type": "iso.created", "stream_name": stream,
                                           "source_capability": "iso_cap"}]}, bad),
        "query_events": Case({"aggregate_id": a.extra["event_aggregate"]}, frozenset({200}),
                             empty_list="events"),
        # an unknown id answers an empty PENDING history for anyone: no oracle, no data
        "get_processing_history": Case(allow=frozenset({200, 404}),
                                       empty_list="processing_history"),
        "list_read_models": Case(allow=frozenset({200}), empty_list="read_models"),
        "create_read_model": Case({"name": a.ids[Resource.READ_MODEL], "event_types": ["iso.*"]},
                                  frozenset({201})),
        "list_dead_letters": Case(allow=frozenset({200}), empty_list="dead_letters"),
        # the audit trail is the caller's tenant's log (ADR 0017): B sees and signs only its own
        "list_audit_entries": Case(allow=frozenset({200, 403}), empty_list="entries"),
        "get_audit_checkpoint": Case(allow=frozenset({200, 403})),
        "create_audit_checkpoint": Case(allow=frozenset({200, 403})),
        # quotas are the caller's tenant's (ADR 0016): B reads and sets only its own
        "get_quotas": Case(allow=frozenset({200})),
        "put_quotas": Case({"max_streams": 999}, frozenset({200, 403})),
        # data subjects are named per tenant (ADR 0018): B erases only its own subject
        "erase_subject": Case(allow=frozenset({200, 403})),
        "redrive_dead_letters": Case({}, frozenset({200}), empty_list="results"),
        "list_schemas": Case(allow=frozenset({200}), empty_list="schemas"),
        "register_schema": Case({"schema_name": "x", "event_type": "iso.created",
                                 "json_schema": {"type": "object"}, "tenant_id": a.tenant},
                                frozenset({403})),
        "register_schema_enhanced": Case({"schema_name": "x", "event_type": "iso.created",
                                          "json_schema": {"type": "object"},
                                          "tenant_id": a.tenant}, frozenset({403})),
        "get_schema_evolution": Case(allow=frozenset({200, 404})),
        "append_event": Case({"aggregate_id": agg, "aggregate_type": "IsoAgg",
                              "event_type": "iso.happened", "expected_version": "no_stream"},
                             frozenset({201})),  # 409 would mean A's aggregate is visible
        "reconstruct_aggregate": Case({"aggregate_id": agg, "aggregate_type": "IsoAgg"}),
        "list_subscriptions": Case(allow=frozenset({200}), empty_list="subscriptions"),
        "create_subscription": Case({"subscription_name": "iso-sub", "stream_id": stream,
                                     "consumer_group_id": "iso-group"}),
        "list_consumer_groups": Case(allow=frozenset({200}), empty_list="consumer_groups"),
        "create_consumer_group": Case({"group_name": a.extra["group_name"]}, frozenset({201})),
        "list_processors": Case(allow=frozenset({200}), empty_list="processors"),
        "create_processor": Case({"processor_name": "iso-proc", "processor_type": "FILTER",
                                  "source_stream_id": stream, "target_stream_id": stream,
                                  "processing_logic": {"filter_expression": "true"}}, bad),
        "list_patterns": Case(allow=frozenset({200}), empty_list="patterns"),
        "create_pattern": Case({"pattern_name": "iso-pat", "source_stream_id": stream,
                                "kind": "threshold", "event_type": "iso.created",
                                "min_count": 2, "within_ms": 1000}, bad),
        # Confluent API: subjects are per tenant, so B may write its own subject of that name
        "cf_list_subjects": Case(allow=frozenset({200})),
        "cf_register": Case({"schema": '{"type": "object"}', "schemaType": "JSON"},
                            frozenset({200})),
        "cf_check_compatibility_all": Case({"schema": '{"type": "object"}',
                                            "schemaType": "JSON"}, frozenset({200, 404})),
        "cf_check_compatibility": Case({"schema": '{"type": "object"}', "schemaType": "JSON"}),
        "cf_lookup_schema": Case({"schema": '{"type": "object"}', "schemaType": "JSON"}),
        "cf_schema_types": Case(allow=frozenset({200})),
        "cf_get_config": Case(allow=frozenset({200})),
        "cf_put_config": Case({"compatibility": "NONE"}, frozenset({200})),
        "cf_delete_config": Case(allow=frozenset({200})),
        "cf_put_subject_config": Case({"compatibility": "NONE"}, frozenset({200})),
        "cf_delete_subject_config": Case(allow=frozenset({200, 404})),
        "cf_get_mode": Case(allow=frozenset({200})),
        "cf_get_subject_mode": Case(allow=frozenset({200})),
        "cf_contexts": Case(allow=frozenset({200})),
        "replay_read_model": Case({"aggregate_id": agg}),
        "replay_subscription": Case({"from_offset": 0}),
    }
    return cases


def case_for(route: Route, a: TenantA) -> Case | None:
    """The explicit case, else the default for a route whose path holds A's ids (refused)."""
    explicit = _cases(a).get(route.operation_id)
    if explicit is not None:
        return explicit
    if route.scoped:
        return Case()
    return None


def fill(route: Route, a: TenantA) -> str:
    path = route.path
    for param, kind in route.scoped:
        path = path.replace("{" + param + "}", a.ids[kind])
    return path


@pytest.fixture(scope="module")
async def tenant_a(bus: tuple[WorkerGroup, int], bootstrap: str) -> TenantA:
    """One of everything for tenant A (module-scoped: built once, about 20 s)."""
    group, port = bus
    async with aiohttp.ClientSession() as session:
        a = TenantA(unique("isoa"), "secret" + unique("m"))
        api = Api(session, group.url(port), group.token(a.tenant))
        v1 = api_spec.API_PREFIX
        sname, target = unique("isos"), unique("isot")
        for name in (sname, target):
            status, body = await api.post(f"{v1}/streams", {
                "stream_name": name, "source_capability": "iso_cap" if name == sname else "t",
                "partitions": 1, "description": a.secret})
            assert status == 201, body
        a.ids[Resource.STREAM] = f"str_{sname}"
        a.ids[Resource.AUDIT_ENTRY] = "0"  # A's first audit entry: creating its stream
        a.extra["stream_name"] = sname
        aggregate = unique("isoagg")
        status, body = await api.post(f"{v1}/events", {
            "event_type": "iso.created", "source_capability": "iso_cap",
            "aggregate_id": aggregate, "stream_name": sname, "payload": {"secret": a.secret}})
        assert status == 201, body
        a.ids[Resource.EVENT] = body["event_id"]
        a.extra["event_aggregate"] = aggregate
        a.ids[Resource.DATA_SUBJECT] = aggregate  # its data subject, by default (ADR 0018)
        a.ids[Resource.DOCUMENT] = aggregate

        subject, event_type = unique("isosubj") + "-value", unique("iso.type")
        status, body = await api.post(f"{v1}/schemas", {
            "schema_name": "iso", "event_type": event_type,
            "json_schema": {"type": "object", "description": a.secret}})
        assert status in (200, 201), body
        a.ids[Resource.SCHEMA] = body["schema_id"]
        a.ids[Resource.EVENT_TYPE] = event_type
        status, body = await api.post(f"/schema-registry/subjects/{subject}/versions", {
            "schema": json.dumps({"type": "object", "title": a.secret}), "schemaType": "JSON"})
        assert status == 200, body
        a.ids[Resource.SUBJECT] = subject
        a.ids[Resource.SCHEMA_VERSION] = "1"
        a.extra["cf_id"] = str(body["id"])

        agg2 = unique("isoagg")
        status, body = await api.post(f"{v1}/event-sourcing/append", {
            "aggregate_id": agg2, "aggregate_type": "IsoAgg", "event_type": "iso.happened",
            "event_data": {"secret": a.secret}})
        assert status == 201, body
        a.ids[Resource.AGGREGATE] = agg2

        model = unique("isorm")
        status, body = await api.post(f"{v1}/read-models",
                                      {"name": model, "event_types": ["iso.created"]})
        assert status == 201, body
        a.ids[Resource.READ_MODEL] = model

        async def documented() -> bool:
            s, _ = await api.get(f"{v1}/read-models/{model}/documents/{aggregate}")
            return s == 200

        await eventually(documented, timeout=30)

        group_name = unique("isog")
        status, body = await api.post(f"{v1}/consumer-groups", {"group_name": group_name})
        assert status == 201, body
        a.ids[Resource.CONSUMER_GROUP] = body["group_id"]
        a.extra["group_name"] = group_name
        status, body = await api.post(f"{v1}/subscriptions", {
            "subscription_name": unique("isosub"), "stream_id": sname,
            "consumer_group_id": group_name})
        assert status == 201, body
        a.ids[Resource.SUBSCRIPTION] = body["subscription_id"]
        status, body = await api.post(f"{v1}/stream-processors", {
            "processor_name": unique("isop"), "processor_type": "FILTER",
            "source_stream_id": sname, "target_stream_id": target,
            "processing_logic": {"filter_expression": "true"}})
        assert status == 201, body
        a.ids[Resource.PROCESSOR] = body["processor_id"]
        status, body = await api.post(f"{v1}/patterns", {
            "pattern_name": unique("isopat"), "source_stream_id": sname, "kind": "threshold",
            "event_type": "iso.created", "min_count": 3, "within_ms": 1000})
        assert status == 201, body
        a.ids[Resource.PATTERN] = body["pattern_id"]

        # a dead letter attributed to A: an ingress record no stream of A accepts
        await produce(bootstrap, f"{group.prefix}.{a.tenant}.ingress", [(
            b"k", json.dumps({"secret": a.secret}).encode(),
            ce_headers(a.tenant, "nowhere.at.all", source="no_such_capability"))])

        async def dead_lettered() -> Any:
            s, b = await api.get(f"{v1}/dead-letters")
            return s == 200 and b["dead_letters"] and b["dead_letters"][0]["dlq_id"]

        a.ids[Resource.DEAD_LETTER] = await eventually(dead_lettered, timeout=60)
        # a job (ADR 0016): a bulk redrive as a job, of a filter that matches nothing of A's
        status, body = await api.post(f"{v1}/dead-letters/redrive", {"reason": "no_such"},
                                      headers={"Prefer": "respond-async"})
        assert status == 202, body
        a.ids[Resource.JOB] = body["job_id"]
    return a


def _leaks(a: TenantA, request_text: str, answer: str) -> set[str]:
    return {m for m in a.markers() if m not in request_text and m in answer}


def _params() -> list[Any]:
    return [pytest.param(r, id=r.operation_id) for r in api_spec.ROUTES if not r.public]


@pytest.mark.parametrize("route", _params())
async def test_tenant_b_cannot_reach_tenant_a(route: Route, tenant_a: TenantA,
                                              bus: tuple[WorkerGroup, int]) -> None:
    case = case_for(route, tenant_a)
    assert case is not None, f"no isolation case for {route.operation_id}: add one to _cases"
    group, port = bus
    path = fill(route, tenant_a)
    token_b = group.token(unique("isob"))
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token_b}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if case.body is not None:
            kwargs["json"] = case.body
        async with session.request(route.method, group.url(port) + path, **kwargs) as resp:
            status, text = resp.status, await resp.text()
    request_text = path + json.dumps(case.body)
    assert status in case.allow, f"{route.method} {path} as B -> {status}: {text[:500]}"
    leaked = _leaks(tenant_a, request_text, text)
    assert not leaked, f"{route.method} {path} as B leaked {leaked}: {text[:800]}"
    if case.empty_list is not None and status == 200:
        assert json.loads(text)[case.empty_list] == []


async def test_tenant_a_is_untouched(tenant_a: TenantA, bus: tuple[WorkerGroup, int]) -> None:
    """B's writes (cancel, delete, stop, redrive, config) did not reach A's resources."""
    group, port = bus
    v1 = api_spec.API_PREFIX
    ids = tenant_a.ids
    async with aiohttp.ClientSession() as session:
        api = Api(session, group.url(port), group.token(tenant_a.tenant))
        status, body = await api.get(f"{v1}/subscriptions/{ids[Resource.SUBSCRIPTION]}")
        assert status == 200 and body["status"] == "active", body
        status, body = await api.get(f"{v1}/read-models/{ids[Resource.READ_MODEL]}/documents")
        assert status == 200 and body["count"] == 1, body
        status, body = await api.get(f"{v1}/event-sourcing/aggregate/{ids[Resource.AGGREGATE]}"
                                     "/events")
        assert status == 200 and body["current_version"] == 1, body
        status, body = await api.get(f"{v1}/dead-letters/{ids[Resource.DEAD_LETTER]}")
        assert status == 200 and body["status"] == "DEAD", body
        status, body = await api.get(
            f"/schema-registry/subjects/{ids[Resource.SUBJECT]}/versions")
        assert status == 200 and body == [1], body
        status, body = await api.get("/schema-registry/config")
        assert status == 200 and body["compatibilityLevel"] != "NONE", body


def test_every_authenticated_row_has_a_case() -> None:
    """Without the live bus: a row whose path has no ids and no explicit case fails here."""
    fake = TenantA("a", "s", {k: "x" for k in Resource},
                   {"stream_name": "s", "event_aggregate": "e", "group_name": "g", "cf_id": "1"})
    missing = [r.operation_id for r in api_spec.ROUTES
               if not r.public and case_for(r, fake) is None]
    assert not missing, f"rows without an isolation case: {missing}"
    unknown = set(_cases(fake)) - {r.operation_id for r in api_spec.ROUTES}
    assert not unknown, f"cases for rows that no longer exist: {unknown}"


def test_markers_cover_every_resource_kind() -> None:
    """Each kind of tenant-scoped id in the table has a resource the fixture creates."""
    kinds = {kind for r in api_spec.ROUTES for _, kind in r.scoped}
    assert kinds <= set(Resource)


_ = Mapping  # re-exported for type hints in cases added later


@pytest.fixture(scope="module")
def bus(fresh_bus: tuple[WorkerGroup, int]) -> tuple[WorkerGroup, int]:
    """This module's own worker (see ``fresh_bus``)."""
    return fresh_bus
