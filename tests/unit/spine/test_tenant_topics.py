"""Tenant-owned ingress topics (ADR 0009): names, the lanes' subscription patterns, and that no
tenant or stream name can reach the bus's internal topics."""

from __future__ import annotations

import re

import pytest

from agents.projection import lane_pattern
from esb.errors import InvalidRequest
from esb.topics import LANES, Priority, TopicNames, check_name

TOPICS = TopicNames("esb")


@pytest.mark.parametrize("priority", LANES)
def test_each_lane_pattern_reads_every_tenants_lane_and_nothing_else(priority: Priority) -> None:
    own = TOPICS.ingress_pattern(priority, shared=False)
    assert re.match(own, TOPICS.tenant_ingress("acme", priority))
    assert not re.match(own, TOPICS.ingress_lane(priority))  # shared ingress: off by default
    assert re.match(TOPICS.ingress_pattern(priority, shared=True), TOPICS.ingress_lane(priority))
    others = [TOPICS.tenant_ingress("acme", p) for p in LANES if p is not priority]
    assert not any(re.match(own, t) for t in others)
    assert not re.match(own, TOPICS.stream_lane("acme", "orders", priority))


def test_the_topic_names_its_tenant_and_is_never_a_stream() -> None:
    assert TOPICS.ingress_tenant("esb.acme.ingress.high") == "acme"
    assert TOPICS.ingress_tenant("esb.ingress.high") is None
    assert TOPICS.parse_stream_topic("esb.acme.ingress.high") is None
    projection = lane_pattern("esb")
    assert re.match(projection, "esb.acme.orders.high")
    assert not re.match(projection, "esb.acme.ingress.high")


@pytest.mark.parametrize("name", ["ingress", "proc", "retry", "sourcing", "deadletter", "metadata",
                                  "critical", "normal"])
@pytest.mark.parametrize("kind", ["tenant_id", "stream_name"])
def test_internal_segments_are_reserved(kind: str, name: str) -> None:
    with pytest.raises(InvalidRequest, match="reserved"):
        check_name(kind, name)
