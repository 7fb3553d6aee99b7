"""Sealed personal values: they open only with their key, event and path; keys wrap per owner."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from esb.crypto import fields
from esb.crypto.config import load_master_key
from esb.crypto.sealing import (
    MasterKey,
    TokenInvalid,
    is_sealed,
    new_data_key,
    open_token,
    seal,
)
from esb.errors import ConfigurationError
from esb.settings import Settings


def test_a_sealed_value_round_trips_and_hides_the_plaintext() -> None:
    dek = new_data_key()
    token = seal(dek, "sk_1", "evt_1", "email", "alice@example.com")
    assert is_sealed(token) and token["kid"] == "sk_1"
    assert "alice" not in json.dumps(token)
    assert open_token(dek, token) == "alice@example.com"


@pytest.mark.parametrize("change", [{"eid": "evt_2"}, {"path": "name"}])
def test_a_token_moved_to_another_event_or_field_does_not_open(change: dict[str, str]) -> None:
    dek = new_data_key()
    token = seal(dek, "sk_1", "evt_1", "email", {"nested": [1, 2]})
    with pytest.raises(TokenInvalid):
        open_token(dek, {**token, **change})


def test_another_key_or_a_flipped_byte_does_not_open() -> None:
    dek = new_data_key()
    token = seal(dek, "sk_1", "evt_1", "email", "x")
    with pytest.raises(TokenInvalid):
        open_token(new_data_key(), token)
    raw = bytearray(base64.b64decode(token["ct"]))
    raw[-1] ^= 1
    with pytest.raises(TokenInvalid):
        open_token(dek, {**token, "ct": base64.b64encode(bytes(raw)).decode()})


def test_a_wrapped_data_key_unwraps_only_for_its_owner_and_master() -> None:
    master = MasterKey.from_text(MasterKey.generate_text())
    dek = new_data_key()
    wrapped = master.wrap(dek, "t1", "alice", "sk_1")
    assert dek not in wrapped
    assert master.unwrap(wrapped, "t1", "alice", "sk_1") == dek
    with pytest.raises(ConfigurationError):
        master.unwrap(wrapped, "t2", "alice", "sk_1")  # another tenant's row
    with pytest.raises(ConfigurationError):
        MasterKey.from_text(MasterKey.generate_text()).unwrap(wrapped, "t1", "alice", "sk_1")


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_master_key_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        MasterKey.from_text(text)


def test_field_paths() -> None:
    doc = {"customer": {"email": "a@b"}, "n": 1}
    assert fields.get(doc, fields.normalise("payload.customer.email")) == "a@b"
    assert fields.get(doc, "customer.phone") is fields.MISSING
    assert fields.get(doc, "n.x") is fields.MISSING
    fields.put(doc, "customer.email", "sealed")
    assert doc == {"customer": {"email": "sealed"}, "n": 1}
    found = list(fields.walk({"a": [{"k": 1}, {"k": 2}], "b": {"k": 3}},
                             lambda n: isinstance(n, dict) and "k" in n))
    assert [n["k"] for n in found] == [1, 2, 3]


def test_the_master_key_is_required_in_production_and_generated_once_in_development(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ESB_MASTER_KEY"):
        load_master_key(Settings(mode="production", data_dir=tmp_path))
    dev = load_master_key(Settings(mode="development", data_dir=tmp_path))
    wrapped = dev.wrap(new_data_key(), "t", "s", "k")
    again = load_master_key(Settings(mode="development", data_dir=tmp_path))
    assert len(again.unwrap(wrapped, "t", "s", "k")) == 32  # the same key, kept on disk
    configured = MasterKey.generate_text()
    (tmp_path / "mk").write_text(configured + "\n")
    from_file = load_master_key(Settings(mode="production", master_key_file=tmp_path / "mk"))
    from_env = load_master_key(Settings(mode="production", master_key=configured))
    assert from_env.unwrap(from_file.wrap(b"k" * 32, "t", "s", "k"), "t", "s", "k") == b"k" * 32
