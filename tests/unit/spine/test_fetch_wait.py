"""The quiet-partition fetch wait (ADR 0021), as a pure policy and as the hook on a fetcher.

- while fetches return records the wait is the minimum (load is never slowed down);
- while they return nothing it grows to a tenth of the quiet time, never above the maximum;
- the first fetch with records snaps it back; max <= min means a fixed wait (the old behaviour);
- :func:`esb.fetch_wait.adapt` installs the policy on the consumer's own fetcher at start, where
  aiokafka reads ``_fetch_max_wait_ms`` for every Fetch request it builds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from esb.fetch_wait import QuietWait, adapt, wait_ms


def test_the_wait_is_a_tenth_of_the_quiet_time_between_the_bounds() -> None:
    assert wait_ms(0.0, 20, 500) == 20
    assert wait_ms(0.1, 20, 500) == 20  # 10 ms < the minimum
    assert wait_ms(1.0, 20, 500) == 100
    assert wait_ms(3.0, 20, 500) == 300
    assert wait_ms(60.0, 20, 500) == 500
    assert wait_ms(60.0, 20, 20) == 20  # max <= min: fixed
    assert wait_ms(60.0, 50, 10) == 50


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_empty_fetches_stretch_the_wait_and_records_snap_it_back() -> None:
    clock = Clock()
    policy = QuietWait(20, 500, clock=clock)
    waits = []
    for _ in range(12):  # a quiet consumer: each empty fetch took the wait it was given
        wait = policy.after_fetch(False)
        waits.append(wait)
        clock.now += max(wait, 20) / 1000
    assert waits[0] == 20 and waits == sorted(waits)
    for _ in range(40):
        if policy.after_fetch(False) == 500:
            break
        clock.now += 0.5
    assert clock.now - 1000.0 < 6.0  # at the maximum about five seconds after the last record
    assert policy.after_fetch(True) == 20  # records: back to the minimum at once
    clock.now += 0.05
    assert policy.after_fetch(False) == 20  # a short gap between records keeps it there


def test_under_steady_load_the_wait_stays_at_the_minimum() -> None:
    clock = Clock()
    policy = QuietWait(20, 500, clock=clock)
    for i in range(1000):
        clock.now += 0.02
        assert policy.after_fetch(i % 5 == 0) == 20  # records every 100 ms


class FakeFetcher:
    """The two aiokafka ``Fetcher`` members the hook relies on."""

    def __init__(self, results: list[bool]) -> None:
        self._fetch_max_wait_ms = 1500
        self.results = results
        self.sent_waits: list[int] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        self.sent_waits.append(self._fetch_max_wait_ms)
        return self.results.pop(0)

    async def close(self) -> None:
        pass


class FakeConsumer:
    def __init__(self, fetcher: FakeFetcher) -> None:
        self._fetch_max_wait_ms = 1500
        self._fetcher: FakeFetcher | None = None
        self._pending = fetcher

    async def start(self) -> None:
        self._fetcher = self._pending  # like aiokafka: the fetcher exists once started


def test_adapt_hooks_the_fetcher_the_consumer_starts_with() -> None:
    fetcher = FakeFetcher([False] * 3 + [True, False])
    consumer = adapt(FakeConsumer(fetcher), 20, 500)
    assert consumer._fetch_max_wait_ms == 20  # what the Fetcher is built with

    async def scenario() -> list[int]:
        await consumer.start()
        assert consumer._fetcher is fetcher
        fetcher._fetch_max_wait_ms = 20
        policy = fetcher._esb_fetch_wait  # type: ignore[attr-defined]
        policy.quiet_since -= 30  # quiet for half a minute already
        for _ in range(5):
            await fetcher._proc_fetch_request(None, 0, None)
        return fetcher.sent_waits

    sent = asyncio.run(scenario())
    assert sent[:2] == [20, 500]  # after the first empty fetch: the idle maximum
    assert sent[4] == 20  # the fetch after one that returned records: the minimum again
    assert fetcher._fetch_max_wait_ms == 20


def test_an_idle_kit_loop_polls_less_often_unless_it_has_an_idle_hook() -> None:
    from esb.consumer_kit import IDLE_POLL_TIMEOUT_MS
    from tests.unit.spine.test_consumer_kit import MemoryConsumer, Stage

    class Hooked(Stage):
        async def on_idle(self) -> None:
            pass

    async def scenario(stage: Stage) -> list[int]:
        timeouts = []
        for _ in range(4):
            timeouts.append(stage._poll_timeout_ms())
            await stage.run_once()
        return timeouts

    plain = Stage(MemoryConsumer([b"a"]), {})
    assert asyncio.run(scenario(plain)) == [100, 100, 100, IDLE_POLL_TIMEOUT_MS]
    assert plain.handled == [b"a"]
    assert asyncio.run(scenario(Hooked(MemoryConsumer([]), {}))) == [100] * 4
