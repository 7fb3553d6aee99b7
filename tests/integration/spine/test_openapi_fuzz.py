"""Fuzz the live worker from its own OpenAPI document (schemathesis): no request may get a 5xx.

One test per operation of the route table (so a failing operation is named, and can be marked
``xfail(strict=True)`` on its own), positive and negative data mixed, bounded by
``MAX_EXAMPLES`` per operation; then a short stateful run over the document's links (create a
stream, read it back …); finally ``/health`` must still answer 200. Every 5xx is collected with
its request (as curl) and the worker log's new lines, so the failure message is the bug report.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from esb import api_spec
from tests.support import WorkerGroup, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

MAX_EXAMPLES = 12  # per operation; 82 operations ≈ 1000 requests
REQUEST_TIMEOUT_S = 15.0

#: operation id -> why it still answers 5xx (strict: the mark fails once the bug is fixed).
XFAIL: dict[str, str] = {}

#: Requests that once answered 5xx, replayed before fuzzing (deterministic regressions).
REGRESSIONS: dict[str, list[dict[str, Any]]] = {
    "create_read_model": [{"name": "nul", "event_types": ["a\u0000b"]}],
    "query_events": [{"payload_contains": {"k": "a\u0000b"}}],
}


class Live:
    """The shared worker, a fuzzing tenant's token and the document the worker serves."""

    def __init__(self, group: WorkerGroup, port: int) -> None:
        self.group, self.port = group, port
        self.base = group.url(port)
        self.headers = {"Authorization": f"Bearer {group.token(unique('fz'))}"}
        answer = requests.get(self.base + api_spec.OPENAPI_PATH, headers=self.headers, timeout=10)
        answer.raise_for_status()
        self.schema = schemathesis.openapi.from_dict(answer.json())
        self.log_mark = len(group.log(port))

    def new_log(self) -> str:
        """Worker log lines written since the last call (tracebacks of the 5xx just seen)."""
        text = self.group.log(self.port)
        out, self.log_mark = text[self.log_mark:], len(text)
        return out


@pytest.fixture(scope="module")
def live(bus: tuple[WorkerGroup, int]) -> Live:
    return Live(*bus)


def _server_errors(live: Live, operation: Any, strategy: st.SearchStrategy[Any],
                   max_examples: int) -> list[str]:
    found: list[str] = []
    session = requests.Session()

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=live.base, session=session, headers=live.headers,
                                   checks=[not_a_server_error], timeout=REQUEST_TIMEOUT_S)
        except Exception as exc:  # a failed check: keep going, report everything at the end
            found.append(f"{type(exc).__name__}: {str(exc)[:1500]}\n"
                         f"request: {case.as_curl_command(headers=live.headers)[:2000]}\n"
                         f"worker log:\n{live.new_log()[-4000:]}")

    run()
    return found


def _operation_params() -> list[Any]:
    return [pytest.param(r.operation_id, id=r.operation_id,
                         marks=[pytest.mark.xfail(strict=True, reason=XFAIL[r.operation_id])]
                         if r.operation_id in XFAIL else [])
            for r in api_spec.http_routes()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("operation_id", _operation_params())
def test_no_server_error(live: Live, operation_id: str) -> None:
    operation = live.schema.find_operation_by_id(operation_id)
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))
    live.new_log()
    route = api_spec.by_operation()[operation_id]
    failures = []
    for body in REGRESSIONS.get(operation_id, []):
        answer = requests.request(route.method, live.base + route.path, json=body,
                                  headers=live.headers, timeout=REQUEST_TIMEOUT_S)
        if answer.status_code >= 500:
            failures.append(f"{route.method} {route.path} {json.dumps(body)} -> "
                            f"{answer.status_code}\n{live.new_log()[-3000:]}")
    failures += _server_errors(live, operation, strategy, MAX_EXAMPLES)
    assert not failures, f"{len(failures)} server error(s) on {operation_id}:\n\n" + \
        "\n\n".join(failures[:3])


@pytest.mark.timeout(120)
def test_stateful_links_no_server_error(live: Live) -> None:
    """Create-then-read sequences along the document's links (see ``api_spec.LINKS``)."""
    schema = live.schema.exclude(operation_id=list(XFAIL)) if XFAIL else live.schema
    machine = schema.as_state_machine()
    failures: list[str] = []

    class Fuzz(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live.base, "headers": live.headers, "timeout": REQUEST_TIMEOUT_S}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:500]}\n"
                                f"{live.new_log()[-3000:]}")

    started = time.monotonic()
    Fuzz.run(settings=settings(max_examples=25, stateful_step_count=4, deadline=None,
                               database=None, phases=[Phase.generate],
                               suppress_health_check=list(HealthCheck)))
    assert time.monotonic() - started < 110
    assert not failures, "\n\n".join(failures[:3])


def test_health_still_ok_after_fuzzing(live: Live) -> None:
    answer = requests.get(live.base + "/health", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok"


def test_openapi_document_is_public(live: Live) -> None:
    answer = requests.get(live.base + api_spec.OPENAPI_PATH, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["openapi"] == "3.1.0"
