"""Pure stream-processing logic: windows, aggregations, operators, CEP, lineage, metrics.

Nothing here imports Faust or touches Kafka; the agents wire these onto topics and tables.
All state is plain JSON-able dicts, mutated in place, one value per (processor, partition), and
every operation is deterministic given the input order (see :mod:`esb.processing.progress` for
how replays after a restart are made idempotent).
"""

from esb.processing.aggregates import (
    AGGREGATION_FUNCTIONS,
    WindowedAggregateProcessor,
    canonical_json,
    group_key,
    make_accumulator,
)
from esb.processing.cep import (
    AbsencePattern,
    AnomalyPattern,
    PatternDefinition,
    PatternEngine,
    SequencePattern,
    ThresholdPattern,
    parse_pattern,
)
from esb.processing.custom import (
    ENTRY_POINT_GROUP,
    Processor,
    available_processors,
    load_processor,
    run_custom,
)
from esb.processing.fields import event_time_ms, expression_variables, field_value, to_epoch_ms
from esb.processing.join import StreamJoin
from esb.processing.lineage import (
    derive_attributes,
    derive_event_id,
    derived_event,
    pattern_output_event,
    window_output_event,
)
from esb.processing.metrics import ProcessorMetrics, merge_snapshots
from esb.processing.models import (
    ErrorHandlingStrategy,
    ProcessorType,
    StreamProcessorDefinition,
    WindowConfig,
    parse_processor_definition,
)
from esb.processing.operators import FilterOperator, MapOperator
from esb.processing.progress import StepResult
from esb.processing.windows import WindowedAggregator, WindowSpec, assign_windows

__all__ = [
    "AGGREGATION_FUNCTIONS",
    "ENTRY_POINT_GROUP",
    "AbsencePattern",
    "AnomalyPattern",
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
]
