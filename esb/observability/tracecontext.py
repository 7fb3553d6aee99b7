"""W3C Trace Context values as the CloudEvents distributed-tracing extension carries them.

Pure checks, no OpenTelemetry import: the envelope codec calls them for the ``traceparent`` and
``tracestate`` attributes, so a hostile value is refused with a clear reason (HTTP 400, or a dead
letter on the Kafka ingress) instead of travelling on to every subscriber.
"""

from __future__ import annotations

import re

__all__ = ["TRACE_ATTRIBUTES", "check_trace_attribute", "trace_id_of"]

TRACE_ATTRIBUTES = frozenset({"traceparent", "tracestate"})

# version-traceid-parentid-flags; version ff is invalid, ids must not be all zeros
_TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}"
                          r"-[0-9a-f]{2}(-[\x21-\x7e]*)?$")
# list-member = key "=" value; keys lowercase (optionally tenant@system), values printable ASCII
_TRACESTATE_MEMBER = re.compile(r"^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]"
                                r"{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32


def check_trace_attribute(name: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``name`` (traceparent/tracestate), or None if it is."""
    if name == "traceparent":
        if _TRACEPARENT.match(value) is None or (value.startswith("00") and len(value) != 55):
            return "traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
        return None
    if len(value) > MAX_TRACESTATE_CHARS:
        return f"tracestate is longer than {MAX_TRACESTATE_CHARS} characters"
    members = [m.strip() for m in value.split(",") if m.strip()]
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return f"tracestate has more than {MAX_TRACESTATE_MEMBERS} members"
    if any(_TRACESTATE_MEMBER.match(m) is None for m in members):
        return "tracestate must be W3C key=value members separated by commas"
    return None


def trace_id_of(traceparent: str) -> str | None:
    """The trace id of a valid traceparent, else None."""
    if check_trace_attribute("traceparent", traceparent) is not None:
        return None
    return traceparent.split("-")[1]
