"""The Faust application: ``faust -A esb.app worker -l info`` starts a worker replica.

Every replica runs the same app: the runtime (catalog, producers, database), the pipeline stages in
``agents``, the tables in ``tables`` and the web views in ``esb.views``. The runtime starts before
agents and the web server, so nothing is served before metadata is loaded and the database migrated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import faust
from mode import ServiceT

from esb.kafka_security import kafka_credentials
from esb.observability import logging as obs_logging
from esb.observability import tracing
from esb.runtime import Runtime
from esb.settings import Settings, get_settings

if TYPE_CHECKING:
    from agents.ingress import IngressRouterService
    from agents.projection import ProjectionService
    from esb.audit.service import AuditService
    from esb.delivery.feature import DeliveryFeature
    from esb.monitoring.feature import MonitoringFeature
    from esb.processing.feature import ProcessingFeature
    from esb.schemas.service import SchemaRegistryService
    from esb.sourcing.feature import SourcingFeature

class EsbApp(faust.App):
    """The worker app. What views need from features are these typed attributes, set by the
    features' ``install`` (``esb.features``); None where a feature is not installed."""

    runtime: Runtime
    ingress_router: IngressRouterService | None = None
    projection: ProjectionService | None = None
    schema_registry: SchemaRegistryService
    sourcing: SourcingFeature
    delivery: DeliveryFeature | None = None
    processing: ProcessingFeature | None = None
    monitoring: MonitoringFeature | None = None
    audit: AuditService | None = None  # the audit trail (ADR 0017)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        return [self.runtime, *super().on_init_dependencies()]

    def on_webserver_init(self, web: Any) -> None:
        from esb import views

        views.on_webserver_init(self, web)


def bound_faust_fetch_wait(max_wait_ms: int, idle_max_wait_ms: int | None = None) -> None:
    """Faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer. A broker that does not wake
    a long poll when data arrives (Tansu does not) then holds every agent fetch for up to 1.5 s:
    event-sourcing appends took that long per command. Bound it by ``ESB_FETCH_MAX_WAIT_MS``
    while records flow, and let it grow to ``idle_max_wait_ms`` while they do not: the same
    quiet-partition policy as the consumer kit's (``esb.fetch_wait``, ADR 0021)."""
    from faust.transport.drivers import aiokafka as driver

    from esb.fetch_wait import adapt

    create = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_esb_bounded", False):
        return

    def create_bounded(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        low = min(consumer._fetch_max_wait_ms, max_wait_ms)
        return adapt(consumer, low, max(low, idle_max_wait_ms or low))

    create_bounded._esb_bounded = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create_bounded  # type: ignore[method-assign]


def faust_settings(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.faust_broker,
        "broker_credentials": kafka_credentials(settings),  # TLS/SASL (ADR 0018)
        "store": "rocksdb://",
        "datadir": str(settings.data_dir / f"worker-{settings.web_port}"),
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "canonical_url": settings.advertised_url or f"http://{settings.web_host}:{settings.web_port}",
        "topic_replication_factor": settings.internal_replication_factor,
        "topic_partitions": settings.default_partitions,
        "broker_rebalance_timeout": settings.group_rebalance_timeout_ms / 1000,
        "broker_session_timeout": settings.group_session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.group_heartbeat_interval_ms / 1000,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger": settings.producer_linger_ms / 1000,
        "web_cors_options": None,
        # Faust's /router and /table/<name>/<key>/ blueprints answer without our auth middleware
        # scoping: /table read any tenant's aggregate state. Routing uses app.router directly.
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        # structured logs (ADR 0019): Faust sets up logging itself, from this dictConfig
        "logging_config": obs_logging.logging_config(
            settings.log_level, settings.log_format, obs_logging.worker_id(settings.web_port)),
    }


def create_app(settings: Settings | None = None) -> EsbApp:
    settings = settings or get_settings()
    bound_faust_fetch_wait(settings.fetch_max_wait_ms, settings.fetch_idle_max_wait_ms)
    tracing.configure(service_instance=obs_logging.worker_id(settings.web_port),  # OTEL_* env
                      traces_file=str(settings.traces_file) if settings.traces_file else None)
    from esb import recovery

    recovery.install()  # local table state ahead of the broker is rebuilt, not a crash
    app = EsbApp(settings.app_id, **faust_settings(settings))
    app.runtime = Runtime(settings)

    import importlib

    from esb.features import FEATURES

    for name in FEATURES:
        importlib.import_module(name).install(app)
    return app


app = create_app()
