"""Request and response bodies of the subscription and consumer-group API (seeds 000, 001, 002).

Field names are the seed's. Also accepted, so the seed's other spellings work:
``event_patterns`` for ``event_type_patterns``, ``consumer_group`` for ``consumer_group_id``,
``max_wait_time`` for ``max_wait_time_ms`` (seed 002), and ``AT_LEAST_ONCE``-style delivery modes
(the SDK's enum names). Validation that needs no I/O happens here (CEL compiles, URL scheme
and host); the address half of the SSRF check is :func:`esb.delivery.ssrf.SsrfGuard.check`,
which the create view awaits after parsing.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from esb.delivery.attributes import cloudevents_attribute_name
from esb.delivery.signing import WebhookSecret
from esb.delivery.ssrf import check_url_syntax
from esb.errors import EsbError, ExpressionError, ValidationFailed
from esb.expressions import compile_expression

__all__ = [
    "ConsumerGroupCreate",
    "ConsumerGroupCreated",
    "ConsumerLagResponse",
    "DeliveryMode",
    "FilterValue",
    "RetryPolicyConfig",
    "SubscriptionCreate",
    "SubscriptionCreated",
    "SubscriptionState",
    "SubscriptionStatusResponse",
    "parse_model",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


class DeliveryMode(StrEnum):
    """What a subscriber may observe; see :mod:`esb.delivery.dedup` for the exact guarantees."""

    AT_MOST_ONCE = "at_most_once"
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"

    @classmethod
    def _missing_(cls, value: object) -> DeliveryMode | None:
        # The seed's SDK sends enum names (EXACTLY_ONCE); some clients send "exactly-once".
        if isinstance(value, str):
            normalised = value.strip().lower().replace("-", "_")
            for member in cls:
                if member.value == normalised:
                    return member
        return None


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"  # the endpoint answered 410 Gone, or an operator disabled it
    CANCELLED = "cancelled"  # DELETE /subscriptions/{id}


_Scalar = str | int | float | bool
FilterValue = _Scalar | list[_Scalar]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)


class RetryPolicyConfig(_Body):
    """The seed's ``retry_policy``; ``max_retry_delay_ms`` (the backoff cap) is our addition."""

    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    retry_delay_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 1000
    exponential_backoff: bool = True
    max_retry_delay_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 600_000

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicyConfig:
        if self.max_retry_delay_ms < self.retry_delay_ms:
            raise ValueError("max_retry_delay_ms must be >= retry_delay_ms")
        return self


class SubscriptionCreate(_Body):
    """Body of ``POST /api/v1/subscriptions`` (seed 000 "Subscribe to Events")."""

    subscription_name: str
    stream_id: Annotated[str, Field(min_length=1, max_length=255)]
    consumer_group_id: Annotated[
        str,
        Field(min_length=1, max_length=255,
              validation_alias=AliasChoices("consumer_group_id", "consumer_group")),
    ]
    consumer_name: Annotated[str | None, Field(max_length=255)] = None
    event_type_patterns: Annotated[
        list[str],
        Field(min_length=1, max_length=100,
              validation_alias=AliasChoices("event_type_patterns", "event_patterns")),
    ] = Field(default_factory=lambda: ["*"])
    filter_criteria: dict[str, FilterValue] = Field(default_factory=dict)
    filter_expression: Annotated[str | None, Field(max_length=4096)] = None
    delivery_mode: DeliveryMode = DeliveryMode.AT_LEAST_ONCE
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 1
    max_wait_time_ms: Annotated[
        int,
        Field(ge=0, le=60_000,
              validation_alias=AliasChoices("max_wait_time_ms", "max_wait_time")),
    ] = 1000
    webhook_url: Annotated[str | None, Field(max_length=2048)] = None
    webhook_timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 5000
    webhook_secret: SecretStr | None = None  # "whsec_<base64>"; generated when absent
    dead_letter_enabled: bool = True
    retry_policy: RetryPolicyConfig = Field(default_factory=RetryPolicyConfig)

    @field_validator("subscription_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be 1-255 characters: letters, digits, '_', '.', '-'")
        return value

    @field_validator("event_type_patterns")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        cleaned = [p.strip() for p in patterns]
        for pattern in cleaned:
            if not pattern or any(ch.isspace() for ch in pattern) or len(pattern) > 255:
                raise ValueError(f"invalid event type pattern {pattern!r}")
        return list(dict.fromkeys(cleaned))  # drop duplicates, keep order

    @field_validator("filter_criteria")
    @classmethod
    def _criteria(cls, criteria: dict[str, FilterValue]) -> dict[str, FilterValue]:
        seen: dict[str, str] = {}
        for key, value in criteria.items():
            attribute = cloudevents_attribute_name(key)
            if not attribute:
                raise ValueError("filter attribute names must not be empty")
            if attribute in seen:
                raise ValueError(f"{key!r} and {seen[attribute]!r} name the same attribute")
            seen[attribute] = key
            if isinstance(value, list) and not value:
                raise ValueError(f"{key!r}: a list of accepted values must not be empty")
        return criteria

    @field_validator("filter_expression")
    @classmethod
    def _expression(cls, source: str | None) -> str | None:
        if source is None or not source.strip():
            return None
        try:
            compile_expression(source)
        except ExpressionError as exc:  # pydantic reports only ValueError as a field error
            raise ValueError(exc.message) from exc
        return source

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            check_url_syntax(url)
        except EsbError as exc:
            raise ValueError(exc.message) from exc
        return url

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            try:
                WebhookSecret.parse(secret.get_secret_value())
            except ValueError as exc:
                raise ValueError(str(exc)) from None  # never echo the secret
        return secret

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionCreate:
        if self.webhook_secret is not None and self.webhook_url is None:
            raise ValueError("webhook_secret given without webhook_url")
        return self


class SubscriptionCreated(BaseModel):
    """Answer to a create. ``webhook_secret`` is shown once, here, and never again."""

    subscription_id: str
    message: str = "Subscription created successfully"
    webhook_secret: str | None = None


class SubscriptionStatusResponse(BaseModel):
    """Body of ``GET /api/v1/subscriptions/{id}/status`` (the seed names the path, not the body)."""

    subscription_id: str
    subscription_name: str
    stream_id: str
    consumer_group_id: str
    status: SubscriptionState
    delivery_mode: DeliveryMode
    created_at: datetime
    last_delivery_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    disabled_reason: str | None = None
    consecutive_failures: NonNegativeInt = 0
    events_delivered: NonNegativeInt = 0
    events_failed: NonNegativeInt = 0
    events_dead_lettered: NonNegativeInt = 0
    events_filtered: NonNegativeInt = 0
    #: waiting in a retry tier (a failed attempt, or held by the circuit breaker or rate
    #: limit): owed to the receiver though no longer counted in ``lag``
    events_retrying: NonNegativeInt = 0
    lag: NonNegativeInt | None = None
    circuit_state: Literal["closed", "open", "half_open"] = "closed"


class ConsumerGroupCreate(_Body):
    """Body of ``POST /api/v1/consumer-groups`` (seed 001 "Consumer Management")."""

    group_name: str
    group_description: Annotated[str | None, Field(max_length=1024)] = None
    session_timeout_ms: Annotated[int, Field(ge=1000, le=3_600_000)] = 30_000
    heartbeat_interval_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 3000
    max_poll_interval_ms: Annotated[int, Field(ge=1000, le=86_400_000)] = 300_000
    partition_assignment_strategy: Literal["range", "roundrobin", "sticky"] = "range"
    rebalance_timeout_ms: Annotated[int, Field(ge=1000, le=3_600_000)] = 60_000

    @field_validator("group_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be 1-255 characters: letters, digits, '_', '.', '-'")
        return value

    @field_validator("partition_assignment_strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower().replace("_", "").replace("-", "")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> ConsumerGroupCreate:
        # Kafka's own rule: a member must heartbeat several times per session timeout.
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self


class ConsumerGroupCreated(BaseModel):
    group_id: str
    message: str = "Consumer group created successfully"


class ConsumerLagResponse(BaseModel):
    """Body of ``GET /api/v1/consumer-groups/{id}/lag``; ``total_lag`` is the sum of the parts."""

    group_id: str
    group_name: str
    total_lag: NonNegativeInt
    partition_lags: dict[str, NonNegativeInt]
    consumption_rate: Annotated[float, Field(ge=0)]  # events per second
    active_consumers: NonNegativeInt
    last_rebalance: datetime | None = None

    @field_validator("partition_lags", mode="before")
    @classmethod
    def _partition_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _sum(self) -> ConsumerLagResponse:
        for key in self.partition_lags:
            if not key.isdigit():
                raise ValueError(f"partition key {key!r} is not a partition number")
        if self.total_lag != sum(self.partition_lags.values()):
            raise ValueError("total_lag must equal the sum of partition_lags")
        return self

    @classmethod
    def build(cls, *, group_id: str, group_name: str, partition_lags: dict[int, int],
              consumption_rate: float, active_consumers: int,
              last_rebalance: datetime | None) -> ConsumerLagResponse:
        """Compute ``total_lag`` from the per-partition lags so the two cannot disagree."""
        return cls(
            group_id=group_id,
            group_name=group_name,
            total_lag=sum(partition_lags.values()),
            partition_lags={str(p): lag for p, lag in sorted(partition_lags.items())},
            consumption_rate=consumption_rate,
            active_consumers=active_consumers,
            last_rebalance=last_rebalance,
        )


_M = TypeVar("_M", bound=BaseModel)


def parse_model(model: type[_M], data: Any) -> _M:
    """Validate a request body, turning pydantic's errors into our 422 with ``{path, message}``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"path": ".".join(str(part) for part in err["loc"]) or "$", "message": err["msg"]}
            for err in exc.errors(include_input=False)
        ]
        raise ValidationFailed(f"invalid {model.__name__}", errors=errors) from None
