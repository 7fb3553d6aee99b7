"""Webhook secrets at rest: Fernet-encrypted in the catalog, decrypted only by workers.

The key ring is ``ESB_DELIVERY_SECRET_KEY`` (seals) plus ``ESB_DELIVERY_PREVIOUS_SECRET_KEYS``
(comma-separated, open only), independent of the JWT key (ADR 0018). Outside development mode
the key is required; in development a key is generated once in the data directory, and the
JWT-derived key of earlier versions stays in the ring so existing secrets still open. Rotation:
set a new key, list the old one as previous, restart: every stored secret not sealed under the
current key is re-sealed on start (:meth:`SecretBox.stale`, ``SubscriptionService.reseal``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from esb.delivery.signing import SigningKeys, WebhookSecret
from esb.devkeys import dev_key
from esb.errors import ConfigurationError

__all__ = ["SecretBox", "delivery_key_ring"]

DEV_KEY_FILE = "dev-delivery-secret"

KeyRing = Sequence[str] | Callable[[], Sequence[str]]


def _fernet(material: str) -> Fernet:
    digest = hashlib.sha256(b"esb-webhook-secrets\0" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def delivery_key_ring(*, current: str | None, previous: Sequence[str], development: bool,
                      data_dir: Path, legacy: Callable[[], str]) -> Callable[[], list[str]]:
    """The keys, current first, resolved on first use (the dev keys may be created lazily)."""
    if current is None and not development:
        raise ConfigurationError(
            "ESB_DELIVERY_SECRET_KEY is required outside development mode (it encrypts "
            "webhook secrets; it must not be the JWT key)")

    def ring() -> list[str]:
        if current is not None:
            return [current, *previous]
        return [dev_key(data_dir / DEV_KEY_FILE, lambda: secrets.token_urlsafe(48)),
                *previous, legacy()]

    return ring


class SecretBox:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._ring_: tuple[Fernet, MultiFernet] | None = None
        self._cache: dict[str, WebhookSecret] = {}

    @property
    def _ring(self) -> tuple[Fernet, MultiFernet]:
        if self._ring_ is None:
            keys = self._keys if not callable(self._keys) else self._keys()
            if not keys:
                raise ConfigurationError("no webhook-secret key configured")
            fernets = [_fernet(k) for k in keys]
            self._ring_ = (fernets[0], MultiFernet(fernets))
        return self._ring_

    def seal(self, secret: WebhookSecret) -> str:
        return self._ring[0].encrypt(secret.encoded.encode()).decode("ascii")

    def open(self, token: str) -> WebhookSecret:
        cached = self._cache.get(token)
        if cached is None:
            try:
                cached = WebhookSecret.parse(self._ring[1].decrypt(token.encode()).decode())
            except InvalidToken:
                raise ConfigurationError(
                    "webhook secret cannot be decrypted with any configured key (is its key "
                    "missing from ESB_DELIVERY_PREVIOUS_SECRET_KEYS?)") from None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = cached
        return cached

    def stale(self, token: str) -> bool:
        """Sealed under a previous key (so it must be re-sealed before that key is dropped)."""
        try:
            self._ring[0].decrypt(token.encode())
        except InvalidToken:
            return True
        return False

    def reseal(self, token: str) -> str:
        """The same secret sealed under the current key (raises if no key of the ring opens)."""
        try:
            return self._ring[1].rotate(token.encode()).decode("ascii")
        except InvalidToken:
            raise ConfigurationError("webhook secret cannot be decrypted with any configured "
                                     "key; it cannot be re-sealed") from None

    def keys_for(self, subscription: dict[str, Any]) -> SigningKeys:
        """The signing keys a subscription record names (current, and previous until expiry)."""
        sealed = subscription["webhook_secret_enc"]
        previous = subscription.get("previous_secret_enc")
        return SigningKeys(self.open(sealed),
                           self.open(previous) if previous else None,
                           subscription.get("previous_secret_expires_at"))
