"""The public API of esb.processing is explicit and importable without Faust."""

from __future__ import annotations

import subprocess
import sys

import esb.processing

EXPECTED = {
    "AGGREGATION_FUNCTIONS",
    "AbsencePattern",
    "AnomalyPattern",
    "ENTRY_POINT_GROUP",
    "ErrorHandlingStrategy",
    "FilterOperator",
    "MapOperator",
    "PatternDefinition",
    "PatternEngine",
    "Processor",
    "ProcessorMetrics",
    "ProcessorType",
    "SequencePattern",
    "StepResult",
    "StreamJoin",
    "StreamProcessorDefinition",
    "ThresholdPattern",
    "WindowConfig",
    "WindowSpec",
    "WindowedAggregateProcessor",
    "WindowedAggregator",
    "assign_windows",
    "available_processors",
    "canonical_json",
    "derive_attributes",
    "derive_event_id",
    "derived_event",
    "event_time_ms",
    "expression_variables",
    "field_value",
    "group_key",
    "load_processor",
    "make_accumulator",
    "merge_snapshots",
    "parse_pattern",
    "parse_processor_definition",
    "pattern_output_event",
    "run_custom",
    "to_epoch_ms",
    "window_output_event",
}


def test_public_api_is_locked() -> None:
    """Changing the public API must be deliberate: update EXPECTED alongside it."""
    names = esb.processing.__all__
    assert len(set(names)) == len(names)
    assert set(names) == EXPECTED
    assert all(hasattr(esb.processing, name) for name in names)


def test_pure_package_does_not_import_faust() -> None:
    code = "import esb.processing, sys; print(any(m.split('.')[0] in ('faust', 'aiohttp', " \
           "'aiokafka') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
