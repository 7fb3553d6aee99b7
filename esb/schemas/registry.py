"""The schema registry as a pure, deterministic state machine fed by a log of records.

Like Confluent Schema Registry's ``_schemas`` topic: registrations, deletions and config changes
are records on one single-partition topic, and every replica folds them with :meth:`apply` in log
order. Ids, versions and ``sch_N`` names are assigned at apply time from the state alone, and
records carry their own ``created_at``, so replicas that apply the same records in the same order
reach equal states (``==`` compares :meth:`snapshot`). A rejected record (incompatible, invalid,
unknown subject) raises and leaves the state unchanged, on every replica alike.

Because assignment depends on every earlier record, no record may be compacted away: key each
record by its unique ``record_id`` (:func:`record_key`), which makes compaction a no-op for this
topic. The writer learns the outcome by applying its own record when it reads it back.

Mapping and rules (documented choices):

* subject = ``event_type + "-value"`` (Confluent's TopicNameStrategy for record values);
* numeric ids are registry-wide and never reused; identical schema text (same type) within one
  tenant shares its id across subjects; a tenant never sees another tenant's subjects or ids;
* registering the same text with the same business rules under a subject returns the existing
  live version; different rules make a new version with the same id;
* ``compatibility_level`` on a registration becomes the subject's level (subject > tenant global >
  BACKWARD); checks skip soft-deleted versions and, for transitive levels, stop at the most recent
  accepted breaking change (a deliberate break starts a new lineage);
* BREAKING_CHANGE accepts an incompatible version and records it; DEPRECATE enforces the level like
  COMPATIBLE and marks every older version deprecated;
* versions continue from the highest stored (soft-deleted included); a permanent delete needs a
  soft delete first, and forgets the version (and its id once nothing refers to it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from esb.errors import Conflict, InvalidRequest, NotFound
from esb.ids import new_id
from esb.schemas.compatibility import check_compatibility
from esb.schemas.diff import diff_schemas
from esb.schemas.models import (
    CompatibilityIssue,
    CompatibilityLevel,
    CompatibilityResult,
    Direction,
    EnhancedSchemaRegistrationRequest,
    EvolutionEntry,
    EvolutionHistory,
    EvolutionStrategy,
    SchemaRegistrationRequest,
    SchemaType,
    SchemaVersion,
    ValidationRules,
)
from esb.schemas.parsing import canonical_schema_text, dumps_canonical
from esb.schemas.rules import compile_rules

DEFAULT_COMPATIBILITY = CompatibilityLevel.BACKWARD
SUBJECT_SUFFIX = "-value"


def subject_for_event_type(event_type: str) -> str:
    """Subject under which an event type's schemas live (TopicNameStrategy-like)."""
    return f"{event_type}{SUBJECT_SUFFIX}"


# --------------------------------------------------------------------------- records


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str = Field(default_factory=lambda: new_id("srr"))
    tenant_id: str = Field(min_length=1)


class SchemaRegistered(_Record):
    kind: Literal["schema-registered"] = "schema-registered"
    subject: str = Field(min_length=1)
    schema_type: SchemaType = SchemaType.JSON
    schema_text: str
    schema_name: str | None = None
    schema_version: str | None = None
    event_type: str | None = None
    compatibility_level: CompatibilityLevel | None = None
    evolution_strategy: EvolutionStrategy = EvolutionStrategy.COMPATIBLE
    validation_rules: ValidationRules = Field(default_factory=ValidationRules)
    is_active: bool = True
    created_at: datetime
    created_by: str | None = None


class SchemaDeleted(_Record):
    """Delete one version, or every version when ``version`` is None; ``permanent`` = hard."""

    kind: Literal["schema-deleted"] = "schema-deleted"
    subject: str = Field(min_length=1)
    version: int | None = None
    permanent: bool = False


class ConfigSet(_Record):
    """Set (or with None, clear) the level of a subject, or the tenant's global level."""

    kind: Literal["config-set"] = "config-set"
    subject: str | None = None
    compatibility_level: CompatibilityLevel | None = None


AnyRecord = SchemaRegistered | SchemaDeleted | ConfigSet
RegistryRecord = Annotated[
    SchemaRegistered | SchemaDeleted | ConfigSet, Field(discriminator="kind")
]
_RECORD_ADAPTER: TypeAdapter[AnyRecord] = TypeAdapter(RegistryRecord)


def parse_record(data: bytes | str | dict[str, Any]) -> AnyRecord:
    """A record from the topic (JSON bytes/text or a dict)."""
    try:
        if isinstance(data, dict):
            return _RECORD_ADAPTER.validate_python(data)
        return _RECORD_ADAPTER.validate_json(data)
    except ValueError as exc:
        raise InvalidRequest(f"not a schema-registry record: {exc}") from exc


def record_from_request(
    request: SchemaRegistrationRequest,
    tenant_id: str,
    created_at: datetime,
    created_by: str | None = None,
) -> SchemaRegistered:
    """The record to produce for a legacy or enhanced REST registration body."""
    extra: dict[str, Any] = {}
    if isinstance(request, EnhancedSchemaRegistrationRequest):
        extra = {
            "compatibility_level": request.compatibility_level,
            "evolution_strategy": request.evolution_strategy,
            "validation_rules": request.validation_rules,
            "is_active": request.is_active,
        }
    definition = request.schema_definition
    if isinstance(definition, str):
        with contextlib.suppress(json.JSONDecodeError):  # else a bare Avro name like ``string``
            definition = json.loads(definition)
    return SchemaRegistered(
        tenant_id=tenant_id,
        subject=subject_for_event_type(request.event_type),
        schema_type=request.schema_type,
        schema_text=dumps_canonical(definition),
        schema_name=request.schema_name,
        schema_version=request.schema_version,
        event_type=request.event_type,
        created_at=created_at,
        created_by=created_by,
        **extra,
    )


def record_key(record: AnyRecord) -> bytes:
    """Kafka key: unique per record, so log compaction never drops one (see module doc)."""
    return record.record_id.encode("utf-8")


def record_value(record: AnyRecord) -> bytes:
    return record.model_dump_json().encode("utf-8")


# --------------------------------------------------------------------------- state


VersionRef = int | Literal["latest"]


class SchemaRegistryState:
    """Registry state; mutate only through :meth:`apply`."""

    def __init__(self) -> None:
        self._subjects: dict[tuple[str, str], dict[int, SchemaVersion]] = {}
        self._subject_config: dict[tuple[str, str], CompatibilityLevel] = {}
        self._global_config: dict[str, CompatibilityLevel] = {}
        self._content_ids: dict[tuple[str, SchemaType, str], int] = {}
        self._by_schema_id: dict[str, tuple[str, str, int]] = {}
        self._last_id = 0
        self._last_seq = 0

    # ----------------------------------------------------------------- applying records

    def apply(
        self, record: AnyRecord
    ) -> SchemaVersion | list[int] | CompatibilityLevel:
        """Fold one record; returns the registered version, deleted versions or new level."""
        if isinstance(record, SchemaRegistered):
            return self._register(record)
        if isinstance(record, SchemaDeleted):
            return self._delete(record)
        return self._set_config(record)

    def _register(self, record: SchemaRegistered) -> SchemaVersion:
        tenant, subject = record.tenant_id, record.subject
        text = canonical_schema_text(record.schema_type, record.schema_text)
        compile_rules(record.validation_rules.business_rules)
        versions = self._subjects.get((tenant, subject), {})
        existing = self._find_live(versions, record.schema_type, text, record.validation_rules)
        if existing is not None:
            return existing

        level = record.compatibility_level or self.compatibility_level(tenant, subject)
        result = self._check(versions, record.schema_type, text, level)
        if not result.is_compatible and record.evolution_strategy is not (
            EvolutionStrategy.BREAKING_CHANGE
        ):
            raise Conflict(
                f"schema is incompatible with version(s) {result.checked_versions} of subject "
                f"'{subject}' at level {level}",
                subject=subject,
                compatibility_level=str(level),
                messages=result.messages,
                issues=[i.model_dump(mode="json") for i in result.issues],
            )

        # Everything checked: from here on the state changes.
        content_key = (tenant, record.schema_type, text)
        schema_num = self._content_ids.get(content_key)
        if schema_num is None:
            self._last_id += 1
            schema_num = self._last_id
            self._content_ids[content_key] = schema_num
        self._last_seq += 1
        version_number = max(versions, default=0) + 1
        latest = self._latest_live(versions)
        changes = (
            diff_schemas(record.schema_type, latest.schema_text, text)
            if latest is not None and latest.schema_type is record.schema_type
            else []
        )
        registered = SchemaVersion(
            tenant_id=tenant,
            subject=subject,
            version=version_number,
            id=schema_num,
            schema_id=f"sch_{self._last_seq}",
            schema_type=record.schema_type,
            schema_text=text,
            schema_name=record.schema_name or subject,
            schema_version=record.schema_version or f"{version_number}.0",
            event_type=record.event_type,
            compatibility_level=level,
            evolution_strategy=record.evolution_strategy,
            validation_rules=record.validation_rules,
            is_active=record.is_active,
            breaking_change=not result.is_compatible,
            compatibility=result if result.checked_versions else None,
            changes=changes,
            created_at=record.created_at,
            created_by=record.created_by,
        )
        if record.evolution_strategy is EvolutionStrategy.DEPRECATE:
            for number, old in versions.items():
                versions[number] = old.model_copy(update={"deprecated": True})
        versions[version_number] = registered
        self._subjects[(tenant, subject)] = versions
        self._by_schema_id[registered.schema_id] = (tenant, subject, version_number)
        if record.compatibility_level is not None:
            self._subject_config[(tenant, subject)] = record.compatibility_level
        return registered

    def _delete(self, record: SchemaDeleted) -> list[int]:
        tenant, subject = record.tenant_id, record.subject
        versions = self._subjects.get((tenant, subject))
        if not versions:
            raise NotFound(f"subject '{subject}' not found", subject=subject)
        if record.version is not None:
            if record.version not in versions:
                raise NotFound(f"version {record.version} of subject '{subject}' not found",
                               subject=subject, version=record.version)
            targets = [record.version]
        else:
            targets = sorted(versions)
        if record.permanent:
            live = [v for v in targets if not versions[v].deleted]
            if live:
                raise Conflict(
                    f"version(s) {live} of subject '{subject}' must be soft-deleted before a "
                    "permanent delete", subject=subject, versions=live)
            for number in targets:
                self._forget(versions.pop(number))
            if not versions:
                del self._subjects[(tenant, subject)]
                self._subject_config.pop((tenant, subject), None)
            return targets
        live = [v for v in targets if not versions[v].deleted]
        if not live:
            raise NotFound(f"no live version {targets} of subject '{subject}' to delete",
                           subject=subject)
        for number in live:
            versions[number] = versions[number].model_copy(update={"deleted": True})
        return live

    def _forget(self, gone: SchemaVersion) -> None:
        self._by_schema_id.pop(gone.schema_id, None)
        still_used = any(
            v.id == gone.id for v in self._all_versions(gone.tenant_id) if v is not gone
        )
        if not still_used:
            self._content_ids.pop((gone.tenant_id, gone.schema_type, gone.schema_text), None)

    def _set_config(self, record: ConfigSet) -> CompatibilityLevel:
        tenant, subject = record.tenant_id, record.subject
        if subject is None:
            if record.compatibility_level is None:
                self._global_config.pop(tenant, None)
            else:
                self._global_config[tenant] = record.compatibility_level
        elif record.compatibility_level is None:
            self._subject_config.pop((tenant, subject), None)
        else:
            self._subject_config[(tenant, subject)] = record.compatibility_level
        return self.compatibility_level(tenant, subject)

    # ----------------------------------------------------------------- compatibility

    def _check(
        self,
        versions: dict[int, SchemaVersion],
        schema_type: SchemaType,
        text: str,
        level: CompatibilityLevel,
        only: SchemaVersion | None = None,
    ) -> CompatibilityResult:
        lineage = [only] if only is not None else self._lineage(versions)
        if level is CompatibilityLevel.NONE or not lineage:
            return CompatibilityResult(is_compatible=True, level=level)
        mismatched = [v for v in lineage if v.schema_type is not schema_type]
        if mismatched:
            against = mismatched[-1]
            return CompatibilityResult(
                is_compatible=False, level=level, checked_versions=[v.version for v in lineage],
                issues=[CompatibilityIssue(
                    direction=direction, against_version=against.version, path="$",
                    kind="schema_type",
                    message=f"schema type changed from {against.schema_type} to {schema_type}")
                    for direction in (level.directions or (Direction.BACKWARD,))],
            )
        return check_compatibility(
            schema_type, text, [(v.version, v.schema_text) for v in lineage], level
        )

    @staticmethod
    def _lineage(versions: dict[int, SchemaVersion]) -> list[SchemaVersion]:
        """Live versions, oldest first, since (and including) the latest breaking change."""
        live = [versions[n] for n in sorted(versions) if not versions[n].deleted]
        for index in range(len(live) - 1, -1, -1):
            if live[index].breaking_change:
                return live[index:]
        return live

    def test_compatibility(
        self,
        tenant_id: str,
        subject: str,
        schema_type: SchemaType,
        schema: Any,
        level: CompatibilityLevel | None = None,
        version: VersionRef | None = None,
    ) -> CompatibilityResult:
        """Dry run of a registration (Confluent's ``POST /compatibility/...``); no state change.

        With ``version`` the check is against that one version only; otherwise as the level says.
        """
        text = canonical_schema_text(schema_type, schema)
        versions = self._subjects.get((tenant_id, subject), {})
        effective = level or self.compatibility_level(tenant_id, subject)
        only = self.get_version(tenant_id, subject, version) if version is not None else None
        return self._check(versions, schema_type, text, effective, only)

    # ----------------------------------------------------------------- lookups

    def compatibility_level(self, tenant_id: str, subject: str | None = None) -> CompatibilityLevel:
        """Effective level: subject's, else the tenant's global, else BACKWARD."""
        if subject is not None and (tenant_id, subject) in self._subject_config:
            return self._subject_config[(tenant_id, subject)]
        return self._global_config.get(tenant_id, DEFAULT_COMPATIBILITY)

    def configured_level(
        self, tenant_id: str, subject: str | None = None
    ) -> CompatibilityLevel | None:
        """The level set explicitly at that scope (None: inherited)."""
        if subject is None:
            return self._global_config.get(tenant_id)
        return self._subject_config.get((tenant_id, subject))

    def list_subjects(self, tenant_id: str, include_deleted: bool = False) -> list[str]:
        return sorted(
            subject for (tenant, subject), versions in self._subjects.items()
            if tenant == tenant_id
            and (include_deleted or any(not v.deleted for v in versions.values()))
        )

    def list_versions(
        self, tenant_id: str, subject: str, include_deleted: bool = False
    ) -> list[int]:
        versions = self._subject_versions(tenant_id, subject)
        numbers = [n for n in sorted(versions) if include_deleted or not versions[n].deleted]
        if not numbers:
            raise NotFound(f"subject '{subject}' not found", subject=subject)
        return numbers

    def get_version(
        self, tenant_id: str, subject: str, version: VersionRef, include_deleted: bool = False
    ) -> SchemaVersion:
        versions = self._subject_versions(tenant_id, subject)
        if version == "latest":
            found = self._latest_live(versions)
            if found is None and include_deleted and versions:
                found = versions[max(versions)]
        else:
            found = versions.get(int(version))
            if found is not None and found.deleted and not include_deleted:
                found = None
        if found is None:
            raise NotFound(f"version {version} of subject '{subject}' not found",
                           subject=subject, version=version)
        return found

    def latest(self, tenant_id: str, subject: str) -> SchemaVersion:
        return self.get_version(tenant_id, subject, "latest")

    def get_by_id(self, tenant_id: str, schema_num: int) -> SchemaVersion:
        """The schema with numeric ``id`` (soft-deleted ones too, so old records still decode)."""
        using = [v for v in self._all_versions(tenant_id) if v.id == schema_num]
        if not using:
            raise NotFound(f"schema id {schema_num} not found", id=schema_num)
        return min(using, key=lambda v: int(v.schema_id.removeprefix("sch_")))  # first registered

    def get_by_schema_id(self, tenant_id: str, schema_id: str) -> SchemaVersion:
        """The subject-version named ``sch_N`` (the seed's ``schema_id``)."""
        where = self._by_schema_id.get(schema_id)
        if where is None or where[0] != tenant_id:
            raise NotFound(f"schema '{schema_id}' not found", schema_id=schema_id)
        return self._subjects[(where[0], where[1])][where[2]]

    def versions_for_id(self, tenant_id: str, schema_num: int) -> list[tuple[str, int]]:
        """(subject, version) pairs using numeric ``id`` (``/schemas/ids/{id}/versions``)."""
        found = [(v.subject, v.version) for v in self._all_versions(tenant_id)
                 if v.id == schema_num and not v.deleted]
        if not found:
            raise NotFound(f"schema id {schema_num} not found", id=schema_num)
        return found

    def lookup(
        self, tenant_id: str, subject: str, schema_type: SchemaType, schema: Any,
        include_deleted: bool = False,
    ) -> SchemaVersion:
        """The latest version of ``subject`` whose schema text equals ``schema`` (canonically)."""
        text = canonical_schema_text(schema_type, schema)
        versions = self._subject_versions(tenant_id, subject)
        for number in sorted(versions, reverse=True):
            candidate = versions[number]
            if (candidate.schema_type is schema_type and candidate.schema_text == text
                    and (include_deleted or not candidate.deleted)):
                return candidate
        raise NotFound(f"schema not found under subject '{subject}'", subject=subject)

    def list_schemas(
        self, tenant_id: str, event_type: str | None = None, include_deleted: bool = False,
        active_only: bool = False,
    ) -> list[SchemaVersion]:
        return [
            v for v in self._all_versions(tenant_id)
            if (event_type is None or v.event_type == event_type)
            and (include_deleted or not v.deleted) and (not active_only or v.is_active)
        ]

    def evolution_history(self, tenant_id: str, event_type: str) -> EvolutionHistory:
        """Every version of the event type's subject with its verdict and what changed."""
        subject = subject_for_event_type(event_type)
        versions = self._subject_versions(tenant_id, subject)
        return EvolutionHistory(
            event_type=event_type,
            subject=subject,
            versions=[
                EvolutionEntry(
                    version=v.version, schema_id=v.schema_id, schema_version=v.schema_version,
                    compatibility_level=v.compatibility_level,
                    evolution_strategy=v.evolution_strategy,
                    is_compatible=v.compatibility.is_compatible if v.compatibility else None,
                    breaking_change=v.breaking_change, deprecated=v.deprecated,
                    deleted=v.deleted, is_active=v.is_active,
                    issues=v.compatibility.issues if v.compatibility else [],
                    changes=v.changes, created_at=v.created_at, created_by=v.created_by,
                )
                for _, v in sorted(versions.items())
            ],
        )

    # ----------------------------------------------------------------- equality

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of the whole state (for equality, debugging, persistence checks)."""
        return {
            "last_id": self._last_id,
            "last_seq": self._last_seq,
            "global_config": {t: str(level) for t, level in sorted(self._global_config.items())},
            "subject_config": {f"{t}/{s}": str(level)
                               for (t, s), level in sorted(self._subject_config.items())},
            "content_ids": {f"{t}/{k}/{text}": num
                            for (t, k, text), num in sorted(self._content_ids.items())},
            "subjects": {
                f"{t}/{s}": [versions[n].model_dump(mode="json") for n in sorted(versions)]
                for (t, s), versions in sorted(self._subjects.items())
            },
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchemaRegistryState):
            return NotImplemented
        return dumps_canonical(self.snapshot()) == dumps_canonical(other.snapshot())

    __hash__ = None  # type: ignore[assignment]

    # ----------------------------------------------------------------- helpers

    def _subject_versions(self, tenant_id: str, subject: str) -> dict[int, SchemaVersion]:
        versions = self._subjects.get((tenant_id, subject))
        if not versions:
            raise NotFound(f"subject '{subject}' not found", subject=subject)
        return versions

    def _all_versions(self, tenant_id: str) -> Iterator[SchemaVersion]:
        for (tenant, _subject), versions in sorted(self._subjects.items()):
            if tenant == tenant_id:
                for number in sorted(versions):
                    yield versions[number]

    @staticmethod
    def _latest_live(versions: dict[int, SchemaVersion]) -> SchemaVersion | None:
        for number in sorted(versions, reverse=True):
            if not versions[number].deleted:
                return versions[number]
        return None

    @staticmethod
    def _find_live(
        versions: dict[int, SchemaVersion], schema_type: SchemaType, text: str,
        rules: ValidationRules,
    ) -> SchemaVersion | None:
        for number in sorted(versions):
            candidate = versions[number]
            if (not candidate.deleted and candidate.schema_type is schema_type
                    and candidate.schema_text == text and candidate.validation_rules == rules):
                return candidate
        return None
