"""AES-256-GCM for personal values (under a per-subject data key) and for the data keys
themselves (wrapped under the master key). Pure: no storage, no I/O.

A sealed value is a self-describing JSON object, so every copy of it (topic bytes, archive,
read models, snapshots, dead letters) stays unreadable once its data key is destroyed::

    {"$esb_enc": "v1", "kid": "sk_…", "eid": "<event id>", "path": "email", "ct": "<base64>"}

``ct`` is nonce (12 bytes) + ciphertext + tag; the event id and the field path are the
associated data, so a token moved to another event or field fails to open.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from esb.errors import ConfigurationError, EsbError

ENC = "$esb_enc"
ERASED = "$esb_erased"
VERSION = "v1"
KEY_BYTES = 32
_NONCE = 12


class TokenInvalid(EsbError):
    """A sealed value did not authenticate: tampered, moved, or sealed under another key."""


def is_sealed(node: Any) -> bool:
    return isinstance(node, dict) and node.get(ENC) == VERSION


def erased_marker(token: dict[str, Any]) -> dict[str, Any]:
    """What reads show for a value whose subject was erased."""
    return {ERASED: True, "path": token.get("path")}


def new_kid() -> str:
    return "sk_" + secrets.token_hex(12)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _aad(event_id: str, path: str) -> bytes:
    return f"esb-field\0{event_id}\0{path}".encode()


def seal(dek: bytes, kid: str, event_id: str, path: str, value: Any) -> dict[str, Any]:
    nonce = os.urandom(_NONCE)
    plain = json.dumps(value, separators=(",", ":")).encode()
    ct = AESGCM(dek).encrypt(nonce, plain, _aad(event_id, path))
    return {ENC: VERSION, "kid": kid, "eid": event_id, "path": path,
            "ct": base64.b64encode(nonce + ct).decode("ascii")}


def open_token(dek: bytes, token: dict[str, Any]) -> Any:
    try:
        raw = base64.b64decode(token["ct"], validate=True)
        plain = AESGCM(dek).decrypt(raw[:_NONCE], raw[_NONCE:],
                                    _aad(str(token["eid"]), str(token["path"])))
    except (InvalidTag, KeyError, ValueError) as exc:
        raise TokenInvalid("a sealed personal value failed authentication") from exc
    return json.loads(plain)


class MasterKey:
    """Wraps and unwraps data keys; the associated data binds a wrapped key to its owner."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError("ESB_MASTER_KEY must be 32 bytes, base64-encoded")
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise ConfigurationError("ESB_MASTER_KEY is not valid base64") from None
        return cls(key)

    @staticmethod
    def generate_text() -> str:
        return base64.b64encode(new_data_key()).decode("ascii")

    @staticmethod
    def _aad(tenant: str, subject: str, kid: str) -> bytes:
        return f"esb-dek\0{tenant}\0{subject}\0{kid}".encode()

    def wrap(self, dek: bytes, tenant: str, subject: str, kid: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, dek, self._aad(tenant, subject, kid))

    def unwrap(self, wrapped: bytes, tenant: str, subject: str, kid: str) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:],
                                      self._aad(tenant, subject, kid))
        except InvalidTag:
            raise ConfigurationError(
                "a subject key cannot be unwrapped: ESB_MASTER_KEY is not the key it was "
                "wrapped with") from None
