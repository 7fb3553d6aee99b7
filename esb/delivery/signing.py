"""Standard Webhooks signatures (https://www.standardwebhooks.com) for outgoing deliveries.

Every delivery carries ``webhook-id`` (the event id, identical on every retry so receivers can
dedup), ``webhook-timestamp`` (unix seconds of *this* attempt) and ``webhook-signature``:
``v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>``. Secrets look like
``whsec_<base64 of 24-64 random bytes>``.

Rotation: a new secret becomes current at once and the old one stays valid until an expiry.
Until then every delivery is signed with both (space-separated signatures), so a receiver that
still has the old secret and one that already has the new one both verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_ROTATION_GRACE_S",
    "SigningKeys",
    "WebhookSecret",
    "batch_webhook_id",
    "sign",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"
DEFAULT_ROTATION_GRACE_S = 24 * 3600.0
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 24, 64


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """A signing key; ``repr`` never shows it."""

    key: bytes

    def __post_init__(self) -> None:
        if not _MIN_KEY_BYTES <= len(self.key) <= _MAX_KEY_BYTES:
            raise ValueError(f"webhook secret must be {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES} bytes")

    @classmethod
    def generate(cls, nbytes: int = 32) -> WebhookSecret:
        return cls(secrets.token_bytes(nbytes))

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """Read ``whsec_<base64>``; raises ``ValueError`` (without echoing the secret)."""
        if not text.startswith(SECRET_PREFIX):
            raise ValueError(f"webhook secret must start with {SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("webhook secret is not valid base64") from None
        return cls(key)

    @property
    def encoded(self) -> str:
        """The ``whsec_…`` form to show the subscriber once and to store (encrypted) at rest."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode("ascii")

    def __repr__(self) -> str:
        return "WebhookSecret(<hidden>)"


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The current secret and, during a rotation, the previous one with its expiry (unix s)."""

    current: WebhookSecret
    previous: WebhookSecret | None = None
    previous_expires_at: float | None = None

    def active(self, now: float) -> tuple[WebhookSecret, ...]:
        """Secrets to sign with at ``now``: the current one, plus the previous until it expires."""
        if self.previous is not None and (
            self.previous_expires_at is None or now < self.previous_expires_at
        ):
            return (self.current, self.previous)
        return (self.current,)

    def rotate(self, new: WebhookSecret | None = None, *, now: float | None = None,
               grace_s: float = DEFAULT_ROTATION_GRACE_S) -> SigningKeys:
        """Make ``new`` (or a fresh secret) current; the current one stays valid for ``grace_s``."""
        if grace_s < 0:
            raise ValueError("grace_s must be >= 0")
        started = time.time() if now is None else now
        return replace(
            self,
            current=new or WebhookSecret.generate(),
            previous=self.current,
            previous_expires_at=started + grace_s,
        )


def sign(msg_id: str, timestamp: int, body: bytes, secrets_: Iterable[WebhookSecret]) -> str:
    """The ``webhook-signature`` value: one ``v1,<sig>`` per secret, space-separated."""
    if not msg_id or any(ch.isspace() for ch in msg_id):
        raise ValueError("webhook-id must be non-empty without whitespace")
    to_sign = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    parts = [
        "v1," + base64.b64encode(hmac.new(s.key, to_sign, hashlib.sha256).digest()).decode("ascii")
        for s in secrets_
    ]
    if not parts:
        raise ValueError("at least one secret is required to sign")
    return " ".join(parts)


def webhook_headers(msg_id: str, body: bytes, keys: SigningKeys,
                    now: float | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (timestamp = this attempt's time)."""
    moment = time.time() if now is None else now
    timestamp = int(moment)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, keys.active(moment)),
    }


def batch_webhook_id(event_ids: Sequence[str]) -> str:
    """A stable id for a batch: the same events in the same order give the same id on retry."""
    if not event_ids:
        raise ValueError("a batch needs at least one event id")
    if len(event_ids) == 1:
        return event_ids[0]
    digest = hashlib.sha256("\n".join(event_ids).encode("utf-8")).hexdigest()
    return f"batch_{digest[:32]}"
