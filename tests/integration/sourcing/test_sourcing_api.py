"""Event-sourcing API on the shared worker: expected-version forms, idempotency, reconstruct with
snapshots, temporal queries and paging."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from tests.support import unique

pytestmark = pytest.mark.integration

APPEND = "/api/v1/event-sourcing/append"
RECONSTRUCT = "/api/v1/event-sourcing/reconstruct"


def body(aggregate_id: str, data: dict, expected=None, **extra) -> dict:  # type: ignore[no-untyped-def]
    out = {"aggregate_id": aggregate_id, "aggregate_type": "User", "event_type": "user.updated",
           "event_data": data, "correlation_id": "corr_456",
           "metadata": {"source": "user_service"}, **extra}
    if expected is not None:
        out["expected_version"] = expected
    return out


async def test_expected_version_forms_and_conflict_body(api_for) -> None:
    api = api_for(unique())
    agg = unique("user_")
    status, created = await api.post(APPEND, body(agg, {"email": "a@x"}, "no_stream"))
    assert status == 201, created
    assert created["version"] == 1 and created["message"] == "Event appended successfully"
    assert created["event_id"]

    status, problem = await api.post(APPEND, body(agg, {"email": "b@x"}, "no_stream"))
    assert status == 409 and problem["code"] == "version_conflict"
    assert problem["current_version"] == 1

    assert (await api.post(APPEND, body(agg, {"n": 1}, "stream_exists")))[0] == 201
    status, problem = await api.post(APPEND, body(agg, {"n": 2}, 5))
    assert status == 409 and problem["current_version"] == 2
    assert (await api.post(APPEND, body(agg, {"n": 3}, 2)))[0] == 201
    assert (await api.post(APPEND, body(agg, {"n": 4}, "any")))[1]["version"] == 4
    status, problem = await api.post(APPEND, body(unique("none_"), {}, "stream_exists"))
    assert status == 409 and problem["current_version"] == 0

    status, problem = await api.post(APPEND, {**body(agg, {}), "aggregate_type": "Order"})
    assert status == 409 and problem["code"] == "conflict"
    status, problem = await api.post(APPEND, body(agg, {}, "sometimes"))
    assert status == 422


async def test_append_is_idempotent_by_event_id(api_for) -> None:
    api = api_for(unique())
    agg = unique("user_")
    first = body(agg, {"email": "a@x"}, 0, event_id=unique("evt_"))
    status, answer = await api.post(APPEND, first)
    assert status == 201
    # the retry's expected version no longer holds, yet it answers the original version
    status, again = await api.post(APPEND, first)
    assert status == 200 and again["duplicate"] is True
    assert again["version"] == 1 and again["event_id"] == answer["event_id"]
    status, events = await api.get(f"/api/v1/event-sourcing/aggregate/{agg}/events")
    assert [e["version"] for e in events["events"]] == [1]


async def test_reconstruct_uses_snapshots_and_answers_temporal_queries(api_for) -> None:
    api = api_for(unique())
    agg = unique("user_")
    total = 230  # default policy: a snapshot every 100 events
    for start in range(0, total, 46):
        results = await asyncio.gather(*(
            api.post(APPEND, body(agg, {"counter": i, f"k{i % 7}": i}))
            for i in range(start, start + 46)))
        assert all(s == 201 for s, _ in results), results[:3]

    status, snap = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User"})
    assert status == 200, snap
    assert snap["current_version"] == total and snap["snapshot_version"] == 200
    assert snap["events_applied"] == total - 200
    status, full = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User",
                                                "use_snapshots": False})
    assert full["events_applied"] == total and full["snapshot_version"] is None
    assert full["state"] == snap["state"]
    assert set(snap["state"]) == {"counter", *(f"k{i}" for i in range(7))}

    status, updated = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User",
                                                   "update_snapshots": True})
    assert status == 200 and updated["snapshot_version"] == total
    status, after = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User"})
    assert after["snapshot_version"] == total and after["events_applied"] == 0
    assert after["state"] == snap["state"]

    status, past = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User",
                                                "as_of_version": 150})
    assert past["current_version"] == 150 and past["snapshot_version"] == 100
    assert past["events_applied"] == 50
    status, page = await api.get(f"/api/v1/event-sourcing/aggregate/{agg}/events"
                                 "?from_version=140&limit=20")
    assert [e["version"] for e in page["events"]] == list(range(140, 160))
    assert page["next_from_version"] == 160
    at_150 = next(e for e in page["events"] if e["version"] == 150)["timestamp"]
    status, by_time = await api.get(
        f"/api/v1/event-sourcing/aggregate/{agg}/state?as_of_time={quote(at_150)}")
    assert status == 200, by_time
    version_at = by_time["current_version"]
    assert 150 <= version_at < total  # events sharing that timestamp are included
    status, same = await api.post(RECONSTRUCT, {"aggregate_id": agg, "aggregate_type": "User",
                                                "as_of_version": version_at})
    assert same["state"] == by_time["state"]

    status, _missing = await api.post(RECONSTRUCT, {"aggregate_id": unique("nope_"),
                                                   "aggregate_type": "User"})
    assert status == 404
