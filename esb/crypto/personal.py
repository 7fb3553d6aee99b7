"""Which fields of an event are personal, sealing them at publish, opening them on reads.

A stream marks personal fields with ``personal_fields`` (dotted paths into the event data) and
names its data subject with ``subject_field`` (a path; default: the aggregate id). Streams that
mark nothing cost nothing: :func:`personal_fields` is one dict lookup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esb.crypto import fields
from esb.crypto.keystore import SubjectKeyStore
from esb.crypto.sealing import erased_marker, is_sealed, open_token, seal
from esb.errors import EsbError

#: roles whose tokens read personal values in clear through the API and SDK
PLAINTEXT_ROLES = frozenset({"reader", "admin"})


class NoDataSubject(EsbError):
    """An event carries personal fields but names no data subject to key them under."""


def personal_fields(stream: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(stream.get("personal_fields") or ())


def subject_of(stream: Mapping[str, Any], attrs: Mapping[str, str], doc: Any) -> str | None:
    path = stream.get("subject_field")
    if path:
        value = fields.get(doc, fields.normalise(path))
        return None if value is fields.MISSING or value is None else str(value)
    return attrs.get("aggregateid") or None


def may_read_plaintext(roles: frozenset[str]) -> bool:
    return not roles.isdisjoint(PLAINTEXT_ROLES)


class PersonalData:
    def __init__(self, keys: SubjectKeyStore) -> None:
        self.keys = keys

    async def seal_event(self, tenant: str, stream: Mapping[str, Any],
                         attrs: Mapping[str, str], data: bytes) -> bytes:
        """The event data with every marked field that is present sealed under the subject's
        key; unchanged bytes when none is present."""
        doc = json.loads(data)
        present = [p for p in map(fields.normalise, personal_fields(stream))
                   if (v := fields.get(doc, p)) is not fields.MISSING and not is_sealed(v)]
        if not present:
            return data
        subject = subject_of(stream, attrs, doc)
        if subject is None:
            raise NoDataSubject(
                f"stream {stream['stream_name']!r} marks personal fields; the event must name "
                f"its data subject ({stream.get('subject_field') or 'aggregate_id'})")
        kid, dek = await self.keys.current(tenant, subject)
        for path in present:
            fields.put(doc, path, seal(dek, kid, attrs["id"], path, fields.get(doc, path)))
        return json.dumps(doc, separators=(",", ":")).encode()

    async def reveal(self, tenant: str, doc: Any) -> Any:
        """``doc`` with every sealed value opened, or shown as erased if its key is gone."""
        kids = {token["kid"] for token in fields.walk(doc, is_sealed)}
        if not kids:
            return doc
        keys = {kid: await self.keys.key(tenant, str(kid)) for kid in kids}

        def opened(token: dict[str, Any]) -> Any:
            dek = keys.get(token["kid"])
            return erased_marker(token) if dek is None else open_token(dek, token)

        return fields.transform(doc, is_sealed, opened)

    async def reveal_for(self, roles: frozenset[str], tenant: str, doc: Any) -> Any:
        """What a caller sees: clear values for plaintext roles, sealed tokens for others."""
        return await self.reveal(tenant, doc) if may_read_plaintext(roles) else doc
