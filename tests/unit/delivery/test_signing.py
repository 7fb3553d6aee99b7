"""Standard Webhooks signatures, proven against the reference ``standardwebhooks`` verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from esb.delivery.signing import SigningKeys, WebhookSecret, batch_webhook_id, sign, webhook_headers

BODY = b'{"user_name":"john.doe","email":"john.doe@company.com"}'


def test_reference_verifier_accepts_our_signature() -> None:
    secret = WebhookSecret.generate()
    headers = webhook_headers("evt_123", BODY, SigningKeys(secret))
    assert headers["webhook-id"] == "evt_123"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret.encoded).verify(BODY, headers) == {
        "user_name": "john.doe", "email": "john.doe@company.com"}


@pytest.mark.parametrize("tamper", [
    lambda body, h: (body.replace(b"john", b"jane"), h),
    lambda body, h: (body, {**h, "webhook-id": "evt_other"}),
    lambda body, h: (body, {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}),
])
def test_reference_verifier_rejects_tampering(tamper) -> None:  # type: ignore[no-untyped-def]
    secret = WebhookSecret.generate()
    body, headers = tamper(BODY, webhook_headers("evt_1", BODY, SigningKeys(secret)))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret.encoded).verify(body, headers)


def test_wrong_secret_rejected() -> None:
    headers = webhook_headers("evt_1", BODY, SigningKeys(WebhookSecret.generate()))
    with pytest.raises(WebhookVerificationError):
        Webhook(WebhookSecret.generate().encoded).verify(BODY, headers)


def test_known_vector() -> None:
    # Vector from the Standard Webhooks reference test suite.
    secret = WebhookSecret.parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}', [secret])
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_timestamp_is_the_attempts_time_and_id_is_stable() -> None:
    keys = SigningKeys(WebhookSecret.generate())
    first = webhook_headers("evt_9", BODY, keys, now=1_700_000_000.7)
    retry = webhook_headers("evt_9", BODY, keys, now=1_700_000_060.2)
    assert first["webhook-timestamp"] == "1700000000"
    assert retry["webhook-timestamp"] == "1700000060"
    assert first["webhook-id"] == retry["webhook-id"]
    assert first["webhook-signature"] != retry["webhook-signature"]


def test_rotation_signs_with_both_until_old_expires() -> None:
    old = WebhookSecret.generate()
    now = time.time()
    keys = SigningKeys(old).rotate(now=now, grace_s=3600)
    assert keys.previous == old and keys.current != old
    headers = webhook_headers("evt_r", BODY, keys, now=now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old.encoded).verify(BODY, headers)  # receivers not yet updated
    Webhook(keys.current.encoded).verify(BODY, headers)  # receivers already updated
    after = webhook_headers("evt_r", BODY, keys, now=now + 3601)
    assert len(after["webhook-signature"].split(" ")) == 1
    assert keys.active(now + 3601) == (keys.current,)


def test_rotating_twice_drops_the_oldest() -> None:
    first = WebhookSecret.generate()
    keys = SigningKeys(first).rotate(now=0).rotate(now=1)
    assert first not in keys.active(2)
    assert len(keys.active(2)) == 2


def test_secret_format() -> None:
    secret = WebhookSecret.generate()
    assert secret.encoded.startswith("whsec_")
    assert len(base64.b64decode(secret.encoded[6:])) == 32
    assert WebhookSecret.parse(secret.encoded) == secret
    assert "whsec" not in repr(secret) and secret.encoded[6:] not in repr(secret)
    for bad in ["nope", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()]:
        with pytest.raises(ValueError):
            WebhookSecret.parse(bad)


def test_message_id_rules() -> None:
    with pytest.raises(ValueError):
        sign("has space", 1, b"", [WebhookSecret.generate()])
    with pytest.raises(ValueError):
        sign("id", 1, b"", [])


def test_batch_id_is_stable_and_order_sensitive() -> None:
    assert batch_webhook_id(["a"]) == "a"
    assert batch_webhook_id(["a", "b"]) == batch_webhook_id(["a", "b"])
    assert batch_webhook_id(["a", "b"]) != batch_webhook_id(["b", "a"])
    assert batch_webhook_id(["a", "b"]).startswith("batch_")
    with pytest.raises(ValueError):
        batch_webhook_id([])
