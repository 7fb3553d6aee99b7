"""Monitoring logic without a broker: the subscribe protocol, per-stream figures read from the
registry (one tenant's series only), rates, the tenant's exposition, and lag gauges."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb import metrics
from esb.authz import Narrowing, Permission
from esb.delivery.lag import PartitionLag
from esb.errors import InvalidRequest, NotFound, OutOfScope
from esb.monitoring.protocol import parse_subscribe, push, resolve_streams
from esb.monitoring.scanner import LagScanner, dir_bytes, lag_gauges
from esb.monitoring.snapshot import StreamTotals, rates, read_totals
from tests.support import unique


def test_subscribe_request_as_the_seed_sends_it() -> None:
    wanted = parse_subscribe(json.dumps({"type": "subscribe", "streams": ["user_events",
                                                                          "order_events"],
                                         "metrics": ["throughput", "latency", "error_rate"]}))
    assert wanted.streams == ("user_events", "order_events")
    assert wanted.metrics == ("throughput", "latency", "error_rate")
    assert parse_subscribe('{"type": "subscribe", "streams": ["a"]}').metrics == (
        "throughput", "latency", "error_rate", "lag")


@pytest.mark.parametrize("text", [
    "not json", "[]", '{"type": "unsubscribe", "streams": ["a"]}',
    '{"type": "subscribe"}', '{"type": "subscribe", "streams": []}',
    '{"type": "subscribe", "streams": [1]}',
    '{"type": "subscribe", "streams": ["a"], "metrics": ["cpu"]}',
    json.dumps({"type": "subscribe", "streams": [f"s{i}" for i in range(101)]}),
])
def test_bad_subscribe_requests_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_subscribe(text)


class Directory:
    def __init__(self, streams: dict[tuple[str, str], str]) -> None:
        self.streams = streams

    def get(self, tenant: str, ref: str) -> dict[str, Any] | None:
        name = self.streams.get((tenant, ref))
        return {"stream_name": name} if name else None


def test_another_tenants_stream_is_not_found() -> None:
    directory = Directory({("acme", "orders"): "orders", ("acme", "str_orders"): "orders",
                           ("other", "secret"): "secret"})
    assert resolve_streams(directory, "acme", ("orders", "str_orders")) == {
        "orders": "orders", "str_orders": "orders"}
    with pytest.raises(NotFound):
        resolve_streams(directory, "acme", ("orders", "secret"))


def test_a_token_scoped_to_some_streams_is_refused_the_others() -> None:
    directory = Directory({("acme", "orders"): "orders", ("acme", "payroll"): "payroll"})
    scope = Narrowing(Permission.READ, streams=("ord*",))
    assert resolve_streams(directory, "acme", ("orders",), scope) == {"orders": "orders"}
    with pytest.raises(OutOfScope):
        resolve_streams(directory, "acme", ("orders", "payroll"), scope)


def test_totals_read_only_the_tenants_series_and_rates_move() -> None:
    mine, theirs, stream = unique(), unique(), unique("s")
    before = read_totals(mine, [stream])[stream]
    metrics.PUBLISHED.labels(mine, stream, "NORMAL", "http").inc(30)
    metrics.ROUTED.labels(mine, stream, "HIGH").inc(10)
    metrics.PUBLISHED.labels(theirs, stream, "NORMAL", "http").inc(1000)
    metrics.DEAD_LETTERED.labels(mine, stream, "ingress", "schema_violation").inc(2)
    metrics.DELIVERY_ATTEMPTS.labels(mine, stream, "retry").inc(3)
    metrics.DELIVERY_ATTEMPTS.labels(mine, stream, "success").inc(50)
    metrics.STREAM_PUBLISH_LATENCY.labels(mine, stream).observe(0.010)
    metrics.STREAM_PUBLISH_LATENCY.labels(mine, stream).observe(0.030)
    metrics.CONSUMER_LAG.labels(mine, stream, "sub_a", "0", "delivery").set(7)
    metrics.CONSUMER_LAG.labels(mine, stream, "sub_a", "1", "delivery").set(5)
    metrics.CONSUMER_LAG_SECONDS.labels(mine, stream, "sub_a", "0", "delivery").set(4.5)
    metrics.CONSUMER_LAG.labels(theirs, stream, "sub_b", "0", "delivery").set(999)
    # the worker's own groups are not the stream's subscribers' lag
    metrics.CONSUMER_LAG.labels(mine, stream, "esb-projection", "0", "projection").set(100)
    metrics.CONSUMER_LAG_SECONDS.labels(mine, stream, "esb-projection", "0", "projection").set(99)
    after = read_totals(mine, [stream])[stream]
    assert after.events - before.events == 40
    assert after.errors - before.errors == 5
    assert after.lag_by_group == {"sub_a": 12}
    figures = rates(before, after, 2.0)
    assert figures == {"throughput": 20.0, "latency": 20.0, "error_rate": round(5 / 45, 4),
                       "lag": 12, "lag_seconds": 4.5}


def test_rates_with_nothing_new_are_zero() -> None:
    same = StreamTotals(events=5, errors=1, latency_sum=1.0, latency_count=2)
    assert rates(same, same, 1.0) == {"throughput": 0.0, "latency": 0.0, "error_rate": 0.0,
                                      "lag": 0.0, "lag_seconds": 0.0}


def test_push_carries_only_the_requested_metrics() -> None:
    figures = {"orders": {"throughput": 3.0, "latency": 1.0, "error_rate": 0.0, "lag": 2.0,
                          "lag_seconds": 0.5}}
    message = push(figures, ("throughput",), 1.0)
    assert message["message_type"] == "monitoring"
    assert message["data"] == {"orders": {"throughput": 3.0}}
    assert push(figures, ("lag",), 1.0)["data"]["orders"] == {"lag": 2.0, "lag_seconds": 0.5}


def test_tenant_exposition_hides_other_tenants_series() -> None:
    mine, theirs = unique(), unique()
    metrics.PUBLISHED.labels(mine, "s", "NORMAL", "http").inc()
    metrics.PUBLISHED.labels(theirs, "s", "NORMAL", "http").inc()
    metrics.HTTP_REQUESTS.labels("GET", "/api/v1/streams", "200").inc()
    text = metrics.exposition(mine).decode()
    assert f'tenant="{mine}"' in text and theirs not in text
    assert 'route="/api/v1/streams"' in text  # the worker's own series stay
    everything = metrics.exposition(None).decode()
    assert mine in everything and theirs in everything


def test_lag_gauges_sum_lanes_and_age_the_oldest_unread_record() -> None:
    rows = [PartitionLag("t.critical", 0, 10, 12, 2), PartitionLag("t.normal", 0, 5, 9, 4),
            PartitionLag("t.normal", 1, 3, 3, 0)]
    heads = {("t.critical", 0): 50_000, ("t.normal", 0): 40_000}
    gauges = lag_gauges("acme", "orders", "sub_1", rows, heads, now_ms=100_000)
    assert gauges == {("acme", "orders", "sub_1", "0", "delivery"): (6, 60.0),
                      ("acme", "orders", "sub_1", "1", "delivery"): (0, 0.0)}


async def test_scanner_publishes_lag_and_removes_groups_that_went_away(tmp_path) -> None:
    tenant = unique()
    (tmp_path / "f").write_bytes(b"x" * 1234)

    class Offsets:
        async def group_lag(self, group: str, topics: list[str], starts: Any
                            ) -> list[PartitionLag]:
            return [PartitionLag(topics[0], 0, 1, 4, 3)]

        async def head_timestamps(self, rows: list[PartitionLag]) -> dict[tuple[str, int], int]:
            return {(rows[0].topic, 0): 0}

    subs = [{"tenant_id": tenant, "stream_name": "orders", "subscription_id": "sub_x",
             "kafka_group_id": "g", "topics": {"NORMAL": "t"}}]
    scanner = LagScanner(Offsets(), lambda: list(subs), tmp_path, 1.0)  # type: ignore[arg-type]
    await scanner.scan_once()
    assert read_totals(tenant, ["orders"])["orders"].lag_by_group == {"sub_x": 3}
    assert read_totals(tenant, ["orders"])["orders"].lag_seconds > 1e6  # epoch 0: very old
    assert [v for _, _, v in metrics.series(metrics.DATA_DIR_BYTES)] == [dir_bytes(tmp_path)]
    assert dir_bytes(tmp_path) == 1234
    subs.clear()
    await scanner.scan_once()
    assert read_totals(tenant, ["orders"])["orders"].lag_by_group == {}


async def test_a_failing_scan_is_counted_and_keeps_the_last_figures(tmp_path) -> None:
    tenant = unique()

    class Broken:
        async def group_lag(self, *_: Any) -> list[PartitionLag]:
            raise RuntimeError("broker gone")

    def scan_errors() -> float:
        return sum(v for n, labels, v in metrics.series(metrics.LAG_SCANS)
                   if labels["result"] == "error" and n.endswith("_total"))

    metrics.CONSUMER_LAG.labels(tenant, "orders", "sub_y", "0", "delivery").set(9)
    before = scan_errors()
    subs = [{"tenant_id": tenant, "stream_name": "orders", "subscription_id": "sub_y",
             "kafka_group_id": "g", "topics": {"NORMAL": "t"}}]
    await LagScanner(Broken(), lambda: subs, tmp_path, 1.0).scan_once()  # type: ignore[arg-type]
    assert scan_errors() == before + 1
    assert read_totals(tenant, ["orders"])["orders"].lag_records == 9
