"""Expected-version forms for optimistic concurrency, modelled on KurrentDB (EventStoreDB).

Versions count events: the first event of an aggregate has version 1, so an aggregate that
does not exist yet ("no stream") is at version 0. The forms a writer may state:

* an exact ``int`` >= 0: the aggregate's current version must equal it (0 == no stream);
* ``"no_stream"``: the aggregate must not exist yet (current version 0);
* ``"stream_exists"``: the aggregate must have at least one event;
* ``"any"`` (or ``None``): no check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from esb.errors import ValidationFailed

NO_STREAM_VERSION = 0


class ExpectedVersionKind(StrEnum):
    EXACT = "exact"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class ExpectedVersion:
    """What the writer believes about the aggregate; ``version`` is set only for EXACT."""

    kind: ExpectedVersionKind
    version: int | None = None

    @classmethod
    def exact(cls, version: int) -> ExpectedVersion:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValidationFailed(
                "expected_version must be an integer >= 0",
                errors=[{"path": "expected_version", "message": "must be an integer >= 0"}],
            )
        return cls(ExpectedVersionKind.EXACT, version)

    @classmethod
    def parse(cls, value: Any) -> ExpectedVersion:
        """Read the request field: an int, one of the named forms, or ``None`` (= any)."""
        if value is None:
            return ANY
        if isinstance(value, ExpectedVersion):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls.exact(value)
        if isinstance(value, str):
            name = value.strip().lower()
            if name in _NAMED:
                return _NAMED[name]
        raise ValidationFailed(
            f"invalid expected_version {value!r}",
            errors=[{
                "path": "expected_version",
                "message": "must be an integer >= 0, 'no_stream', 'stream_exists' or 'any'",
            }],
        )

    def is_satisfied_by(self, current_version: int) -> bool:
        """Whether an aggregate at ``current_version`` (0 = absent) meets this expectation."""
        match self.kind:
            case ExpectedVersionKind.ANY:
                return True
            case ExpectedVersionKind.NO_STREAM:
                return current_version == NO_STREAM_VERSION
            case ExpectedVersionKind.STREAM_EXISTS:
                return current_version > NO_STREAM_VERSION
            case _:
                return current_version == self.version

    def to_wire(self) -> int | str:
        """The JSON form accepted by :meth:`parse` (round-trips)."""
        return self.version if self.kind is ExpectedVersionKind.EXACT else self.kind.value  # type: ignore[return-value]

    def __str__(self) -> str:
        return str(self.to_wire())


ANY = ExpectedVersion(ExpectedVersionKind.ANY)
NO_STREAM = ExpectedVersion(ExpectedVersionKind.NO_STREAM)
STREAM_EXISTS = ExpectedVersion(ExpectedVersionKind.STREAM_EXISTS)
_NAMED = {"any": ANY, "no_stream": NO_STREAM, "stream_exists": STREAM_EXISTS}
