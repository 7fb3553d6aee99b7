"""The worker's runtime: every adapter a view or agent needs, started before the web server.

One ``Runtime`` per worker process. It is a ``mode`` service that the Faust app starts as a
dependency, so the catalog is loaded and the database migrated before any request is served.
"""

from __future__ import annotations

import logging
from typing import Any

from mode import Service

from esb.auth import Authenticator
from esb.catalog import MetadataCatalog
from esb.consumer_kit import HealthBoard
from esb.deadletter_store import DeadLetterStore
from esb.delivery.ratelimit import InMemoryRateLimiter
from esb.delivery.ratelimit_redis import RedisRateLimiter
from esb.idempotency import IdempotencyStore, MemoryBackend, RedisBackend
from esb.jobs import JobBook
from esb.kafka import ProducerPool, TopicAdmin, TopicSpec
from esb.publish_decision import PayloadChecks
from esb.publishing import Publisher
from esb.quotas import PublishQuota, QuotaBook, QuotaLimits
from esb.settings import Settings
from esb.streams import StreamService
from esb.tenancy import TenantSlots
from esb.topics import TopicNames

log = logging.getLogger(__name__)


class Runtime(Service):
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topics = TopicNames(settings.topic_prefix)
        self.auth = Authenticator(settings)
        self.producers = ProducerPool(settings)
        self.admin = TopicAdmin(settings)
        self.catalog = MetadataCatalog(settings, self.producers, self.admin, self.topics.metadata,
                                       loop=self.loop, beacon=self.beacon)
        #: per-tenant quotas (ADR 0016): limits from settings + catalog, the publish budget
        self.quotas = QuotaBook(QuotaLimits.from_settings(settings), self.catalog)
        self.publish_quota = PublishQuota(self.quotas, InMemoryRateLimiter())
        self.jobs = JobBook(self.catalog)  # long operations: status and progress
        self.streams = StreamService(self.catalog, self.admin, self.topics,
                                     ingress_partitions=settings.default_partitions,
                                     ingress_replication=settings.internal_replication_factor,
                                     quotas=self.quotas)
        self.payload_checks = PayloadChecks()
        self.publisher = Publisher(self.streams.directory, self.producers,
                                   max_event_bytes=settings.max_event_bytes,
                                   payload_checks=self.payload_checks,
                                   sync=self.catalog.sync, quota=self.publish_quota)
        self.redis: Any = None
        self.idempotency = IdempotencyStore(MemoryBackend(), ttl_s=settings.idempotency_ttl_s)
        self.database: Any = None
        self.dead_letters: DeadLetterStore | None = None
        self.personal_data: Any = None  # esb.crypto.personal.PersonalData once the DB is open
        self._extra_children: list[Service] = []
        #: which Kafka consumer loops are backing off on an infrastructure failure
        self.consumer_board = HealthBoard()
        #: open WebSockets per tenant (live tails hold a Kafka consumer each)
        self.ws_slots = TenantSlots(settings.max_ws_per_tenant)

    def consumer_health(self) -> dict[str, Any]:
        """For ``/health``: ok unless a consumer loop is retrying an unavailable dependency."""
        return self.consumer_board.snapshot()

    def add_child(self, service: Service) -> None:
        """Extension point: features add services that start after the runtime is ready."""
        self._extra_children.append(service)

    async def on_start(self) -> None:
        await self._ensure_internal_topics()
        await self._open_database()
        if self.settings.redis_url is not None:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(self.settings.redis_url.get_secret_value())
            self.publish_quota.use(RedisRateLimiter(self.redis, prefix=f"{self.topics.prefix}:"))
            self.idempotency = IdempotencyStore(RedisBackend(self.redis),
                                                ttl_s=self.settings.idempotency_ttl_s)
        await self.add_runtime_dependency(self.catalog)
        for child in self._extra_children:
            await self.add_runtime_dependency(child)

    async def on_stop(self) -> None:
        await self.producers.stop()
        await self.admin.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.database is not None:
            await self.database.close()

    async def _ensure_internal_topics(self) -> None:
        rf = self.settings.internal_replication_factor
        parts = self.settings.default_partitions
        await self.admin.ensure_topics(
            ([TopicSpec(t, parts, rf) for t in self.topics.ingress_topics]
             if self.settings.ingress_shared_tenant else [])
            + [TopicSpec(self.topics.dead_letters, parts, rf, {"retention.ms": "-1"})]
        )

    async def _open_database(self) -> None:
        from esb.db import Database, start_embedded_postgres

        if self.settings.database_url is not None:
            url = self.settings.database_url.get_secret_value()
        else:
            url = start_embedded_postgres(self.settings.data_dir / "postgres")
        self.database = Database(url, schema=self.settings.database_schema,
                                 max_size=self.settings.database_pool_size)
        await self.database.open()
        self.dead_letters = DeadLetterStore(self.database)
        self._open_subject_keys()

    def _open_subject_keys(self) -> None:
        """Personal fields (ADR 0018): sealed at publish, opened on reads, erased by key."""
        from esb.crypto.config import load_master_key
        from esb.crypto.keystore import SubjectKeyStore
        from esb.crypto.personal import PersonalData

        self.personal_data = PersonalData(SubjectKeyStore(self.database,
                                                          load_master_key(self.settings)))
        self.payload_checks.personal_data = self.personal_data
