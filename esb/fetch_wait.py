"""The fetch wait of every consumer of the worker: short while records flow, long when quiet.

Tansu answers an empty long poll only when its wait is over, and re-checks for new records only
now and then during it, so a consumer's Fetch rate is set by ``fetch_max_wait_ms``: 20 ms made
every idle consumer send 50 Fetch requests a second, and an idle ``esb up`` spent more than half
a core on nothing (ADR 0021). The policy here keeps the minimum (``ESB_FETCH_MAX_WAIT_MS``) while
fetches return records and stretches the wait to a tenth of the time the consumer has been quiet,
up to ``ESB_FETCH_IDLE_MAX_WAIT_MS``: the extra delay of the first record after a pause is
bounded by a tenth of the pause (and by the maximum), and the first fetch that returns records
snaps the wait back to the minimum, so a loaded consumer never waits longer than before.

:func:`adapt` applies it to any ``AIOKafkaConsumer``: the kit's (``build_consumer``) and
Faust's own (``esb.app.bound_faust_fetch_wait``). aiokafka's ``Fetcher`` reads
``_fetch_max_wait_ms`` each time it builds a Fetch request, so changing it between requests is
enough; the hook is one wrapped method on the consumer's own fetcher, nothing global.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from esb.metrics import REGISTRY

log = logging.getLogger(__name__)

#: the wait grows to this fraction of the time the consumer has been quiet
QUIET_FRACTION = 0.1

FETCHES = Counter("esb_consumer_fetches_total",
                  "Fetch requests this worker's consumers sent, by whether records came back "
                  "(ADR 0021)", ["result"], registry=REGISTRY)
ADAPTED = Gauge("esb_consumer_fetch_wait_consumers",
                "Consumers of this worker whose fetch wait adapts to quiet partitions (ADR 0021)",
                registry=REGISTRY)
_RECORDS, _EMPTY = FETCHES.labels("records"), FETCHES.labels("empty")


def wait_ms(quiet_s: float, min_ms: int, max_ms: int) -> int:
    """The fetch wait after ``quiet_s`` seconds without records: ``min_ms`` while records flow,
    then a tenth of the quiet time, never above ``max_ms`` (``max_ms <= min_ms``: fixed)."""
    if max_ms <= min_ms:
        return min_ms
    return max(min_ms, min(max_ms, int(quiet_s * 1000 * QUIET_FRACTION)))


class QuietWait:
    """One consumer's fetch wait: call :meth:`after_fetch` with each Fetch's outcome."""

    def __init__(self, min_ms: int, max_ms: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_ms, self.max_ms = min_ms, max(min_ms, max_ms)
        self.clock = clock
        self.quiet_since = clock()

    def after_fetch(self, had_records: bool) -> int:
        """The wait for the next Fetch."""
        now = self.clock()
        if had_records:
            self.quiet_since = now
        return wait_ms(now - self.quiet_since, self.min_ms, self.max_ms)


def adapt(consumer: Any, min_ms: int, max_ms: int) -> Any:
    """Give ``consumer`` (an ``AIOKafkaConsumer``, not started) the quiet-partition wait between
    ``min_ms`` and ``max_ms``; returns it. Its fetcher only exists once it has started, so the
    hook goes in then (also with ``max_ms <= min_ms``, a fixed wait: the Fetch counter still
    counts). Without the aiokafka internals it needs, the wait stays at ``min_ms``."""
    consumer._fetch_max_wait_ms = min_ms
    start = consumer.start

    async def start_adapted() -> None:
        await start()
        _install(consumer._fetcher, QuietWait(min_ms, max_ms))

    consumer.start = start_adapted
    consumer._esb_fetch_wait = True
    return consumer


def _install(fetcher: Any, policy: QuietWait) -> None:
    fetch = getattr(fetcher, "_proc_fetch_request", None)
    if fetch is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        log.warning("aiokafka Fetcher without _proc_fetch_request/_fetch_max_wait_ms: "
                    "fetch wait stays fixed at %d ms", policy.min_ms)
        return

    async def fetch_adapted(*args: Any, **kwargs: Any) -> Any:
        had_records = await fetch(*args, **kwargs)
        (_RECORDS if had_records else _EMPTY).inc()
        fetcher._fetch_max_wait_ms = policy.after_fetch(bool(had_records))
        return had_records

    fetcher._proc_fetch_request = fetch_adapted
    fetcher._esb_fetch_wait = policy
    ADAPTED.inc()
    close = fetcher.close

    async def close_counted() -> None:
        ADAPTED.dec()
        fetcher.close = close
        await close()

    fetcher.close = close_counted
