"""Complex event processing: keyed pattern state machines over event time."""

from esb.processing.cep.engine import PatternEngine, build_machine
from esb.processing.cep.models import (
    AbsencePattern,
    AnomalyPattern,
    PatternDefinition,
    SequencePattern,
    ThresholdPattern,
    parse_pattern,
)

__all__ = [
    "AbsencePattern",
    "AnomalyPattern",
    "PatternDefinition",
    "PatternEngine",
    "SequencePattern",
    "ThresholdPattern",
    "build_machine",
    "parse_pattern",
]
