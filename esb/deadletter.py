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
    previous = {k[len(PREFIX):]: v.decode(errors="replace") for k, v in original
                if k.startswith(PREFIX) and v is not None}
    attempts = parse_count(previous.get("attempts")) + 1
    when = now or utc_now()
    headers = [(k, v) for k, v in original if not k.startswith(PREFIX) and v is not None]
    origin_known = parse_count(previous.get("origin-partition"), -1) >= 0 and parse_count(
        previous.get("origin-offset"), -1) >= 0 and bool(previous.get("origin-topic"))
    added = {
        "reason": failure.reason,
        "stage": failure.stage,
        "error": failure.error[:MAX_ERROR_CHARS],
        "attempts": str(attempts),
        "origin-topic": previous["origin-topic"] if origin_known else failure.origin_topic,
        "origin-partition": (previous["origin-partition"] if origin_known
                             else str(failure.origin_partition)),
        "origin-offset": (previous["origin-offset"] if origin_known
                          else str(failure.origin_offset)),
        "first-failure": time_or(previous.get("first-failure"), when),
        "last-failure": when,
        "tenant": failure.tenant or "",
        "destination": failure.destination,
    }
    headers.extend((PREFIX + k, v.encode()) for k, v in added.items())
    return headers


def parse_count(text: str | None, default: int = 0) -> int:
    """A counter from a header a producer may have forged: a small non-negative int or default."""
    if text and text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return default


def time_or(text: str | None, default: str) -> str:
    if not text:
        return default
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return text if parsed.tzinfo is not None else default


def split_headers(headers: Headers) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """Separate the original headers from the dead-letter annotations."""
    original = [(k, v) for k, v in headers if not k.startswith(PREFIX) and v is not None]
    info = {k[len(PREFIX):]: v.decode(errors="replace") for k, v in headers
            if k.startswith(PREFIX) and v is not None}
    return original, info


async def send_to_dead_letters(producers: Any, dlq_topic: str, *, key: bytes | None,
                               value: bytes | None, headers: Headers, failure: Failure
                               ) -> Any:
    """Produce the untouched record with failure headers; returns the ack future."""
    return await producers.send(dlq_topic, value, key=key,
                                headers=dead_letter_headers(headers, failure))
