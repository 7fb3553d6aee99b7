"""Monitoring (ADR 0020): process and disk collectors, the background lag scan, the seeds' status
endpoints. The ``/ws/monitoring`` route needs aiohttp directly: ``esb.views.on_webserver_init``
adds it when ``app.monitoring`` is set."""

from __future__ import annotations

from typing import Any

from esb.delivery.lag import OffsetReader
from esb.delivery.models import SubscriptionState
from esb.delivery.names import SUBSCRIPTION_KIND
from esb.kafka_security import kafka_security_options
from esb.metrics import install_process_collectors
from esb.monitoring.feature import MonitoringFeature
from esb.monitoring.groups import list_topics, worker_groups
from esb.monitoring.scanner import LagScanner


def install(app: Any) -> MonitoringFeature:
    from esb.views import API_PREFIX, status

    runtime = app.runtime
    settings = runtime.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    install_process_collectors(str(settings.data_dir))
    offsets = OffsetReader(settings.bootstrap_servers, kafka_security_options(settings))

    def live_subscriptions() -> list[dict[str, Any]]:
        """Paused and disabled subscriptions still owe their events: their lag is shown."""
        return [s for s in runtime.catalog.current.list(SUBSCRIPTION_KIND)
                if s.get("status") != SubscriptionState.CANCELLED.value]

    scanner = LagScanner(offsets, live_subscriptions, settings.data_dir,
                         settings.monitor_interval_s, groups=lambda: worker_groups(app),
                         topics=lambda: list_topics(settings), names=runtime.topics,
                         loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(scanner)
    feature = MonitoringFeature(offsets, scanner)
    app.monitoring = feature
    status.blueprint.register(app, url_prefix=API_PREFIX)
    return feature
