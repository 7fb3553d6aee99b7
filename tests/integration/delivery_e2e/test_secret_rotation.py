"""Webhook secret rotation end to end (``POST /api/v1/subscriptions/{id}/rotate-secret``).

As ``esb.delivery.signing`` documents: the new secret signs at once; the previous one keeps
signing too (a second, space-separated ``v1,`` signature) until ``previous_secret_expires_at``
(``grace_s``, default 24 h); only one previous secret is kept, so a second rotation ends the
first secret's grace early. Each attempt is signed with the keys active at its own time, whose
whole second is the ``webhook-timestamp`` header: that is what the grace assertions key on.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.delivery_e2e.conftest import Received, make_stream, publish, subscribe
from tests.support import eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]

PATH = "rot"


def _signatures(req: Received) -> list[str]:
    return req.headers["webhook-signature"].split(" ")


def _verifies(secret: str, req: Received) -> bool:
    try:
        Webhook(secret).verify(req.body, req.headers)
    except WebhookVerificationError:
        return False
    return True


async def _deliveries(receiver: Any, ids: list[str]) -> list[Received]:
    async def arrived():
        got = [r for r in receiver.on(PATH) if r.headers["webhook-id"] in ids]
        return got if {r.headers["webhook-id"] for r in got} >= set(ids) else None
    return await eventually(arrived, timeout=60)  # type: ignore[no-any-return]


async def test_rotated_secret_signs_at_once_and_the_previous_one_only_during_its_grace(
        dapi, receiver) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    created = await subscribe(api, stream, receiver.url(PATH))
    sub_id = created["subscription_id"]
    original = created["webhook_secret"]

    before = await _deliveries(receiver, await publish(api, 3))
    for req in before:
        assert len(_signatures(req)) == 1 and _verifies(original, req)

    # rotation 1, default grace: the new secret signs from now on, the old one for 24 h more
    status, r1 = await api.post(f"/api/v1/subscriptions/{sub_id}/rotate-secret")
    assert status == 200, r1
    first = r1["webhook_secret"]
    assert first.startswith("whsec_") and first != original
    assert r1["previous_secret_expires_at"] == pytest.approx(time.time() + 86400, abs=60)
    assert not any(_verifies(first, req) for req in before)  # it is a different key
    status, shown = await api.get(f"/api/v1/subscriptions/{sub_id}")
    assert status == 200 and shown.get("secret_rotated_at"), shown
    assert "whsec_" not in json.dumps(shown) and "previous_secret_enc" not in shown

    during_grace = await _deliveries(receiver, await publish(api, 3))
    for req in during_grace:
        assert len(_signatures(req)) == 2, req.headers
        assert _verifies(first, req) and _verifies(original, req)

    # rotation 2 with a short grace: one previous secret is kept, so `original` is out now
    status, r2 = await api.post(f"/api/v1/subscriptions/{sub_id}/rotate-secret?grace_s=2")
    assert status == 200, r2
    second = r2["webhook_secret"]
    expires_at = float(r2["previous_secret_expires_at"])
    assert time.time() < expires_at <= time.time() + 2.5
    short_grace = await _deliveries(receiver, await publish(api, 3))
    for req in short_grace:
        assert _verifies(second, req) and not _verifies(original, req)
        signed_at = int(req.headers["webhook-timestamp"])
        if signed_at + 1 <= expires_at:  # the attempt happened before the expiry
            assert len(_signatures(req)) == 2 and _verifies(first, req)
        elif signed_at >= expires_at:
            assert len(_signatures(req)) == 1 and not _verifies(first, req)
    assert any(len(_signatures(r)) == 2 for r in short_grace), \
        "no delivery landed inside the 2 s grace: cannot tell the grace was honoured"

    # once the grace has ended only the newest secret signs
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.05)
    after = await _deliveries(receiver, await publish(api, 3))
    for req in after:
        assert len(_signatures(req)) == 1, req.headers
        assert _verifies(second, req)
        assert not _verifies(first, req) and not _verifies(original, req)


async def test_rotation_input_is_checked(dapi, delivery_bus) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    status, no_webhook = await api.post("/api/v1/subscriptions", {
        "subscription_name": unique("ws"), "stream_id": stream, "consumer_group_id": "g"})
    assert status == 201, no_webhook
    status, body = await api.post(
        f"/api/v1/subscriptions/{no_webhook['subscription_id']}/rotate-secret")
    assert status == 409, body  # nothing to rotate without a webhook
    for bad in ("-1", "abc", str(31 * 86400)):
        status, body = await api.post(
            f"/api/v1/subscriptions/{no_webhook['subscription_id']}/rotate-secret?grace_s={bad}")
        assert status == 400 and body["code"] == "invalid_request", (bad, body)
    status, body = await api.post(f"/api/v1/subscriptions/{unique('sub_')}/rotate-secret")
    assert status == 404, body
