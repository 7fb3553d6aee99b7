"""Shared helpers: streams through the API, CloudEvents produced straight to lane topics."""

from __future__ import annotations

import json
from typing import Any

from esb import ids
from esb.processing.fields import from_epoch_ms
from tests.support import Api, ce_headers, consume_all, header, produce, unique


async def make_stream(api: Api, partitions: int = 2, name: str | None = None) -> dict[str, Any]:
    status, body = await api.post("/api/v1/streams", {
        "stream_name": name or unique("s"), "source_capability": "shop",
        "partitions": partitions})
    assert status == 201, body
    return body["stream"]  # type: ignore[no-any-return]


def event_record(tenant: str, event_type: str, payload: Any, *, time_ms: int,
                 key: str, event_id: str | None = None, **extensions: str
                 ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event_id = event_id or ids.event_id()
    headers = ce_headers(tenant, event_type, event_id=event_id, source="shop",
                         time=from_epoch_ms(time_ms), **extensions)
    return key.encode(), json.dumps(payload).encode(), headers


async def publish(bootstrap: str, stream: dict[str, Any],
                  records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    await produce(bootstrap, stream["topics"]["NORMAL"], records)


async def read_stream(bootstrap: str, stream: dict[str, Any], expect: int,
                      timeout: float = 30.0) -> list[Any]:
    return await consume_all(bootstrap, list(stream["topics"].values()), expect=expect,
                             timeout=timeout)


def record_id(record: Any) -> str:
    value = header(record, "ce_id")
    assert value is not None
    return value
