"""Pure pieces of the SDK and CLI: Kafka record decoding, archive items, replay offsets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from anumate_eventbus_service import CloudEvent
from esb.cli_ops.subscriptions import _offsets
from esb.sdk.client import archived_item
from esb.sdk.kafka import bootstrap_servers, decode


def _record(value: bytes, content_type: bytes = b"application/json") -> SimpleNamespace:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"evt-1"), ("ce_source", b"shop"),
               ("ce_type", b"order.created"), ("ce_tenantid", b"acme"),
               ("ce_time", b"2026-12-01T00:00:00Z"), ("content-type", content_type),
               ("esb-stage-history", b"[]")]
    return SimpleNamespace(headers=headers, key=b"order-7", value=value)


def test_a_stream_record_decodes_into_the_seeds_cloudevent() -> None:
    event = CloudEvent.from_sdk(decode(_record(b'{"n": 1}')))
    assert (event.id, event.type, event.source, event.data) == (
        "evt-1", "order.created", "shop", {"n": 1})
    assert event.tenantid == "acme" and event.partitionkey == "order-7"
    assert event.time == "2026-12-01T00:00:00Z"
    assert not hasattr(event, "esb-stage-history")  # only ce_* headers are attributes


def test_non_json_data_stays_bytes() -> None:
    assert decode(_record(b"\x00\x01", b"application/octet-stream")).data == b"\x00\x01"


def test_bootstrap_accepts_the_bus_spelling() -> None:
    assert bootstrap_servers("kafka://a:9092, b:9093") == ["a:9092", "b:9093"]


def test_archived_events_take_the_live_message_shape() -> None:
    item = archived_item({"event_id": "e1", "event_type": "t", "source_capability": "s",
                          "timestamp": "2026-01-01T00:00:00Z", "payload": {"x": 1},
                          "stream_name": "orders"})
    assert item["type"] == "archived" and item["partition"] is None
    assert item["event"] == {"specversion": "1.0", "id": "e1", "type": "t", "source": "s",
                             "time": "2026-01-01T00:00:00Z", "stream": "orders",
                             "data": {"x": 1}}


@pytest.mark.parametrize(("given", "expected"), [
    (None, None), (["5"], 5), (["0=5", "1=7"], {"0": 5, "1": 7})])
def test_replay_offsets(given, expected) -> None:
    assert _offsets(given) == expected


def test_replay_offsets_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        _offsets(["x=y"])
