"""Dead-letter records: the original bytes untouched, plus ``esb-dlq-*`` headers saying why.

A dead-lettered record keeps its key, value and original headers byte for byte, so a redrive
re-publishes exactly what the producer sent (same event id). The added headers name the reason,
stage, error, attempts, origin (topic/partition/offset), the first and last failure time, the tenant
(when known) and the destination a redrive should publish to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PREFIX = "esb-dlq-"
MAX_ERROR_CHARS = 2000

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    stage: str
    error: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    destination: str
    tenant: str | None = None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter_headers(original: Headers, failure: Failure, *, now: str | None = None
                        ) -> list[tuple[str, bytes]]:
    """Original headers (minus any previous esb-dlq-*) + fresh failure headers; attempts counts up."""
    previous = {k[len(PREFIX):]: v for k, v in original if k.startswith(PREFIX)}
    attempts = int(previous.get("attempts", b"0") or 0) + 1
    when = now or utc_now()
    first = previous.get("first-failure", when.encode()).decode()
    headers = [(k, v) for k, v in original if not k.startswith(PREFIX)]
    added = {
        "reason": failure.reason,
        "stage": failure.stage,
        "error": failure.error[:MAX_ERROR_CHARS],
        "attempts": str(attempts),
        "origin-topic": previous.get("origin-topic", failure.origin_topic.encode()).decode(),
        "origin-partition": previous.get(
            "origin-partition", str(failure.origin_partition).encode()).decode(),
        "origin-offset": previous.get("origin-offset", str(failure.origin_offset).encode()).decode(),
        "first-failure": first,
        "last-failure": when,
        "tenant": failure.tenant or "",
        "destination": failure.destination,
    }
    headers.extend((PREFIX + k, v.encode()) for k, v in added.items())
    return headers


def split_headers(headers: Headers) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """Separate the original headers from the dead-letter annotations."""
    original = [(k, v) for k, v in headers if not k.startswith(PREFIX)]
    info = {k[len(PREFIX):]: v.decode(errors="replace") for k, v in headers if k.startswith(PREFIX)}
    return original, info


async def send_to_dead_letters(producers: Any, dlq_topic: str, *, key: bytes | None,
                               value: bytes | None, headers: Headers, failure: Failure
                               ) -> Any:
    """Produce the untouched record with failure headers; returns the ack future."""
    return await producers.send(dlq_topic, value, key=key,
                                headers=dead_letter_headers(headers, failure))
