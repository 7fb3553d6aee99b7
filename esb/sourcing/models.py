"""Request and response bodies of ``/api/v1/event-sourcing/{append,reconstruct}`` (seed 001).

The seed's fields are kept as written; additions are marked. ``parse`` turns a JSON body into a
model or raises :class:`~esb.errors.ValidationFailed` with one ``{path, message}`` per problem.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from esb import ids
from esb.errors import ValidationFailed
from esb.sourcing.append import AppendCommand, AppendDecision
from esb.sourcing.reconstruct import Reconstruction
from esb.sourcing.versions import ExpectedVersion

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
ExpectedVersionField = Annotated[StrictInt, Field(ge=0)] | Literal[
    "no_stream", "stream_exists", "any"] | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, body: Any) -> Self:
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            errors = [
                {"path": ".".join(str(part) for part in err["loc"]) or "$", "message": err["msg"]}
                for err in exc.errors()
            ]
            raise ValidationFailed(f"invalid {cls.__name__} body", errors=errors) from exc


class AppendRequest(_Body):
    aggregate_id: Identifier
    aggregate_type: Identifier
    event_type: Identifier
    event_data: dict[str, Any] = Field(default_factory=dict)
    expected_version: ExpectedVersionField = None
    correlation_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # additions: a client-chosen id makes retries idempotent; causation links a cause event
    event_id: Identifier | None = None
    causation_id: str | None = None
    tenant_id: str | None = None  # must match the caller's token; the view checks that
    user_id: str | None = None

    def expected(self) -> ExpectedVersion:
        return ExpectedVersion.parse(self.expected_version)

    def to_command(self, *, tenant_id: str, user_id: str | None = None,
                   event_id: str | None = None, timestamp: datetime | None = None,
                   ) -> AppendCommand:
        """The command for the aggregate's owner; id and time are fixed here, once."""
        return AppendCommand(
            event_id=self.event_id or event_id or ids.event_id(),
            aggregate_id=self.aggregate_id,
            aggregate_type=self.aggregate_type,
            event_type=self.event_type,
            data=self.event_data,
            timestamp=timestamp or datetime.now(UTC),
            expected_version=self.expected(),
            tenant_id=tenant_id,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            user_id=user_id or self.user_id,
            metadata=self.metadata,
        )


class AppendResponse(_Body):
    event_id: str
    message: str = "Event appended successfully"
    # additions
    aggregate_id: str
    version: int
    duplicate: bool = False

    @classmethod
    def from_decision(cls, decision: AppendDecision) -> AppendResponse:
        """Success body for an accepted or duplicate append (conflicts raise instead)."""
        decision.raise_for_conflict()
        duplicate = not decision.accepted
        return cls(
            event_id=decision.event_id,
            message="Event already appended" if duplicate else "Event appended successfully",
            aggregate_id=decision.state.aggregate_id,
            version=decision.version,
            duplicate=duplicate,
        )


class ReconstructRequest(_Body):
    aggregate_id: Identifier
    aggregate_type: Identifier
    update_snapshots: bool = False
    # additions: temporal queries (at most one)
    as_of_version: Annotated[StrictInt, Field(ge=0)] | None = None
    as_of_time: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_point_in_time(self) -> Self:
        if self.as_of_version is not None and self.as_of_time is not None:
            raise ValueError("give as_of_version or as_of_time, not both")
        return self


class ReconstructResponse(_Body):
    aggregate_id: str
    aggregate_type: str
    current_version: int
    state: dict[str, Any]
    last_event_timestamp: datetime | None
    # additions
    snapshot_version: int | None = None
    events_applied: int = 0

    @classmethod
    def from_reconstruction(cls, result: Reconstruction) -> ReconstructResponse:
        return cls(
            aggregate_id=result.aggregate_id,
            aggregate_type=result.aggregate_type,
            current_version=result.current_version,
            state=dict(result.state),
            last_event_timestamp=result.last_event_timestamp,
            snapshot_version=result.snapshot_version,
            events_applied=result.events_applied,
        )
