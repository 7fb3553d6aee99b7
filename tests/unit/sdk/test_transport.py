"""Error mapping and retry rules, against a real in-process aiohttp server (no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from esb.sdk import EsbClient, RetryPolicy, errors
from esb.sdk.transport import base_url

FAST = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.01)


def problem(status: int, code: str, **extra: object) -> web.Response:
    return web.json_response({"type": "x", "title": code, "status": status, "code": code,
                              "detail": f"{code} happened", **extra}, status=status,
                             content_type="application/problem+json")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request], dict[str, list[web.Response]]]]:
    seen: list[web.Request] = []
    script: dict[str, list[web.Response]] = {}

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        queue = script.get(request.path, [])
        return queue.pop(0) if queue else web.json_response({"ok": True, "streams": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen, script
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "invalid_request", errors.InvalidRequest), (401, "unauthenticated", errors.Unauthenticated),
    (403, "forbidden", errors.Forbidden), (404, "not_found", errors.NotFound),
    (409, "conflict", errors.Conflict), (409, "already_exists", errors.AlreadyExists),
    (409, "version_conflict", errors.VersionConflict),
    (413, "payload_too_large", errors.PayloadTooLarge),
    (422, "validation_failed", errors.ValidationFailed), (429, "rate_limited", errors.RateLimited),
    (503, "broker_unavailable", errors.Unavailable), (418, "teapot", errors.EsbApiError)])
def test_problem_codes_map_to_typed_errors(status: int, code: str, cls: type) -> None:
    err = errors.from_response(status, {"code": code, "detail": "d", "current_version": 3,
                                        "errors": [{"path": "a", "message": "m"}],
                                        "retry_after": 2})
    assert type(err) is cls and err.status == status and err.code == code
    if cls is errors.VersionConflict:
        assert err.current_version == 3
    if cls is errors.ValidationFailed:
        assert err.errors == [{"path": "a", "message": "m"}]
    if cls is errors.RateLimited:
        assert err.retry_after == 2.0


def test_url_accepts_api_suffix_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert base_url("http://h:1/api/v1/") == "http://h:1"
    monkeypatch.setenv("ESB_URL", "http://e:2")
    assert base_url(None) == "http://e:2"


async def test_429_and_503_are_retried_for_publishes(server) -> None:
    url, seen, script = server
    script["/api/v1/events"] = [problem(429, "rate_limited", retry_after=0.01),
                                       problem(503, "broker_unavailable")]
    async with EsbClient(url, "tok", retry=FAST) as esb:
        assert await esb.publish(event_type="a.b", source_capability="s") == {
            "ok": True, "streams": []}
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys.pop().startswith("evt_")
    assert seen[0].headers["Authorization"] == "Bearer tok"


async def test_503_is_not_retried_for_unkeyed_writes_and_gives_up_after_attempts(server) -> None:
    url, seen, script = server
    script["/api/v1/streams"] = [problem(503, "storage_unavailable") for _ in range(1)]
    script["/api/v1/streams/s"] = [problem(503, "storage_unavailable") for _ in range(5)]
    async with EsbClient(url, "tok", retry=FAST) as esb:
        with pytest.raises(errors.Unavailable):
            await esb.create_stream(stream_name="s")
        assert len(seen) == 1
        with pytest.raises(errors.Unavailable):
            await esb.get_stream("s")  # a read: retried, then the last error is raised
    assert len(seen) == 1 + FAST.attempts


async def test_connection_refused_is_unavailable() -> None:
    async with EsbClient("http://127.0.0.1:9", "tok", retry=FAST) as esb:
        with pytest.raises(errors.Unavailable):
            await esb.list_streams()


def test_backoff_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base_s=1, cap_s=4)
    assert all(0 <= policy.delay(n) <= 4 for n in range(10) for _ in range(20))
    assert policy.delay(0, retry_after=2.5) == 2.5
