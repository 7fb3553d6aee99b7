"""Replay from offsets (``POST /api/v1/subscriptions/{id}/replay`` with ``from_offset``).

``{partition: offset}`` seeks each named partition of every lane topic to that offset, clamped
to the partition's [start, end]; partitions it does not name keep their position. So after a
replay the receiver gets exactly the records at or after each requested offset, in partition
order, and nothing before them. (Replay from a time is covered by ``test_offsets``.)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import make_stream, subscribe
from tests.support import Api, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]

PATH = "replay"


async def _publish_located(api: Api, n: int, *, keys: int) -> list[dict[str, Any]]:
    """Publish ``n`` events; each answer names the event's topic, partition and offset."""
    events = [{"event_type": "order.created", "source_capability": "orders",
               "aggregate_id": f"agg-{i % keys}", "aggregate_type": "Order", "payload": {"n": i}}
              for i in range(n)]
    status, body = await api.post("/api/v1/events/batch", {"events": events})
    assert status == 201, body
    return body["events"]  # type: ignore[no-any-return]


async def _settled(api: Api, sub_id: str, receiver: Any, want: set[str], since: int = 0
                   ) -> list[str]:
    """Wait for ``want`` to arrive after the ``since``-th request and the group to reach the end.

    With zero lag every record up to the end has been dispatched and committed, so nothing more
    can arrive unless something seeks back: the deliveries seen now are all there will be.
    """
    async def arrived():
        got = [r.headers["webhook-id"] for r in receiver.on(PATH)[since:]]
        return got if set(got) >= want else None
    await eventually(arrived, timeout=60)

    async def caught_up():
        _, st = await api.get(f"/api/v1/subscriptions/{sub_id}/status")
        return st["lag"] == 0 or None
    await eventually(caught_up, timeout=30)
    return [r.headers["webhook-id"] for r in receiver.on(PATH)[since:]]


async def test_replay_from_offsets_redelivers_from_each_position_and_nothing_before(
        dapi, receiver) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    sub = await subscribe(api, stream, receiver.url(PATH))
    sub_id = sub["subscription_id"]
    published = await _publish_located(api, 24, keys=24)
    topic = published[0]["topic"]
    assert {e["topic"] for e in published} == {topic} and topic.endswith(".normal")
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in published:
        by_partition[event["partition"]].append(event)
    for events in by_partition.values():
        events.sort(key=lambda e: e["offset"])
        assert [e["offset"] for e in events] == list(range(len(events))), "a fresh topic"
    used = sorted(by_partition, key=lambda p: -len(by_partition[p]))
    assert len(used) == 3 and len(by_partition[used[1]]) >= 2, \
        {p: len(e) for p, e in by_partition.items()}

    first_pass = await _settled(api, sub_id, receiver, {e["event_id"] for e in published})
    assert sorted(first_pass) == sorted(e["event_id"] for e in published)

    # one partition from its middle, one from offset 1, one from far past its end (clamped to
    # its end: nothing to re-deliver there)
    middle, second, past_end = used
    from_offset = {middle: len(by_partition[middle]) // 2, second: 1, past_end: 10**9}
    expected = {p: [e["event_id"] for e in by_partition[p] if e["offset"] >= start]
                for p, start in from_offset.items()}
    assert not expected[past_end] and expected[middle] and expected[second]
    seen = len(receiver.on(PATH))
    status, body = await api.post(f"/api/v1/subscriptions/{sub_id}/replay",
                                  {"from_offset": {str(p): o for p, o in from_offset.items()}})
    assert status == 202, body
    assert body["replay_id"].startswith("rpl")
    clamped = {**from_offset, past_end: len(by_partition[past_end])}
    assert {k: v for k, v in body["offsets"].items() if k.startswith(topic + ":")} == {
        f"{topic}:{p}": o for p, o in clamped.items()}, body["offsets"]
    other_lanes = {k: v for k, v in body["offsets"].items() if not k.startswith(topic + ":")}
    assert len(other_lanes) == 3 * 3 and set(other_lanes.values()) == {0}, other_lanes  # empty
    status, shown = await api.get(f"/api/v1/subscriptions/{sub_id}")
    assert shown["last_replay"]["replay_id"] == body["replay_id"]
    assert "offsets" not in shown["last_replay"]

    wanted = {i for ids in expected.values() for i in ids}
    again = await _settled(api, sub_id, receiver, wanted, since=seen)
    assert sorted(again) == sorted(wanted), "exactly the records from the requested offsets"
    position = {i: n for n, i in enumerate(again)}
    for p, ids in expected.items():  # each partition re-delivered in offset order
        assert sorted(ids, key=position.__getitem__) == ids, p


async def test_replay_requests_are_clamped_and_checked(dapi) -> None:
    # a WebSocket-consumer subscription: no delivery runner to restart, only the request
    api = dapi(unique())
    stream = await make_stream(api)
    status, sub = await api.post("/api/v1/subscriptions", {
        "subscription_name": unique("ws"), "stream_id": stream, "consumer_group_id": "g"})
    assert status == 201, sub
    sub_id = sub["subscription_id"]
    published = await _publish_located(api, 9, keys=9)
    ends: dict[str, int] = {}
    for event in published:
        key = f"{event['topic']}:{event['partition']}"
        ends[key] = max(ends.get(key, 0), event["offset"] + 1)
    # one offset for every partition of every lane, clamped to each partition's end
    status, body = await api.post(f"/api/v1/subscriptions/{sub_id}/replay", {"from_offset": 2})
    assert status == 202, body
    assert len({key.rsplit(":", 1)[0] for key in body["offsets"]}) == 4, body["offsets"]
    assert len(body["offsets"]) == 4 * 3, body["offsets"]
    for key, offset in body["offsets"].items():
        assert offset == min(2, ends.get(key, 0)), (key, body["offsets"])
    for bad in ({}, {"from_offset": -1}, {"from_offset": {"0": -5}}, {"from_offset": {"x": 1}},
                {"from_offset": True}, {"from_offset": 0, "from_time": "2024-01-01T00:00:00Z"},
                {"from_time": "2024-01-01T00:00:00"}, {"from_time": "yesterday"}):
        status, problem = await api.post(f"/api/v1/subscriptions/{sub_id}/replay", bad)
        assert status == 400 and problem["code"] == "invalid_request", (bad, problem)
    status, _ = await api.request("DELETE", f"/api/v1/subscriptions/{sub_id}")
    assert status == 200
    status, problem = await api.post(f"/api/v1/subscriptions/{sub_id}/replay", {"from_offset": 0})
    assert status == 409, problem  # only active subscriptions replay
    status, problem = await api.post(f"/api/v1/subscriptions/{unique('sub_')}/replay",
                                     {"from_offset": 0})
    assert status == 404, problem
