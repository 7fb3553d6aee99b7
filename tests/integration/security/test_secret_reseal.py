"""Rotating ESB_DELIVERY_SECRET_KEY re-seals the webhook secrets stored in the metadata
catalog (ADR 0018): the service a worker runs on start, against the real broker's catalog.
After the re-seal the new key alone opens every secret, so the old key can be dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.catalog import MetadataCatalog
from esb.delivery.names import SUBSCRIPTION_KIND
from esb.delivery.secretbox import SecretBox
from esb.delivery.service import SubscriptionService
from esb.delivery.signing import WebhookSecret
from esb.delivery.ssrf import SsrfGuard
from esb.errors import ConfigurationError
from esb.kafka import ProducerPool, TopicAdmin
from esb.settings import Settings
from esb.streams import StreamDirectory
from esb.topics import TopicNames
from tests.support import unique

pytestmark = [pytest.mark.integration]


def _service(catalog: MetadataCatalog, topics: TopicNames, admin: TopicAdmin,
             box: SecretBox) -> SubscriptionService:
    return SubscriptionService(catalog, StreamDirectory(catalog.current, topics), topics, admin,
                               app_id="reseal", box=box, guard=SsrfGuard())


async def test_rotation_reseals_stored_secrets(broker_url: str, tmp_path: Path) -> None:
    settings = Settings(mode="development", broker=broker_url, topic_prefix=unique("rs"),
                        data_dir=tmp_path)
    topics = TopicNames(settings.topic_prefix)
    producers, admin = ProducerPool(settings), TopicAdmin(settings)
    catalog = MetadataCatalog(settings, producers, admin, topics.metadata)
    await catalog.start()
    try:
        old = SecretBox(["key-before-rotation"])
        current, previous = WebhookSecret.generate(), WebhookSecret.generate()
        tenant = unique()
        for n in range(3):
            record = {"subscription_id": f"sub{n}", "tenant_id": tenant, "status": "active",
                      "webhook_secret_enc": old.seal(current),
                      "previous_secret_enc": old.seal(previous) if n == 0 else None}
            await catalog.write(SUBSCRIPTION_KIND, tenant, f"sub{n}", "create", record)
        plain = {"subscription_id": "nohook", "tenant_id": tenant, "status": "active",
                 "webhook_secret_enc": None}
        await catalog.write(SUBSCRIPTION_KIND, tenant, "nohook", "create", plain)

        rotated = SecretBox(["key-after-rotation", "key-before-rotation"])
        service = _service(catalog, topics, admin, rotated)
        assert await service.reseal_secrets() == 3
        assert await service.reseal_secrets() == 0  # idempotent: nothing stale is left

        only_new = SecretBox(["key-after-rotation"])
        for n in range(3):
            stored = catalog.current.get(SUBSCRIPTION_KIND, tenant, f"sub{n}")
            assert stored is not None
            keys = only_new.keys_for(stored)
            assert keys.current.encoded == current.encoded
            if n == 0:
                assert keys.previous is not None
                assert keys.previous.encoded == previous.encoded
            with pytest.raises(ConfigurationError):
                old.open(stored["webhook_secret_enc"])
        assert catalog.current.get(SUBSCRIPTION_KIND, tenant, "nohook") == plain
    finally:
        await catalog.stop()
        await producers.stop()
        await admin.close()
