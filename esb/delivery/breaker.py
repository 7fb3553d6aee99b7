"""Circuit breaker per (tenant, webhook endpoint): stop hammering a receiver that keeps failing.

The key is opaque here; the deliverer passes :func:`esb.delivery.endpoints.limit_scope`, so a
tenant's failures open only that tenant's circuit to the endpoint.

States (the classic Nygard breaker):

- ``closed``: requests flow; ``failure_threshold`` consecutive failures open the circuit.
  A success resets the count.
- ``open``: requests are refused (``Permit.retry_after_s`` says for how long) until
  ``cooldown_s`` has passed since it opened.
- ``half_open``: exactly one probe request is let through; its success closes the circuit, its
  failure opens it again for another cool-down. If the probe never reports (its worker died),
  its lease ends after ``cooldown_s`` and another probe is admitted.

Results that arrive while the circuit is open (requests sent before it opened) are ignored.
Refused deliveries are not failures of the event: the worker routes them to a retry tier.

Two implementations behind :class:`CircuitBreaker`: :class:`InMemoryCircuitBreaker` (one node)
and :class:`esb.delivery.breaker_redis.RedisCircuitBreaker` (shared by all replicas, one Lua
script per transition). Time comes from an injectable clock, so both run the same tests.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitState",
    "InMemoryCircuitBreaker",
    "Permit",
]

Clock = Callable[[], float]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cooldown_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s > 0")


@dataclass(frozen=True, slots=True)
class Permit:
    """Whether a request may go now; if not, when to ask again."""

    allowed: bool
    state: CircuitState
    retry_after_s: float = 0.0


class CircuitBreaker(abc.ABC):
    """Per-scope breaker; ``endpoint`` is :func:`esb.delivery.endpoints.limit_scope` (tenant + origin)."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock = time.time) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock

    @abc.abstractmethod
    async def acquire(self, endpoint: str) -> Permit:
        """Ask before sending. In half-open state a granted permit is the single probe."""

    @abc.abstractmethod
    async def record_success(self, endpoint: str) -> CircuitState:
        """Report a successful request; returns the state after it."""

    @abc.abstractmethod
    async def record_failure(self, endpoint: str) -> CircuitState:
        """Report a failed request (5xx, timeout, connection error); returns the new state."""

    @abc.abstractmethod
    async def state(self, endpoint: str) -> CircuitState:
        """The state as the next ``acquire`` would see it (open past cool-down = half-open)."""

    @abc.abstractmethod
    async def reset(self, endpoint: str) -> None:
        """Forget the endpoint's history (operator action, or tests)."""


@dataclass(slots=True)
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0


class InMemoryCircuitBreaker(CircuitBreaker):
    """Single-process breaker; each replica keeps its own view of each endpoint."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock = time.time) -> None:
        super().__init__(config, clock=clock)
        self._circuits: dict[str, _Circuit] = {}

    async def acquire(self, endpoint: str) -> Permit:
        circuit = self._circuits.get(endpoint)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return Permit(True, CircuitState.CLOSED)
        now = self._clock()
        cooldown = self.config.cooldown_s
        if circuit.state is CircuitState.OPEN:
            reopen_at = circuit.opened_at + cooldown
            if now < reopen_at:
                return Permit(False, CircuitState.OPEN, reopen_at - now)
            circuit.state = CircuitState.HALF_OPEN
        elif now < circuit.probe_until:  # half-open with a probe in flight
            return Permit(False, CircuitState.HALF_OPEN, circuit.probe_until - now)
        circuit.probe_until = now + cooldown
        return Permit(True, CircuitState.HALF_OPEN)

    async def record_success(self, endpoint: str) -> CircuitState:
        circuit = self._circuits.get(endpoint)
        if circuit is None:
            return CircuitState.CLOSED
        if circuit.state is CircuitState.OPEN:
            return circuit.state
        del self._circuits[endpoint]  # closed with no failures is the default: keep no entry
        return CircuitState.CLOSED

    async def record_failure(self, endpoint: str) -> CircuitState:
        circuit = self._circuits.setdefault(endpoint, _Circuit())
        if circuit.state is CircuitState.OPEN:
            return circuit.state
        circuit.failures += 1
        if circuit.state is CircuitState.HALF_OPEN or (
            circuit.failures >= self.config.failure_threshold
        ):
            circuit.state = CircuitState.OPEN
            circuit.opened_at = self._clock()
            circuit.probe_until = 0.0
        return circuit.state

    async def state(self, endpoint: str) -> CircuitState:
        circuit = self._circuits.get(endpoint)
        if circuit is None:
            return CircuitState.CLOSED
        if circuit.state is CircuitState.OPEN and (
            self._clock() >= circuit.opened_at + self.config.cooldown_s
        ):
            return CircuitState.HALF_OPEN
        return circuit.state

    async def reset(self, endpoint: str) -> None:
        self._circuits.pop(endpoint, None)
