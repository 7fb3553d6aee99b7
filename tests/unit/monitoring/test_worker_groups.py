"""The worker's own consumer groups for the lag scan: which topics each reads, how its series
are labelled, and that the scanner publishes them next to subscriptions' groups."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from esb import metrics
from esb.delivery.lag import PartitionLag
from esb.monitoring.groups import GroupSpec, topic_labels, worker_groups
from esb.monitoring.scanner import LagScanner, group_gauges
from esb.topics import LANES, TopicNames
from tests.support import unique

NAMES = TopicNames("esb")


def _loop(group: str, stage: str, topics: tuple[str, ...] = (), pattern: str | None = None,
          **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(group_id=group, stage=stage, topics=list(topics), pattern=pattern,
                           **extra)


def test_a_pattern_group_reads_the_topics_it_matches_and_a_listed_one_those_that_exist() -> None:
    existing = {"esb.acme.ingress", "esb.beta.ingress", "esb.acme.ingress.high",
                "esb.acme.orders.normal", "esb.dead-letters"}
    lane = GroupSpec("esb-router-normal", "ingress",
                     pattern=NAMES.ingress_pattern(LANES[2], shared=False))
    assert lane.select(existing) == ["esb.acme.ingress", "esb.beta.ingress"]
    listed = GroupSpec("g", "deadletter-index", ("esb.dead-letters", "missing"))
    assert listed.select(existing) == ["esb.dead-letters"]


def test_labels_name_the_tenant_and_stream_where_the_topic_or_the_group_does() -> None:
    assert topic_labels(NAMES, "esb.acme.orders.normal") == ("acme", "orders")
    assert topic_labels(NAMES, "esb.acme.ingress.high") == ("acme", "")
    assert topic_labels(NAMES, "esb.dead-letters") == ("", "")
    assert topic_labels(NAMES, "esb.proc.p1.repartition", tenant="acme") == ("acme", "")


def test_group_gauges_are_per_tenant_stream_and_partition() -> None:
    spec = GroupSpec("esb-projection", "projection", pattern=".*")
    rows = [PartitionLag("esb.acme.orders.normal", 0, 1, 4, 3),
            PartitionLag("esb.acme.orders.high", 0, 0, 2, 2),
            PartitionLag("esb.beta.users.normal", 1, 5, 5, 0)]
    gauges = group_gauges(spec, NAMES, rows, {("esb.acme.orders.normal", 0): 90_000}, 100_000)
    assert gauges == {("acme", "orders", "esb-projection", "0", "projection"): (5, 10.0),
                      ("beta", "users", "esb-projection", "1", "projection"): (0, 0.0)}


def test_worker_groups_come_from_the_running_loops() -> None:
    job = SimpleNamespace(tenant="acme")
    app = SimpleNamespace(
        ingress_router=SimpleNamespace(lanes=[_loop("esb-router-normal", "ingress",
                                                    pattern="^x$")]),
        projection=SimpleNamespace(loop_=_loop("esb-projection", "projection", pattern="^y$")),
        deadletter_index=SimpleNamespace(indexer=_loop("esb-dl", "deadletter-index",
                                                       ("esb.dead-letters",))),
        processing=SimpleNamespace(worker=SimpleNamespace(runners={"p1": ("fp", [
            _loop("esb.proc.p1", "processor", ("t1",), job=job),
            _loop("esb.proc.p1", "processor", ("t1",), job=job)])})),
        delivery=SimpleNamespace(worker=SimpleNamespace(retry_runners=[
            _loop("esb.delivery-retry.2s", "delivery", ("esb.retry.2s",))])),
        sourcing=SimpleNamespace(tables=SimpleNamespace(
            commands=SimpleNamespace(get_topic_name=lambda: "esb.sourcing-commands"))),
        conf=SimpleNamespace(id="esb"))
    specs = {s.group: s for s in worker_groups(app)}
    assert set(specs) == {"esb-router-normal", "esb-projection", "esb-dl", "esb.proc.p1",
                          "esb.delivery-retry.2s", "esb"}
    assert specs["esb.proc.p1"].tenant == "acme"
    assert specs["esb.delivery-retry.2s"].stage == "delivery-retry"  # not a subscription's
    assert specs["esb"] == GroupSpec("esb", "sourcing", ("esb.sourcing-commands",))
    assert worker_groups(SimpleNamespace()) == []


async def test_the_scanner_publishes_and_drops_the_worker_groups_lag(tmp_path) -> None:
    tenant = unique()
    topic = f"esb.{tenant}.ingress"
    lag = {"n": 4}

    class Offsets:
        async def group_lag(self, group: str, topics: list[str], starts: Any = None
                            ) -> list[PartitionLag]:
            return [PartitionLag(t, 0, 0, lag["n"], lag["n"]) for t in topics]

        async def head_timestamps(self, rows: list[PartitionLag]) -> dict[tuple[str, int], int]:
            return {}

    async def topics() -> set[str]:
        return {topic, "esb.other"}

    specs = [GroupSpec("esb-router-normal", "ingress",
                       pattern=NAMES.ingress_pattern(LANES[2], shared=False))]
    scanner = LagScanner(Offsets(), list, tmp_path, 1.0, groups=lambda: specs,  # type: ignore[arg-type]
                         topics=topics, names=NAMES)

    def lag_of() -> dict[tuple[str, ...], float]:
        return {(labels["group"], labels["stage"], labels["partition"]): value
                for _, labels, value in metrics.series(metrics.CONSUMER_LAG, tenant)}

    await scanner.scan_once()
    assert lag_of() == {("esb-router-normal", "ingress", "0"): 4}
    lag["n"] = 0
    await scanner.scan_once()
    assert lag_of() == {("esb-router-normal", "ingress", "0"): 0}
    specs.clear()
    await scanner.scan_once()
    assert lag_of() == {}
