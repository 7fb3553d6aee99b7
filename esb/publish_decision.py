"""The one publish decision: may this tenant publish this CloudEvent, and where does it go.

Both publish paths ask it: the HTTP views (``esb.publishing``) and the Kafka ingress router
(``esb.routing``). Size, attribute rules, the tenant, the priority lane, stream resolution,
payload checks (schema registry) and re-encoding are decided here and nowhere else, so an event
the API refuses is exactly an event the ingress dead-letters, for the same reason. A refusal is
always :class:`Rejected`: its ``reason`` is the dead-letter reason on the ingress, its status and
code are the HTTP answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from esb.crypto.personal import NoDataSubject, PersonalData
from esb.envelope import ID_ATTRIBUTES, MAX_ID_CHARS, is_json
from esb.errors import EsbError
from esb.streams import StreamDirectory
from esb.topics import Priority

REQUIRED = ("specversion", "id", "source", "type")

#: reason -> (HTTP status, problem code); the codes are the ones the API always answered with
_HTTP: dict[str, tuple[int, str]] = {
    "too_large": (413, "payload_too_large"),
    "undecodable": (400, "invalid_request"),
    "missing_attribute": (400, "invalid_request"),
    "invalid_attribute": (400, "invalid_request"),
    "tenant_mismatch": (403, "forbidden"),
    "no_route": (422, "validation_failed"),
    "unknown_stream": (404, "not_found"),
    "schema_violation": (422, "validation_failed"),
}


class Rejected(EsbError):
    """The event may not be published; ``reason`` is stable (dead-letter reason, metrics)."""

    def __init__(self, reason: str, error: str, tenant: str | None = None, **details: Any
                 ) -> None:
        super().__init__(error, **details)
        self.reason = reason
        self.tenant = tenant
        self.http_status, self.code = _HTTP.get(reason, (400, "invalid_request"))

    @property
    def dead_letter_reason(self) -> str:
        """The ingress keeps its historical reason for a missing stream: ``no_route``."""
        return "no_route" if self.reason == "unknown_stream" else self.reason

    @property
    def error(self) -> str:
        """The error with its JSON paths, for a dead letter's ``error`` header."""
        errors = self.details.get("errors")
        return f"{self.message}: {json.dumps(errors)}" if errors else self.message


#: a payload check (e.g. schema validation): (tenant, ce_* headers, data, content type) -> None,
#: raising an EsbError to reject. Checks decide cheaply from headers whether they apply.
PayloadCheck = Callable[[str, dict[str, str], bytes | None, str], None]

#: re-encodes JSON data for a stream that stores another serialization:
#: (tenant, event type, JSON bytes) -> (new bytes, new content type)
PayloadEncoder = Callable[[str, str, bytes], tuple[bytes, str]]


class PayloadChecks:
    """The checks and encoders features register (schema registry, …)."""

    def __init__(self) -> None:
        self.checks: list[PayloadCheck] = []
        self.encoders: dict[str, PayloadEncoder] = {}
        #: seals personal fields; set once the subject key store is open (docs/adr/0018)
        self.personal_data: PersonalData | None = None

    def register(self, check: PayloadCheck) -> None:
        self.checks.append(check)

    def register_encoder(self, serialization: str, encoder: PayloadEncoder) -> None:
        """E.g. ``"AVRO"``: JSON published to a stream whose default_serialization is AVRO is
        stored as Avro in the Confluent wire format."""
        self.encoders[serialization] = encoder

    def encoder_for(self, stream: dict[str, Any], content_type: str) -> PayloadEncoder | None:
        if not self.encoders or not is_json(content_type):
            return None
        return self.encoders.get(stream.get("default_serialization", "JSON"))

    def __call__(self, tenant: str, headers: dict[str, str], data: bytes | None,
                 content_type: str) -> None:
        for check in self.checks:
            check(tenant, headers, data, content_type)


@dataclass(slots=True)
class Decision:
    """Where an accepted event goes, and its data as it must be stored."""

    stream: dict[str, Any]
    topic: str
    priority: Priority
    codec: str | None
    data: bytes | None
    content_type: str
    #: the data was re-encoded (e.g. JSON → Avro), so the content type changed
    reencoded: bool
    #: the stream marks personal fields: ``PublishDecision.seal`` must encrypt them
    personal: bool = False


class PublishDecision:
    def __init__(self, directory: StreamDirectory, *, max_event_bytes: int,
                 payload_checks: PayloadChecks | None = None) -> None:
        self.directory = directory
        self.max_event_bytes = max_event_bytes
        self.payload_checks = payload_checks or PayloadChecks()

    def decide(self, attrs: Mapping[str, str], data: bytes | None, content_type: str, *,
               tenant: str) -> Decision:
        """Accept or refuse one event of ``tenant`` (the authenticated or topic-owning tenant,
        authoritative); raises :class:`Rejected`."""
        if data is not None and len(data) > self.max_event_bytes:
            raise Rejected("too_large", f"payload of {len(data)} bytes exceeds "
                                        f"{self.max_event_bytes}", tenant,
                           limit=self.max_event_bytes)
        missing = [name for name in REQUIRED if not attrs.get(name)]
        if missing:
            raise Rejected("missing_attribute",
                           f"missing CloudEvents attribute(s): {', '.join(missing)}", tenant)
        if attrs["specversion"] != "1.0":
            raise Rejected("invalid_attribute",
                           f"unsupported specversion {attrs['specversion']!r}", tenant)
        # attribute values were checked where they were decoded (envelope constructors,
        # the Kafka header codec): printable and bounded; ids must also be short
        for name in ID_ATTRIBUTES:
            text = attrs.get(name)
            if text is not None and len(text) > MAX_ID_CHARS:
                raise Rejected("invalid_attribute", f"attribute {name!r} is longer than "
                                                    f"{MAX_ID_CHARS} characters", tenant)
        claimed = attrs.get("tenantid")
        if claimed and claimed != tenant:
            raise Rejected("tenant_mismatch",
                           f"tenantid {claimed!r} is not the publishing tenant", tenant)
        try:
            priority = Priority.parse(attrs.get("priority"))
        except EsbError as exc:
            raise Rejected("invalid_attribute", exc.message, tenant) from None
        event_type, hint = attrs["type"], attrs.get("stream")
        stream = self.directory.resolve(tenant, hint, event_type, attrs.get("source"))
        if stream is None:
            if hint:
                raise Rejected("unknown_stream", f"tenant {tenant!r} has no stream {hint!r}",
                               tenant, stream_id=hint)
            raise Rejected(
                "no_route",
                f"no stream of tenant {tenant!r} accepts event type {event_type!r} from source "
                f"{attrs.get('source')!r}; pass stream_id or create a stream with a matching "
                "source_capability or event_types", tenant,
                errors=[{"path": "$.stream_id", "message": "no route"}])
        if self.payload_checks.checks:
            headers = {f"ce_{k}": v for k, v in attrs.items()}
            headers["content-type"] = content_type
            try:
                self.payload_checks(tenant, headers, data, content_type)
            except EsbError as exc:
                raise Rejected("schema_violation", exc.message, tenant, **exc.details) from None
        personal = data is not None and bool(stream.get("personal_fields"))  # ~free if unset
        if personal and not is_json(content_type):
            raise Rejected("invalid_attribute", "this stream marks personal fields, so its "
                                                "events must carry JSON data", tenant)
        reencoded = False
        encoder = self.payload_checks.encoder_for(stream, content_type)
        if encoder is not None and data is not None:
            try:
                data, content_type = encoder(tenant, event_type, data)
            except EsbError as exc:
                raise Rejected("schema_violation", exc.message, tenant, **exc.details) from None
            reencoded = True
        return Decision(stream, stream["topics"][priority.value], priority,
                        codec_of(stream), data, content_type, reencoded, personal)

    async def seal(self, decided: Decision, attrs: Mapping[str, str], tenant: str) -> bytes:
        """The one place personal fields are encrypted, for both publish paths (called only
        when ``decided.personal``): the data as it must be stored."""
        assert decided.data is not None
        personal_data = self.payload_checks.personal_data
        if personal_data is None:
            raise Rejected("invalid_attribute", "personal fields cannot be sealed: this "
                                                "replica has no subject key store", tenant)
        try:
            return await personal_data.seal_event(tenant, decided.stream, attrs,
                                                       decided.data)
        except NoDataSubject as exc:
            raise Rejected("missing_attribute", exc.message, tenant) from None
        except ValueError:
            raise Rejected("undecodable", "event data is not valid JSON", tenant) from None


def codec_of(stream: Mapping[str, Any]) -> str | None:
    name = stream["compression_type"]
    return None if name == "NONE" else name.lower()
