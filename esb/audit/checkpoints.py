"""Signed checkpoints: a log's tree size and root at a time, signed with Ed25519.

The signed bytes are a short text note (like RFC 9162's signed tree head and C2SP's checkpoint
notes), rebuilt by the verifier from the stored fields, so nothing but the fields is trusted.
The private key comes from ``ESB_AUDIT_SIGNING_KEY`` (PEM or base64 of the 32-byte seed) or, in
development mode only, from a key generated in the data directory. The public key is published
at ``GET /api/v1/audit/key``; a verifier should take it from somewhere the database's owner
cannot rewrite (the settings, the operator's notes), never from the audit tables.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from esb.errors import ConfigurationError

NOTE_HEADER = "esb-audit-checkpoint v1"
DEV_KEY_FILE = "audit-signing-key.pem"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log: str
    tree_size: int
    root: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    def note(self) -> bytes:
        return note(self.log, self.tree_size, self.root, self.signed_at)

    def to_json(self) -> dict[str, object]:
        return {"tree_size": self.tree_size, "root": self.root.hex(),
                "signed_at": self.signed_at.isoformat(), "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode(),
                "note": self.note().decode()}


def note(log: str, tree_size: int, root: bytes, signed_at: datetime) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    stamp = signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (f"{NOTE_HEADER}\nlog: {log}\nsize: {tree_size}\n"
            f"root: {base64.b64encode(root).decode()}\ntime: {stamp}\n").encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_b64(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as base64 of the 32 raw bytes, or PEM; ConfigurationError otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigurationError("the audit public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ConfigurationError(f"the audit public key cannot be read: {exc}") from None


class Signer:
    """Signs checkpoints with one Ed25519 key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, log: str, tree_size: int, root: bytes,
             signed_at: datetime | None = None) -> Checkpoint:
        when = (signed_at or datetime.now(UTC)).astimezone(UTC)
        signature = self._private.sign(note(log, tree_size, root, when))
        return Checkpoint(log, tree_size, root, when, self.key_id, signature)


def check_signature(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(checkpoint.signature, checkpoint.note())
    except InvalidSignature:
        return False
    return True


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A private key as PEM (PKCS#8) or base64 of the 32-byte seed."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ConfigurationError("ESB_AUDIT_SIGNING_KEY is not an Ed25519 key")
            return key
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ConfigurationError(
            "ESB_AUDIT_SIGNING_KEY must be an Ed25519 PEM key or base64 of a 32-byte seed "
            f"({type(exc).__name__})") from None


def configured_public_key(configured: str | None, data_dir: Path) -> Ed25519PublicKey | None:
    """The public half of the configured key, else of an existing development key (never a
    new one: a verifier must not invent the key it checks against)."""
    if configured:
        return load_private_key(configured).public_key()
    path = data_dir / DEV_KEY_FILE
    return load_private_key(path.read_text()).public_key() if path.exists() else None


def signer_from(configured: str | None, *, development: bool, data_dir: Path) -> Signer:
    """The configured key; in development mode a key generated once in ``data_dir``."""
    if configured:
        return Signer(load_private_key(configured))
    if not development:
        raise ConfigurationError("ESB_AUDIT_SIGNING_KEY is required outside development mode "
                                 "(an Ed25519 PEM key signs the audit checkpoints)")
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another replica won the race: use its key
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    return Signer(load_private_key(path.read_text()))
