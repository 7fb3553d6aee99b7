"""The webhook-secret key ring (ADR 0018): independent of the JWT key, required in production,
rotated with MultiFernet (old keys open, the current key seals, stale tokens are re-sealed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.delivery.secretbox import SecretBox, delivery_key_ring
from esb.delivery.signing import WebhookSecret
from esb.errors import ConfigurationError


def _ring(tmp_path: Path, jwt: str, **kw: object) -> SecretBox:
    options = {"current": None, "previous": (), "development": True, "data_dir": tmp_path,
               "legacy": lambda: jwt, **kw}
    return SecretBox(delivery_key_ring(**options))  # type: ignore[arg-type]


def test_production_requires_the_key() -> None:
    with pytest.raises(ConfigurationError, match="ESB_DELIVERY_SECRET_KEY"):
        delivery_key_ring(current=None, previous=(), development=False, data_dir=Path("/x"),
                          legacy=lambda: "jwt")


def test_changing_the_jwt_key_no_longer_breaks_stored_secrets(tmp_path: Path) -> None:
    secret = WebhookSecret.generate()
    token = _ring(tmp_path, "jwt-key-A" * 4).seal(secret)
    after = _ring(tmp_path, "jwt-key-B" * 4)  # same data dir, new JWT key
    assert after.open(token).encoded == secret.encoded
    assert not after.stale(token)
    assert (tmp_path / "dev-delivery-secret").stat().st_mode & 0o777 == 0o600


def test_secrets_sealed_under_the_old_jwt_derivation_are_resealed(tmp_path: Path) -> None:
    secret = WebhookSecret.generate()
    legacy_token = SecretBox(["jwt-key-A" * 4]).seal(secret)  # how earlier versions sealed
    box = _ring(tmp_path, "jwt-key-A" * 4)
    assert box.stale(legacy_token) and box.open(legacy_token).encoded == secret.encoded
    fresh = box.reseal(legacy_token)
    assert not box.stale(fresh)
    assert _ring(tmp_path, "jwt-key-B" * 4).open(fresh).encoded == secret.encoded


def test_rotation_opens_with_previous_keys_and_seals_with_the_current(tmp_path: Path) -> None:
    secret = WebhookSecret.generate()
    old = SecretBox(["first-key"]).seal(secret)
    rotated = SecretBox(["second-key", "first-key"])
    assert rotated.stale(old) and rotated.open(old).encoded == secret.encoded
    resealed = rotated.reseal(old)
    assert SecretBox(["second-key"]).open(resealed).encoded == secret.encoded
    with pytest.raises(ConfigurationError):
        SecretBox(["second-key"]).open(old)  # the old key was really needed
    with pytest.raises(ConfigurationError):
        SecretBox(["third-key"]).reseal(old)
