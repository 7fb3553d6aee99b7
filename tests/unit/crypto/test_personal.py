"""Sealing an event's personal fields and revealing them (a dict-backed key store: pure unit)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb.crypto.personal import NoDataSubject, PersonalData
from esb.crypto.sealing import ERASED, is_sealed, new_data_key, new_kid

STREAM = {"stream_name": "users", "personal_fields": ["payload.email", "address.street"]}


class DictKeys:
    """The SubjectKeyStore interface over a dict."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.by_kid: dict[tuple[str, str], bytes] = {}

    async def current(self, tenant: str, subject: str) -> tuple[str, bytes]:
        if (tenant, subject) not in self.live:
            kid, dek = new_kid(), new_data_key()
            self.live[(tenant, subject)] = (kid, dek)
            self.by_kid[(tenant, kid)] = dek
        return self.live[(tenant, subject)]

    async def key(self, tenant: str, kid: str) -> bytes | None:
        return self.by_kid.get((tenant, kid))

    async def erase(self, tenant: str, subject: str) -> list[str]:
        kid, _ = self.live.pop((tenant, subject))
        del self.by_kid[(tenant, kid)]
        return [kid]


def _event(event_id: str, subject: str, email: str) -> tuple[dict[str, str], bytes]:
    attrs = {"id": event_id, "aggregateid": subject}
    return attrs, json.dumps({"email": email, "address": {"street": "Main 1"},
                              "plan": "pro"}).encode()


async def test_marked_fields_are_sealed_and_others_kept() -> None:
    personal = PersonalData(DictKeys())  # type: ignore[arg-type]
    attrs, data = _event("e1", "alice", "alice@example.com")
    sealed = json.loads(await personal.seal_event("t1", STREAM, attrs, data))
    assert is_sealed(sealed["email"]) and is_sealed(sealed["address"]["street"])
    assert sealed["plan"] == "pro"
    assert b"alice@example.com" not in json.dumps(sealed).encode()
    assert await personal.reveal("t1", sealed) == json.loads(data)


async def test_erasure_shows_erased_for_one_subject_only() -> None:
    keys = DictKeys()
    personal = PersonalData(keys)  # type: ignore[arg-type]
    docs = []
    for n, who in enumerate(("alice", "bob")):
        attrs, data = _event(f"e{n}", who, f"{who}@example.com")
        docs.append(json.loads(await personal.seal_event("t1", STREAM, attrs, data)))
    await keys.erase("t1", "alice")
    alice, bob = (await personal.reveal("t1", {"events": docs}))["events"]
    assert alice["email"][ERASED] is True and alice["plan"] == "pro"
    assert bob["email"] == "bob@example.com"


async def test_another_tenant_cannot_open_the_values() -> None:
    personal = PersonalData(DictKeys())  # type: ignore[arg-type]
    attrs, data = _event("e1", "alice", "alice@example.com")
    sealed = json.loads(await personal.seal_event("t1", STREAM, attrs, data))
    shown: Any = await personal.reveal("t2", sealed)
    assert shown["email"][ERASED] is True


async def test_roles_decide_plaintext_and_streams_without_marks_are_untouched() -> None:
    personal = PersonalData(DictKeys())  # type: ignore[arg-type]
    attrs, data = _event("e1", "alice", "alice@example.com")
    assert await personal.seal_event("t1", {"stream_name": "s"}, attrs, data) is data
    sealed = json.loads(await personal.seal_event("t1", STREAM, attrs, data))
    assert await personal.reveal_for(frozenset({"publisher"}), "t1", sealed) == sealed
    assert (await personal.reveal_for(frozenset({"reader"}), "t1", sealed))["email"] \
        == "alice@example.com"


async def test_subject_comes_from_subject_field_and_is_required() -> None:
    keys = DictKeys()
    personal = PersonalData(keys)  # type: ignore[arg-type]
    stream = {**STREAM, "subject_field": "payload.customer_id"}
    body = {"email": "a@b", "customer_id": "c-42"}
    await personal.seal_event("t1", stream, {"id": "e1"}, json.dumps(body).encode())
    assert list(keys.live) == [("t1", "c-42")]
    with pytest.raises(NoDataSubject):
        await personal.seal_event("t1", STREAM, {"id": "e2"}, json.dumps(body).encode())
