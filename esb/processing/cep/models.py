"""Pattern definitions for complex event processing (validated at creation).

Every pattern is keyed: events are correlated by ``key_field`` (an envelope attribute such as
``correlation_id`` or ``aggregate_id``, or ``payload.<path>``; see
:mod:`esb.processing.fields`). Events without a key are ignored by the pattern. ``condition``
(CEL, optional) further restricts the events the pattern considers, on top of its event types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from esb.processing.models import check_compiles, validation_failed


class _PatternBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern_id: str = Field(min_length=1, max_length=255)
    key_field: str = Field(default="correlation_id", min_length=1)
    condition: str | None = None
    grace_period_ms: int = Field(default=0, ge=0)
    max_event_ids: int = Field(default=100, ge=1, le=10_000)

    @field_validator("condition")
    @classmethod
    def _condition_compiles(cls, value: str | None) -> str | None:
        return None if value is None else check_compiles(value)


class SequencePattern(_PatternBase):
    """``event_types[0]`` then ``[1]`` … with ``last.time - first.time <= within_ms``."""

    kind: Literal["sequence"]
    event_types: list[Annotated[str, Field(min_length=1)]] = Field(min_length=2)
    within_ms: int = Field(gt=0)
    max_partial_matches: int = Field(default=1000, ge=1)


class ThresholdPattern(_PatternBase):
    """``min_count`` events of ``event_type`` whose times span at most ``within_ms``."""

    kind: Literal["threshold"]
    event_type: str = Field(min_length=1)
    min_count: int = Field(ge=1)
    within_ms: int = Field(gt=0)


class AbsencePattern(_PatternBase):
    """``trigger_event_type`` not followed by ``expected_event_type`` within ``within_ms``."""

    kind: Literal["absence"]
    trigger_event_type: str = Field(min_length=1)
    expected_event_type: str = Field(min_length=1)
    within_ms: int = Field(gt=0)


class AnomalyPattern(_PatternBase):
    """Events per ``bucket_ms`` bucket compared with recent buckets (z-score or EWMA)."""

    kind: Literal["anomaly"]
    event_type: str | None = None
    bucket_ms: int = Field(gt=0)
    method: Literal["zscore", "ewma"] = "zscore"
    history_buckets: int = Field(default=10, ge=2, le=10_000)
    min_history: int | None = Field(default=None, ge=1)
    threshold: float = Field(default=3.0, gt=0)
    alpha: float = Field(default=0.3, gt=0, le=1)

    @model_validator(mode="after")
    def _history_fits(self) -> AnomalyPattern:
        if self.min_history is not None and self.min_history > self.history_buckets \
                and self.method == "zscore":
            raise ValueError("min_history must not exceed history_buckets for zscore")
        return self

    @property
    def required_history(self) -> int:
        return self.min_history if self.min_history is not None else self.history_buckets


PatternDefinition = Annotated[
    SequencePattern | ThresholdPattern | AbsencePattern | AnomalyPattern,
    Field(discriminator="kind"),
]

_PATTERN_ADAPTER: TypeAdapter[Any] = TypeAdapter(PatternDefinition)


def parse_pattern(body: Any) -> SequencePattern | ThresholdPattern | AbsencePattern | \
        AnomalyPattern:
    """Validate a pattern body; raises ValidationFailed (422) naming each bad field."""
    try:
        return _PATTERN_ADAPTER.validate_python(body)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise validation_failed(exc, "invalid pattern definition") from None
