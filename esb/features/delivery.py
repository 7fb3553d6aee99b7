"""Webhook delivery: the services on the app, the worker as a runtime child, the REST views.
The WebSocket route needs aiohttp directly: ``esb.views.on_webserver_init`` adds it."""

from __future__ import annotations

from typing import Any

from esb.delivery.config import get_delivery_settings
from esb.delivery.feature import DeliveryFeature
from esb.delivery.lag import OffsetReader, RateTracker
from esb.delivery.replay_job import KIND as REPLAY_JOB
from esb.delivery.replay_job import replay_resumer
from esb.delivery.secretbox import SecretBox, delivery_key_ring
from esb.delivery.service import ConsumerGroupService, SubscriptionService
from esb.delivery.ssrf import SsrfGuard
from esb.kafka_security import kafka_security_options


def install(app: Any) -> DeliveryFeature:
    from agents.delivery import DeliveryWorker
    from esb.views import API_PREFIX, consumer_groups, subscriptions

    runtime = app.runtime
    settings = runtime.settings
    config = get_delivery_settings()
    box = SecretBox(delivery_key_ring(  # independent of the JWT key (ADR 0018)
        current=config.secret_key.get_secret_value() if config.secret_key is not None else None,
        previous=config.previous_keys, development=settings.mode == "development",
        data_dir=settings.data_dir, legacy=settings.jwt_signing_key))
    guard = SsrfGuard(allow_cidrs=config.cidrs, allow_hosts=config.hosts)
    subs = SubscriptionService(runtime.catalog, runtime.streams.directory, runtime.topics,
                               runtime.admin, app_id=settings.app_id, box=box, guard=guard,
                               replication_factor=settings.internal_replication_factor,
                               partitions=settings.default_partitions,
                               quotas=runtime.quotas)
    worker = DeliveryWorker(app, config, box, subs, loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(worker)
    feature = DeliveryFeature(config, subs, ConsumerGroupService(runtime.catalog),
                              OffsetReader(settings.bootstrap_servers,
                                           kafka_security_options(settings)), RateTracker(), worker)
    app.delivery = feature
    runtime.jobs.resumable(REPLAY_JOB, replay_resumer(  # replay as a job (ADR 0016)
        subs, feature.offsets, worker.replay_applied, runtime.topics.prefix))
    subscriptions.blueprint.register(app, url_prefix=API_PREFIX)
    consumer_groups.blueprint.register(app, url_prefix=API_PREFIX)
    return feature
