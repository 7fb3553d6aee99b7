"""What the monitoring views need from the worker, as one typed attribute (``app.monitoring``)."""

from __future__ import annotations

from dataclasses import dataclass

from esb.delivery.lag import OffsetReader
from esb.monitoring.scanner import LagScanner


@dataclass(frozen=True, slots=True)
class MonitoringFeature:
    offsets: OffsetReader
    scanner: LagScanner
    #: seconds between ``/ws/monitoring`` pushes (the seed's "every second")
    push_interval_s: float = 1.0
