"""What the processor and pattern views need (``app.processing``): the catalog services and
the worker that runs this replica's RUNNING jobs; wired by ``esb.features.processing``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from esb.processing.partition_state import metrics_snapshot
from esb.processing.service import PatternService, ProcessorService
from esb.streams import stream_name_from

__all__ = ["ProcessingFeature"]


@dataclass
class ProcessingFeature:
    processors: ProcessorService
    patterns: PatternService
    worker: Any

    def _partitions(self, tenant: str, source_stream_id: str) -> int:
        stream = self.processors.directory.get(tenant, stream_name_from(source_stream_id))
        return int(stream["partitions"]) if stream is not None else 0

    async def prepare(self, record: dict[str, Any], job_id: str) -> None:
        """Create the job's changelog up front, so metrics can be read before it first runs."""
        partitions = self._partitions(record["tenant_id"], record["source_stream_id"])
        await self.worker.ensure_changelog(job_id, partitions)

    async def job_states(self, record: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
        partitions = self._partitions(record["tenant_id"], record["source_stream_id"])
        return list(await self.worker.partition_states(job_id, partitions))

    async def metrics(self, record: dict[str, Any], job_id: str) -> dict[str, Any]:
        states = await self.job_states(record, job_id)
        return metrics_snapshot(states, now_ms=int(time.time() * 1000))
