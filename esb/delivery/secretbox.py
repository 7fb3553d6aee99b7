"""Webhook secrets at rest: Fernet-encrypted in the catalog, decrypted only by workers.

The key is ``ESB_DELIVERY_SECRET_KEY`` when set, else derived (SHA-256) from the JWT signing key,
so a bus without extra configuration still never writes a webhook secret in clear text to Kafka.
Rotating the derivation key makes stored secrets unreadable: rotate webhook secrets with it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from esb.delivery.signing import SigningKeys, WebhookSecret
from esb.errors import ConfigurationError

__all__ = ["SecretBox"]


class SecretBox:
    def __init__(self, key_material: str | Callable[[], str]) -> None:
        self._key_material = key_material
        self._fernet_: Fernet | None = None
        self._cache: dict[str, WebhookSecret] = {}

    @property
    def _fernet(self) -> Fernet:
        if self._fernet_ is None:  # derived on first use: the dev key may be created lazily
            material = self._key_material
            text = material if isinstance(material, str) else material()
            digest = hashlib.sha256(b"esb-webhook-secrets\0" + text.encode()).digest()
            self._fernet_ = Fernet(base64.urlsafe_b64encode(digest))
        return self._fernet_

    def seal(self, secret: WebhookSecret) -> str:
        return self._fernet.encrypt(secret.encoded.encode()).decode("ascii")

    def open(self, token: str) -> WebhookSecret:
        cached = self._cache.get(token)
        if cached is None:
            try:
                cached = WebhookSecret.parse(self._fernet.decrypt(token.encode()).decode())
            except InvalidToken:
                raise ConfigurationError("webhook secret cannot be decrypted with this key") from None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = cached
        return cached

    def keys_for(self, subscription: dict[str, Any]) -> SigningKeys:
        """The signing keys a subscription record names (current, and previous until expiry)."""
        sealed = subscription["webhook_secret_enc"]
        previous = subscription.get("previous_secret_enc")
        return SigningKeys(self.open(sealed),
                           self.open(previous) if previous else None,
                           subscription.get("previous_secret_expires_at"))
