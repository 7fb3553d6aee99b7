"""Schema registry, pure layer: schemas, compatibility, validation, rules, wire format, state.

No Faust, Kafka or HTTP here: the registry is a state machine (:class:`SchemaRegistryState`)
folded from records, so the wiring layer only moves records and answers requests.
"""

from __future__ import annotations

from esb.schemas.compatibility import check_compatibility, pair_issues
from esb.schemas.diff import diff_schemas
from esb.schemas.models import (
    BusinessRule,
    CompatibilityIssue,
    CompatibilityLevel,
    CompatibilityResult,
    Direction,
    EnhancedSchemaRegistrationRequest,
    EvolutionEntry,
    EvolutionHistory,
    EvolutionStrategy,
    FieldError,
    SchemaChange,
    SchemaRegistrationRequest,
    SchemaRegistrationResponse,
    SchemaType,
    SchemaVersion,
    ValidationResult,
    ValidationRules,
)
from esb.schemas.parsing import canonical_schema_text
from esb.schemas.registry import (
    DEFAULT_COMPATIBILITY,
    ConfigSet,
    RegistryRecord,
    SchemaDeleted,
    SchemaRegistered,
    SchemaRegistryState,
    parse_record,
    record_from_request,
    record_key,
    record_value,
    subject_for_event_type,
)
from esb.schemas.rules import compile_rules, evaluate_rules
from esb.schemas.validation import validate_event, validate_payload
from esb.schemas.wire import decode, decode_avro, encode, encode_avro

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "BusinessRule",
    "CompatibilityIssue",
    "CompatibilityLevel",
    "CompatibilityResult",
    "ConfigSet",
    "Direction",
    "EnhancedSchemaRegistrationRequest",
    "EvolutionEntry",
    "EvolutionHistory",
    "EvolutionStrategy",
    "FieldError",
    "RegistryRecord",
    "SchemaChange",
    "SchemaDeleted",
    "SchemaRegistered",
    "SchemaRegistrationRequest",
    "SchemaRegistrationResponse",
    "SchemaRegistryState",
    "SchemaType",
    "SchemaVersion",
    "ValidationResult",
    "ValidationRules",
    "canonical_schema_text",
    "check_compatibility",
    "compile_rules",
    "decode",
    "decode_avro",
    "diff_schemas",
    "encode",
    "encode_avro",
    "evaluate_rules",
    "pair_issues",
    "parse_record",
    "record_from_request",
    "record_key",
    "record_value",
    "subject_for_event_type",
    "validate_event",
    "validate_payload",
]
