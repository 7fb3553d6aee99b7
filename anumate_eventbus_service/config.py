"""``EventBusConfig``: the seed's settings; the bus needs only a URL, a token and a stream."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field


class EventBusConfig(BaseModel):
    """The seed's NATS/Redis fields are accepted so its examples construct unchanged; the bus
    replaces them (Kafka topics, PostgreSQL dead-letter index), so they are not used."""

    esb_url: str | None = Field(default_factory=lambda: os.environ.get("ESB_URL"))
    esb_token: str | None = Field(default_factory=lambda: os.environ.get("ESB_TOKEN"))
    stream_name: str = Field(default_factory=lambda: os.environ.get("STREAM_NAME",
                                                                    "ANUMATE_EVENTS"))
    source_capability: str = "anumate"
    partitions: int = 3
    #: broker access for ``subscribe``: queue groups and durable names become Kafka consumer
    #: groups (``kafka://host:port`` or ``host:port``); without it, the WebSocket live tail
    kafka_bootstrap: str | None = Field(default_factory=lambda: os.environ.get("ESB_BROKER"))
    group_rebalance_timeout_ms: int = 10000
    group_session_timeout_ms: int = 10000
    # seed fields, accepted for compatibility
    nats_url: str | None = None
    nats_cluster_id: str | None = None
    redis_url: str | None = None
    max_msgs: int | None = None
    max_bytes: int | None = None
    max_age: int | None = None
    dead_letter_stream: str | None = None
    max_deliver_attempts: int | None = None

    @property
    def bus_stream(self) -> str:
        """The bus's stream name: bus names are lowercase (``ANUMATE_EVENTS`` -> ``anumate_events``)."""
        return self.stream_name.lower()
