"""One delivery attempt: the gates (breaker, rate limit, dedup, SSRF) and the HTTP call.

Returns what happened without deciding what comes next: the worker feeds the result to
:func:`esb.delivery.retry.decide_next_step`. A *gated* attempt (circuit open, endpoint over its
rate, another replica holding the exactly-once lease) never reached the receiver, so it is not
counted against the retry budget; the worker parks it in a retry tier for ``wait_s``.

Breaker and rate limit are keyed per (tenant, endpoint) (:func:`esb.delivery.endpoints.limit_scope`),
so one tenant's failing or flooding receiver cannot gate another tenant's deliveries to the same URL.

Redis trouble: the breaker and rate limiter fail open (deliveries continue, per replica), the
exactly-once dedup store fails closed (nothing is sent that might be a duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from esb.delivery.breaker import CircuitBreaker, CircuitState
from esb.delivery.cloudevents_http import OutboundEvent, build_delivery_request
from esb.delivery.dedup import ClaimStatus, DedupStore
from esb.delivery.endpoints import limit_scope
from esb.delivery.http_client import WebhookClient
from esb.delivery.ratelimit import RateLimiter
from esb.delivery.retry import AttemptResult, Outcome, classify_exception, classify_status
from esb.delivery.signing import SigningKeys, batch_webhook_id
from esb.delivery.ssrf import SsrfGuard
from esb.errors import StorageUnavailable

log = logging.getLogger(__name__)

__all__ = ["Attempted", "Deliverer"]


#: how soon an attempt refused while a half-open probe is in flight asks again
PROBE_RECHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class Attempted:
    result: AttemptResult
    webhook_id: str
    started_at: float
    duration_ms: float = 0.0
    status_code: int | None = None
    gated: bool = False  # not sent: circuit open / rate limited / leased elsewhere
    wait_s: float = 0.0  # for gated attempts: when to ask again
    duplicate: bool = False  # exactly-once: already delivered, nothing sent


class Deliverer:
    def __init__(self, client: WebhookClient, guard: SsrfGuard, breaker: CircuitBreaker,
                 limiter: RateLimiter, dedup: DedupStore, *,
                 max_inline_rate_wait_s: float = 1.0) -> None:
        self.client = client
        self.guard = guard
        self.breaker = breaker
        self.limiter = limiter
        self.dedup = dedup
        self.max_inline_rate_wait_s = max_inline_rate_wait_s

    async def attempt(self, *, tenant: str, subscription_id: str, url: str, keys: SigningKeys,
                      events: Sequence[OutboundEvent], batched: bool, timeout_s: float,
                      exactly_once: bool) -> Attempted:
        """One gated attempt; ``tenant`` scopes the breaker and rate limit (isolation)."""
        now = time.time()
        webhook_id = batch_webhook_id([e.id for e in events])
        endpoint = limit_scope(tenant, url)
        permit_state = await self._acquire_breaker(endpoint)
        if permit_state is not None:
            return Attempted(AttemptResult(Outcome.RETRY, "circuit open"), webhook_id, now,
                             gated=True, wait_s=permit_state)
        wait = await self._acquire_rate(endpoint)
        if wait > self.max_inline_rate_wait_s:
            return Attempted(AttemptResult(Outcome.RETRY, "rate limited"), webhook_id, now,
                             gated=True, wait_s=wait)
        if wait > 0:
            await asyncio.sleep(wait)  # short waits are the rate limit itself
        token: str | None = None
        if exactly_once:
            try:
                claim = await self.dedup.claim(subscription_id, webhook_id,
                                               lease_s=max(30.0, 3 * timeout_s))
            except StorageUnavailable as exc:
                return Attempted(AttemptResult(Outcome.RETRY, f"dedup store: {exc}"), webhook_id,
                                 now, gated=True, wait_s=1.0)
            if claim.status is ClaimStatus.ALREADY_DELIVERED:
                return Attempted(AttemptResult(Outcome.SUCCESS, "already delivered"), webhook_id,
                                 now, duplicate=True)
            if claim.status is ClaimStatus.IN_FLIGHT:
                return Attempted(AttemptResult(Outcome.RETRY, "in flight elsewhere"), webhook_id,
                                 now, gated=True, wait_s=timeout_s)
            token = claim.token
        started = time.time()
        request = build_delivery_request(events, keys, batched=batched, now=started)
        status: int | None = None
        try:
            target = await self.guard.check(url)  # again: DNS answers change
            answer = await self.client.post(url, target, request, timeout_s)
            status = answer.status
            result = classify_status(answer.status, answer.headers, now=time.time())
        except Exception as exc:  # network, timeout, SSRF refusal: classified, never raised
            result = classify_exception(exc)
        duration_ms = (time.time() - started) * 1000
        await self._settle(endpoint, result, status, subscription_id, webhook_id, token)
        return Attempted(result, webhook_id, started, duration_ms, status)

    async def _acquire_breaker(self, endpoint: str) -> float | None:
        try:
            permit = await self.breaker.acquire(endpoint)
        except StorageUnavailable as exc:
            log.warning("circuit breaker unavailable (%s); delivering anyway", exc)
            return None
        if permit.allowed:
            return None
        if permit.state is CircuitState.HALF_OPEN:
            # another attempt is the probe: its answer (seconds away) closes or reopens the
            # circuit. Waiting out its whole lease (a full cool-down) held this event back for
            # another 30 s after the endpoint had recovered (issue 10's "lost" event).
            return min(max(permit.retry_after_s, 0.05), PROBE_RECHECK_S)
        return max(permit.retry_after_s, 0.05)

    async def _acquire_rate(self, endpoint: str) -> float:
        try:
            decision = await self.limiter.acquire(endpoint)
        except StorageUnavailable as exc:
            log.warning("rate limiter unavailable (%s); delivering anyway", exc)
            return 0.0
        return 0.0 if decision.allowed else decision.retry_after_s

    async def _settle(self, endpoint: str, result: AttemptResult, status: int | None,
                      subscription_id: str, webhook_id: str, token: str | None) -> None:
        try:
            if result.outcome is Outcome.SUCCESS or (status is not None and status < 500
                                                     and status != 429):
                await self.breaker.record_success(endpoint)
            else:
                await self.breaker.record_failure(endpoint)
        except StorageUnavailable as exc:
            log.warning("circuit breaker unavailable (%s)", exc)
        if token is None:
            return
        try:
            if result.outcome is Outcome.SUCCESS:
                await self.dedup.mark_delivered(subscription_id, webhook_id)
            else:
                await self.dedup.release(subscription_id, webhook_id, token)
        except StorageUnavailable as exc:  # lease expires by itself; a duplicate stays recognisable
            log.warning("dedup store unavailable after delivery (%s)", exc)

    async def circuit_state(self, url: str, tenant: str) -> CircuitState:
        """The breaker state ``tenant`` sees for ``url`` (each tenant has its own circuit)."""
        try:
            return await self.breaker.state(limit_scope(tenant, url))
        except StorageUnavailable:
            return CircuitState.CLOSED
