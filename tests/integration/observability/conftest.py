"""One delivery-enabled worker with JSON logs and spans written to a file (ADR 0019).

Workers are subprocesses, so an in-memory exporter cannot be read from the test: the worker runs
with ``OTEL_TRACES_EXPORTER=console`` and ``ESB_TRACES_FILE`` (one JSON span per line), and
``ESB_LOG_FORMAT=json``; the tests read both files.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import delivery_env, receiver  # noqa: F401
from tests.support import Api, WorkerGroup


@dataclass
class ObservedBus:
    group: WorkerGroup
    port: int
    spans_path: Path

    def api(self, http: Any, tenant: str) -> Api:
        return Api(http, self.group.url(self.port), self.group.token(tenant))

    def spans(self) -> list[dict[str, Any]]:
        if not self.spans_path.exists():
            return []
        return [json.loads(line) for line in self.spans_path.read_text().splitlines() if line]

    def log(self) -> str:
        return self.group.log(self.port)


@pytest.fixture(scope="module")
def observed(broker_url: str, database_url: str, redis_url: str) -> Iterator[ObservedBus]:
    tmp = Path(tempfile.mkdtemp(prefix="esb-observed-"))
    group = WorkerGroup(broker_url, database_url, tmp)
    spans = tmp / "spans.jsonl"
    port = group.start(**delivery_env(redis_url), ESB_LOG_FORMAT="json", ESB_LOG_LEVEL="info",
                       OTEL_TRACES_EXPORTER="console", ESB_TRACES_FILE=str(spans),
                       OTEL_TRACES_SAMPLER="parentbased_always_on")
    try:
        yield ObservedBus(group, port, spans)
    finally:
        group.stop_all()
