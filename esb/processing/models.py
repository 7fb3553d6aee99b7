"""The stream-processor definition from the seed's ``POST /api/v1/stream-processors`` body.

Everything that can be checked at creation is checked here, so a processor that was accepted
can start: expressions compile, window parameters fit the window type, AGGREGATE/WINDOW carry a
window, a CUSTOM processor names an installed plugin. ``processing_logic`` is validated by the
model for the processor type (unknown keys are rejected, which catches typos).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from esb.errors import ExpressionError, NotFound, ValidationFailed
from esb.expressions import compile_expression


class ProcessorType(StrEnum):
    FILTER = "FILTER"
    MAP = "MAP"
    AGGREGATE = "AGGREGATE"
    WINDOW = "WINDOW"
    JOIN = "JOIN"
    CUSTOM = "CUSTOM"


class ErrorHandlingStrategy(StrEnum):
    RETRY = "RETRY"
    SKIP = "SKIP"
    DEAD_LETTER = "DEAD_LETTER"
    STOP = "STOP"


def check_compiles(source: str) -> str:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ValueError(f"expression does not compile: {exc.message}") from None
    return source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowConfig(_Strict):
    window_type: Literal["tumbling", "hopping", "session"]
    window_size_ms: int | None = Field(default=None, gt=0)
    advance_ms: int | None = Field(default=None, gt=0)
    gap_ms: int | None = Field(default=None, gt=0)
    grace_period_ms: int = Field(default=0, ge=0)
    # An idle partition's stream time follows the wall clock after this long without input,
    # so its last windows close without later events; 0 = close on event time only.
    idle_timeout_ms: int = Field(default=2000, ge=0, le=86_400_000)

    @model_validator(mode="after")
    def _fits_window_type(self) -> WindowConfig:
        kind = self.window_type
        if kind in ("tumbling", "hopping") and self.window_size_ms is None:
            raise ValueError(f"{kind} windows need window_size_ms")
        if kind == "hopping":
            if self.advance_ms is None:
                raise ValueError("hopping windows need advance_ms")
            if self.window_size_ms is not None and self.advance_ms > self.window_size_ms:
                raise ValueError("advance_ms must not exceed window_size_ms")
        elif self.advance_ms is not None:
            raise ValueError("advance_ms applies only to hopping windows")
        if kind == "session":
            if self.gap_ms is None:
                raise ValueError("session windows need gap_ms")
            if self.window_size_ms is not None:
                raise ValueError("session windows take gap_ms, not window_size_ms")
        elif self.gap_ms is not None:
            raise ValueError("gap_ms applies only to session windows")
        return self


class StateStoreConfig(_Strict):
    store_type: Literal["rocksdb", "memory"] = "rocksdb"
    changelog_topic: str | None = Field(default=None, min_length=1, max_length=249)


class FilterLogic(_Strict):
    """All of ``filter_expression`` and ``additional_checks`` must hold for an event to pass."""

    kind: Literal["FILTER"] = Field(default="FILTER", exclude=True)
    filter_expression: str
    additional_checks: list[str] = Field(default_factory=list)

    @field_validator("filter_expression")
    @classmethod
    def _expression_compiles(cls, value: str) -> str:
        return check_compiles(value)

    @field_validator("additional_checks")
    @classmethod
    def _checks_compile(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            try:
                check_compiles(value)
            except ValueError as exc:
                raise ValueError(f"additional_checks[{index}]: {exc}") from None
        return values


class MapLogic(_Strict):
    """``map_expression`` evaluates to the new payload (a CEL map literal, usually)."""

    kind: Literal["MAP"] = Field(default="MAP", exclude=True)
    map_expression: str
    output_event_type: str | None = None

    @field_validator("map_expression")
    @classmethod
    def _expression_compiles(cls, value: str) -> str:
        return check_compiles(value)


class AggregateLogic(_Strict):
    kind: Literal["AGGREGATE"] = Field(default="AGGREGATE", exclude=True)
    aggregation_function: Literal["count", "sum", "avg", "min", "max", "distinct"]
    aggregation_field: str | None = Field(default=None, min_length=1)
    group_by: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    max_input_ids: int = Field(default=100, ge=0, le=10_000)

    @model_validator(mode="after")
    def _field_needed(self) -> AggregateLogic:
        if self.aggregation_function != "count" and self.aggregation_field is None:
            raise ValueError(f"{self.aggregation_function} needs aggregation_field")
        return self


class WindowLogic(_Strict):
    """WINDOW processors emit each window's events (ids and payloads), at most ``max_events``."""

    kind: Literal["WINDOW"] = Field(default="WINDOW", exclude=True)
    group_by: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    max_events: int = Field(default=100, ge=1, le=10_000)


class JoinLogic(_Strict):
    """Inner join of the source stream (left) with ``join_stream_id`` (right) on a key."""

    kind: Literal["JOIN"] = Field(default="JOIN", exclude=True)
    join_stream_id: str = Field(min_length=1)
    left_key: str = Field(min_length=1)
    right_key: str | None = Field(default=None, min_length=1)
    join_window_ms: int | None = Field(default=None, gt=0)
    grace_period_ms: int | None = Field(default=None, ge=0)


class CustomLogic(_Strict):
    kind: Literal["CUSTOM"] = Field(default="CUSTOM", exclude=True)
    entry_point: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("entry_point")
    @classmethod
    def _installed(cls, value: str) -> str:
        from esb.processing.custom import find_entry_point

        try:
            find_entry_point(value)
        except NotFound as exc:
            raise ValueError(exc.message) from None
        return value


ProcessingLogic = Annotated[
    FilterLogic | MapLogic | AggregateLogic | WindowLogic | JoinLogic | CustomLogic,
    Field(discriminator="kind"),
]

_WINDOWED = {ProcessorType.AGGREGATE, ProcessorType.WINDOW}


class StreamProcessorDefinition(_Strict):
    processor_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.\-]+$")
    processor_description: str | None = Field(default=None, max_length=2000)
    processor_type: ProcessorType
    source_stream_id: str = Field(min_length=1)
    target_stream_id: str = Field(min_length=1)
    processing_logic: ProcessingLogic
    window_config: WindowConfig | None = None
    state_store_config: StateStoreConfig = Field(default_factory=StateStoreConfig)
    parallelism: int = Field(default=1, ge=1, le=1024)
    error_handling_strategy: ErrorHandlingStrategy = ErrorHandlingStrategy.RETRY
    # True when producers already partition the source (and a JOIN's other stream, with the
    # same partition count) by the group/join key: skips the re-key stage (see repartition).
    co_partitioned: bool = False

    @model_validator(mode="before")
    @classmethod
    def _tag_logic(cls, data: Any) -> Any:
        """Tag processing_logic with the processor type so the right logic model validates it."""
        if isinstance(data, dict) and isinstance(data.get("processing_logic"), dict):
            kind = data.get("processor_type")
            if isinstance(kind, str) and kind in ProcessorType.__members__:
                data = {**data, "processing_logic": {**data["processing_logic"], "kind": kind}}
        return data

    @model_validator(mode="after")
    def _window_fits_type(self) -> StreamProcessorDefinition:
        kind = self.processor_type
        if kind in _WINDOWED and self.window_config is None:
            raise ValueError(f"{kind.value} processors need window_config")
        if kind not in _WINDOWED and kind != ProcessorType.JOIN and self.window_config:
            raise ValueError(f"window_config does not apply to {kind.value} processors")
        if kind == ProcessorType.JOIN:
            logic = self.processing_logic
            assert isinstance(logic, JoinLogic)
            if logic.join_window_ms is None and (
                self.window_config is None or self.window_config.window_size_ms is None
            ):
                raise ValueError("JOIN processors need processing_logic.join_window_ms "
                                 "or window_config.window_size_ms")
        return self

    @property
    def logic(self) -> Any:
        """The typed processing logic (FilterLogic, MapLogic, …)."""
        return self.processing_logic


def validation_failed(exc: ValidationError, message: str) -> ValidationFailed:
    """Pydantic errors as our 422 with ``{path, message}`` items (union tags dropped)."""
    errors = []
    pattern_tags = {"sequence", "threshold", "absence", "anomaly"}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in pattern_tags:  # a pattern union member: drop its tag
            loc = loc[1:]
        elif len(loc) > 1 and loc[0] == "processing_logic" and loc[1] in ProcessorType.__members__:
            loc = [loc[0], *loc[2:]]
        parts = loc
        text = error["msg"].removeprefix("Value error, ")
        errors.append({"path": ".".join(parts), "message": text})
    summary = "; ".join(f"{e['path'] or 'body'}: {e['message']}" for e in errors)
    return ValidationFailed(f"{message}: {summary}", errors=errors)


def parse_processor_definition(body: Any) -> StreamProcessorDefinition:
    """Validate a create body; raises ValidationFailed (422) naming each bad field."""
    try:
        return StreamProcessorDefinition.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc, "invalid stream processor definition") from None
