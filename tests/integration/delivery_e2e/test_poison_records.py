"""A record no receiver can be sent (a null CloudEvents header, written straight to the stream
topic) becomes a delivery dead letter; the subscription's next events are still delivered, and
the runner never rewinds forever (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from esb import ids
from tests.integration.delivery_e2e.conftest import Receiver, make_stream, subscribe
from tests.support import ce_headers, eventually, produce, unique

pytestmark = pytest.mark.integration


async def test_a_poison_record_is_dead_lettered_and_the_next_events_are_delivered(
        dapi: Any, receiver: Receiver, bootstrap: str) -> None:
    tenant = unique()
    api = dapi(tenant)
    name = await make_stream(api)
    status, stream = await api.get(f"/api/v1/streams/{name}")
    assert status == 200, stream
    path = unique("p")
    await subscribe(api, name, receiver.url(path))
    good = [ids.event_id() for _ in range(3)]
    poison = ids.event_id()
    lane = stream["topics"]["NORMAL"]
    await produce(bootstrap, lane, [
        (b"k", b"{}", ce_headers(tenant, "order.created", source="orders", event_id=good[0])),
        (b"k", b"{}", [*ce_headers(tenant, "order.created", source="orders", event_id=poison),
                       ("ce_subject", None)]),
        *[(b"k", b"{}", ce_headers(tenant, "order.created", source="orders", event_id=eid))
          for eid in good[1:]],
    ])

    async def delivered() -> bool:
        return set(receiver.ids(path)) >= set(good) or None  # type: ignore[return-value]

    await eventually(delivered, timeout=45)

    async def dead_lettered() -> list[dict[str, Any]] | None:
        status, body = await api.get("/api/v1/dead-letters?stage=delivery")
        assert status == 200, body
        return body["dead_letters"] or None

    (letter,) = await eventually(dead_lettered, timeout=30)
    assert letter["event_id"] == poison and "ce_subject" in letter["error"]
    assert poison not in receiver.ids(path)
