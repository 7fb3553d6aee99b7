"""When and whether to retry a webhook delivery, and the record of every attempt.

Outcome of one HTTP attempt (:func:`classify_status`, :func:`classify_exception`):

- 2xx: success.
- 410 Gone: the receiver says the endpoint is gone for good: disable the subscription (and
  dead-letter what could not be delivered, so it can be redriven once re-enabled).
- 429 and 503: retry, no sooner than ``Retry-After`` (delta-seconds or an HTTP date), capped.
- Everything else (1xx, 3xx, other 4xx, 5xx), timeouts and connection errors: retry.
  We follow the Standard Webhooks / Svix convention of retrying all non-2xx, because a 401/404
  is very often a receiver mid-deploy or mid-key-rotation, and giving up at once loses events.
  Redirects are not followed (that would bypass the SSRF guard), so 3xx retries too. Operators
  may name statuses that fail at once via ``permanent_statuses``.
- A URL the SSRF guard refuses fails at once; a host DNS cannot resolve is retried.

Timing (:class:`RetryPolicy`): exponential backoff with *full jitter* (AWS architecture blog,
"Exponential Backoff And Jitter"): delay = uniform(0, min(cap, base * 2**(n-1))) for retry n,
which spreads a burst of failures instead of retrying them in lock step. With
``exponential_backoff`` off the delay is the fixed ``retry_delay_ms``, as the subscriber asked.

Waiting (:class:`DelayTiers`): a worker never sleeps holding a partition. A record to retry is
sent to a retry topic with a fixed delay (tiers 1 s, 5 s, 30 s, 2 min, 10 min by default) and a
``due_at`` time; the tier's consumer pauses that partition until the head record's tier delay
has passed (records in one tier are in due order), then asks :meth:`DelayTiers.next_hop` again.
Rule: the largest tier <= remaining wait, so a record is never delivered early; a remaining
wait below the smallest tier rounds up to it (late by < 1 tier); nothing remaining = deliver.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from esb.errors import EsbError

if TYPE_CHECKING:
    from esb.delivery.models import RetryPolicyConfig

__all__ = [
    "DEFAULT_DELAY_TIERS_S",
    "AttemptLog",
    "AttemptResult",
    "DelayTiers",
    "DeliveryAttempt",
    "NextAction",
    "NextStep",
    "Outcome",
    "RetryPolicy",
    "classify_exception",
    "classify_status",
    "decide_next_step",
    "parse_retry_after",
]

DEFAULT_DELAY_TIERS_S: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)


class Outcome(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"  # transient: try again later
    FAIL = "fail"  # permanent for this event: dead-letter now
    DISABLE = "disable"  # permanent for the endpoint (410): disable the subscription


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    reason: str
    retry_after_s: float | None = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), else None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def classify_status(status: int, headers: Mapping[str, str] | None = None, *, now: float,
                    permanent_statuses: Iterable[int] = ()) -> AttemptResult:
    """Map an HTTP status (and ``Retry-After``) to an outcome; see the module docstring."""
    if 200 <= status < 300:
        return AttemptResult(Outcome.SUCCESS, f"HTTP {status}")
    if status == 410:
        return AttemptResult(Outcome.DISABLE, "HTTP 410 Gone: endpoint removed by receiver")
    if status in (429, 503):
        wait = parse_retry_after(_header(headers, "retry-after"), now)
        return AttemptResult(Outcome.RETRY, f"HTTP {status}", wait)
    if status in set(permanent_statuses):
        return AttemptResult(Outcome.FAIL, f"HTTP {status} (configured as permanent)")
    return AttemptResult(Outcome.RETRY, f"HTTP {status}")


def classify_exception(exc: BaseException) -> AttemptResult:
    """Timeouts and connection errors retry; our own errors follow their ``retriable`` flag."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, EsbError):  # e.g. UnsafeWebhookUrl (fail) or WebhookHostUnresolvable
        return AttemptResult(Outcome.RETRY if exc.retriable else Outcome.FAIL, reason)
    if isinstance(exc, TimeoutError):
        return AttemptResult(Outcome.RETRY, f"timeout ({reason})")
    # OSError/ConnectionError and HTTP-client errors alike: the network is presumed transient.
    return AttemptResult(Outcome.RETRY, reason)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A subscription's retry settings in seconds; build from the API body with from_config."""

    max_retries: int = 3
    base_delay_s: float = 1.0
    exponential_backoff: bool = True
    max_delay_s: float = 600.0
    max_retry_after_s: float = 3600.0  # we honour Retry-After, but not "come back next week"

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("invalid retry policy")

    @classmethod
    def from_config(cls, config: RetryPolicyConfig) -> RetryPolicy:
        return cls(
            max_retries=config.max_retries,
            base_delay_s=config.retry_delay_ms / 1000,
            exponential_backoff=config.exponential_backoff,
            max_delay_s=config.max_retry_delay_ms / 1000,
        )

    def backoff_ceiling(self, retry_number: int) -> float:
        """Upper bound of the delay before retry ``retry_number`` (1 = first retry)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        if not self.exponential_backoff:
            return self.base_delay_s
        exponent = min(retry_number - 1, 62)  # 2**62 * anything already exceeds any cap
        return min(self.max_delay_s, self.base_delay_s * (2**exponent))

    def next_delay(self, retry_number: int, *, retry_after_s: float | None = None,
                   rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number``: jittered backoff, >= Retry-After."""
        ceiling = self.backoff_ceiling(retry_number)
        delay = (rng or random).uniform(0.0, ceiling) if self.exponential_backoff else ceiling
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


class DelayTiers:
    """The fixed delays of the retry topics, and the hop rule that never delivers early."""

    __slots__ = ("tiers",)

    def __init__(self, tiers_s: Iterable[float] = DEFAULT_DELAY_TIERS_S) -> None:
        tiers = tuple(sorted(set(tiers_s)))
        if not tiers or tiers[0] <= 0:
            raise ValueError("delay tiers must be positive and at least one")
        self.tiers: tuple[float, ...] = tiers

    def choose(self, remaining_s: float) -> float | None:
        """The tier for a wait of ``remaining_s``; None means it is due now."""
        if remaining_s <= 0:
            return None
        index = bisect.bisect_right(self.tiers, remaining_s)
        return self.tiers[index - 1] if index else self.tiers[0]

    def next_hop(self, due_at: float, now: float) -> float | None:
        """The tier to forward a record due at ``due_at`` to, or None to deliver it now."""
        return self.choose(due_at - now)


class NextAction(StrEnum):
    DONE = "done"  # delivered: commit
    RETRY = "retry"  # publish to retry tier ``tier_s`` with ``due_at``; commit
    DEAD_LETTER = "dead_letter"  # retries exhausted or permanent failure: DLQ with the attempt log
    DROP = "drop"  # same, but the subscription has dead_letter_enabled = false
    DISABLE = "disable"  # disable the subscription; dead-letter (or drop) the events


@dataclass(frozen=True, slots=True)
class NextStep:
    action: NextAction
    reason: str
    due_at: float | None = None
    tier_s: float | None = None


def decide_next_step(result: AttemptResult, *, attempts_made: int, policy: RetryPolicy,
                     dead_letter_enabled: bool, now: float,
                     tiers: DelayTiers | None = None,
                     rng: random.Random | None = None) -> NextStep:
    """What to do after attempt number ``attempts_made`` (the first try is attempt 1)."""
    give_up = NextAction.DEAD_LETTER if dead_letter_enabled else NextAction.DROP
    if result.outcome is Outcome.SUCCESS:
        return NextStep(NextAction.DONE, result.reason)
    if result.outcome is Outcome.DISABLE:
        return NextStep(NextAction.DISABLE, result.reason)
    if result.outcome is Outcome.FAIL:
        return NextStep(give_up, result.reason)
    if attempts_made > policy.max_retries:
        return NextStep(give_up, f"{result.reason}; gave up after {attempts_made} attempts")
    delay = policy.next_delay(attempts_made, retry_after_s=result.retry_after_s, rng=rng)
    due_at = now + delay
    return NextStep(NextAction.RETRY, result.reason, due_at,
                    (tiers or DelayTiers()).next_hop(due_at, now))


_MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One HTTP attempt: when (unix s), how long, what came back."""

    attempt: int
    started_at: float
    duration_ms: float
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["outcome"] = self.outcome.value
        record["started_at"] = datetime.fromtimestamp(self.started_at, UTC).isoformat()
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> DeliveryAttempt:
        return cls(
            attempt=int(record["attempt"]),
            started_at=datetime.fromisoformat(record["started_at"]).timestamp(),
            duration_ms=float(record["duration_ms"]),
            outcome=Outcome(record["outcome"]),
            status_code=record.get("status_code"),
            error=record.get("error"),
        )


@dataclass(slots=True)
class AttemptLog:
    """Every attempt of one delivery, carried across retry hops and into the dead letter.

    It travels as a JSON header, so it keeps the first attempt and the most recent
    ``max_kept - 1`` (errors truncated) to stay small however many retries a policy allows.
    """

    attempts: list[DeliveryAttempt] = field(default_factory=list)
    max_kept: int = 20
    total: int = 0

    def record(self, *, started_at: float, duration_ms: float, result: AttemptResult,
               status_code: int | None = None) -> DeliveryAttempt:
        self.total += 1
        error = None if result.outcome is Outcome.SUCCESS else result.reason[:_MAX_ERROR_CHARS]
        attempt = DeliveryAttempt(self.total, started_at, duration_ms, result.outcome,
                                  status_code, error)
        self.attempts.append(attempt)
        if len(self.attempts) > self.max_kept:
            del self.attempts[1]  # keep the first attempt: it dates the failure
        return attempt

    @property
    def first_failure_at(self) -> float | None:
        return next((a.started_at for a in self.attempts if a.outcome is not Outcome.SUCCESS),
                    None)

    @property
    def last_failure_at(self) -> float | None:
        failed = [a.started_at for a in self.attempts if a.outcome is not Outcome.SUCCESS]
        return failed[-1] if failed else None

    def to_json(self) -> bytes:
        return json.dumps({"total": self.total,
                           "attempts": [a.to_dict() for a in self.attempts]},
                          separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str | None, *, max_kept: int = 20) -> AttemptLog:
        if not raw:
            return cls(max_kept=max_kept)
        data = json.loads(raw)
        attempts = [DeliveryAttempt.from_dict(a) for a in data["attempts"]]
        return cls(attempts, max_kept, int(data.get("total", len(attempts))))

    def __len__(self) -> int:
        return self.total
