"""Data shapes of the schema registry: enums, the seed's request/response bodies, stored versions.

The REST bodies follow seed 001 ("Enhanced Schema Registry") field for field; what the seed leaves
out (the legacy ``POST /api/v1/schemas`` body, Avro schemas) is added here with the same names.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SchemaType(StrEnum):
    JSON = "JSON"
    AVRO = "AVRO"


class CompatibilityLevel(StrEnum):
    """Confluent's levels; transitive ones check every earlier version, the rest only the latest."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def is_transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def directions(self) -> tuple[Direction, ...]:
        """Which reader/writer directions the level demands."""
        base = self.value.removesuffix("_TRANSITIVE")
        if base == "BACKWARD":
            return (Direction.BACKWARD,)
        if base == "FORWARD":
            return (Direction.FORWARD,)
        if base == "FULL":
            return (Direction.BACKWARD, Direction.FORWARD)
        return ()


class Direction(StrEnum):
    """BACKWARD: the new schema reads data written with the old one; FORWARD: the reverse."""

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"


class EvolutionStrategy(StrEnum):
    """COMPATIBLE enforces the level; BREAKING_CHANGE records an incompatible version on purpose;
    DEPRECATE enforces the level and marks every older version deprecated."""

    COMPATIBLE = "COMPATIBLE"
    BREAKING_CHANGE = "BREAKING_CHANGE"
    DEPRECATE = "DEPRECATE"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- business rules


class BusinessRule(_Model):
    """A CEL predicate over the payload: top-level fields as variables, all of it as ``payload``."""

    name: str = Field(min_length=1)
    description: str | None = None
    rule: str = Field(min_length=1)


class ValidationRules(_Model):
    business_rules: list[BusinessRule] = Field(default_factory=list)


# --------------------------------------------------------------------------- REST bodies


class SchemaRegistrationRequest(BaseModel):
    """``POST /api/v1/schemas`` (legacy): a named schema for an event type.

    Exactly one of ``json_schema`` (an object) or ``avro_schema`` (an Avro schema as JSON) is given.
    """

    model_config = ConfigDict(extra="forbid")

    schema_name: str = Field(min_length=1, max_length=255)
    schema_version: str = Field(default="1.0", min_length=1, max_length=64)
    event_type: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    json_schema: dict[str, Any] | None = None
    avro_schema: dict[str, Any] | list[Any] | str | None = None

    @model_validator(mode="after")
    def _exactly_one_schema(self) -> SchemaRegistrationRequest:
        if (self.json_schema is None) == (self.avro_schema is None):
            raise ValueError("give exactly one of json_schema or avro_schema")
        return self

    @property
    def schema_type(self) -> SchemaType:
        return SchemaType.JSON if self.json_schema is not None else SchemaType.AVRO

    @property
    def schema_definition(self) -> Any:
        return self.json_schema if self.json_schema is not None else self.avro_schema


class EnhancedSchemaRegistrationRequest(SchemaRegistrationRequest):
    """``POST /api/v1/schemas/enhanced`` as in seed 001.

    ``compatibility_level`` left out means "the subject's configured level" (default BACKWARD).
    """

    compatibility_level: CompatibilityLevel | None = None
    evolution_strategy: EvolutionStrategy = EvolutionStrategy.COMPATIBLE
    validation_rules: ValidationRules = Field(default_factory=ValidationRules)
    is_active: bool = True


class SchemaRegistrationResponse(_Model):
    schema_id: str
    message: str = "Enhanced schema registered successfully"
    subject: str | None = None
    version: int | None = None
    id: int | None = None  # the Confluent numeric id carried in the wire format


class FieldError(_Model):
    """One validation failure; ``rule`` is set when a business rule failed."""

    path: str
    message: str
    rule: str | None = None


class ValidationResult(_Model):
    """Response of ``POST /api/v1/schemas/{id}/validate``."""

    is_valid: bool
    validation_errors: list[FieldError] = Field(default_factory=list)
    schema_version: str | None = None
    validation_time_ms: float = 0.0


# --------------------------------------------------------------------------- compatibility


class CompatibilityIssue(_Model):
    """Why one schema cannot stand in for another.

    ``path`` is a JSON path into the data (``$.profile_data.email``) where known; Avro issues also
    carry Avro's own JSON pointer into the reader schema in ``schema_pointer``.
    """

    direction: Direction
    against_version: int | None = None
    path: str
    message: str
    kind: str
    schema_pointer: str | None = None


class CompatibilityResult(_Model):
    is_compatible: bool
    level: CompatibilityLevel
    checked_versions: list[int] = Field(default_factory=list)
    issues: list[CompatibilityIssue] = Field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """Confluent-style ``messages`` for the verbose compatibility answer."""
        return [
            f"{i.direction} vs version {i.against_version}: {i.path}: {i.message}"
            if i.against_version is not None
            else f"{i.direction}: {i.path}: {i.message}"
            for i in self.issues
        ]


class SchemaChange(_Model):
    """One structural difference between two versions (for evolution history)."""

    path: str
    kind: str
    message: str
    breaks: list[Direction] = Field(default_factory=list)


# --------------------------------------------------------------------------- stored state


class SchemaVersion(_Model):
    """One version of one subject, with the seed's enhanced metadata.

    ``id`` is the registry-wide numeric id (shared by identical schema text in one tenant, and the
    one the wire format carries); ``schema_id`` ("sch_N") names this subject-version for REST.
    """

    tenant_id: str
    subject: str
    version: int
    id: int
    schema_id: str
    schema_type: SchemaType
    schema_text: str
    schema_name: str
    schema_version: str
    event_type: str | None = None
    compatibility_level: CompatibilityLevel
    evolution_strategy: EvolutionStrategy = EvolutionStrategy.COMPATIBLE
    validation_rules: ValidationRules = Field(default_factory=ValidationRules)
    is_active: bool = True
    deprecated: bool = False
    deleted: bool = False
    breaking_change: bool = False
    compatibility: CompatibilityResult | None = None
    changes: list[SchemaChange] = Field(default_factory=list)
    created_at: datetime
    created_by: str | None = None


class EvolutionEntry(_Model):
    version: int
    schema_id: str
    schema_version: str
    compatibility_level: CompatibilityLevel
    evolution_strategy: EvolutionStrategy
    is_compatible: bool | None
    breaking_change: bool
    deprecated: bool
    deleted: bool
    is_active: bool
    issues: list[CompatibilityIssue] = Field(default_factory=list)
    changes: list[SchemaChange] = Field(default_factory=list)
    created_at: datetime
    created_by: str | None = None


class EvolutionHistory(_Model):
    """Response of ``GET /api/v1/schemas/evolution/{event_type}``."""

    event_type: str
    subject: str
    versions: list[EvolutionEntry] = Field(default_factory=list)
