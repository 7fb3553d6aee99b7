"""The route table is complete and well-formed, and the OpenAPI document built from it is valid.

Completeness is checked against the routes a real app registers: the app is built in a child
process (``esb.app.create_app`` + Faust's ``init_server``, no broker needed), so every feature's
blueprint and the aiohttp-level WebSocket routes are included exactly as a worker has them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from esb import api_spec
from esb.api_spec import ROUTES, Route

#: Faust's own blueprints (being turned off) and HEAD, which Faust adds to every view.
FAUST_INTERNAL_PREFIXES = ("/router", "/table")
FAUST_INTERNAL_PATHS = frozenset({"/"})  # faust.web.apps.production_index

_LIST_ROUTES = """
import json
from esb.app import app  # built on import, as a worker builds it
app.web.init_server()
print(json.dumps(sorted({(r.method, r.resource.canonical)
                         for r in app.web.web_app.router.routes()})))
"""


def registered_routes(tmp: Path) -> set[tuple[str, str]]:
    """(method, path template) of every route a freshly built worker app serves."""
    env = {**os.environ, "ESB_DATA_DIR": str(tmp)}
    out = subprocess.run([sys.executable, "-c", _LIST_ROUTES], env=env, cwd=tmp,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return {(m, p) for m, p in json.loads(out.stdout.strip().splitlines()[-1])}


def api_routes(registered: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(m, p) for m, p in registered
            if m != "HEAD" and p not in FAUST_INTERNAL_PATHS
            and not p.startswith(FAUST_INTERNAL_PREFIXES)}


def differences(registered: set[tuple[str, str]], routes: Iterable[Route]
                ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(served without a row, rows for nothing served)."""
    table = {(r.method, r.path) for r in routes}
    return registered - table, table - registered


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    return api_routes(registered_routes(tmp_path_factory.mktemp("routes")))


def test_every_served_route_has_exactly_one_row(served: set[tuple[str, str]]) -> None:
    without_row, without_route = differences(served, ROUTES)
    assert not without_row, f"routes served without a row in esb.api_spec.ROUTES: {without_row}"
    assert not without_route, f"rows for routes nobody serves: {without_route}"
    assert len(served) >= 80  # the app really was built with every feature


def test_a_missing_row_is_detected(served: set[tuple[str, str]]) -> None:
    """The comparison can fail: drop any one row and it names that route."""
    dropped = next(r for r in ROUTES if r.operation_id == "get_subscription_status")
    without_row, _ = differences(served, [r for r in ROUTES if r is not dropped])
    assert without_row == {(dropped.method, dropped.path)}


def test_table_is_well_formed() -> None:
    api_spec.check_table()
    assert api_spec.public_paths() == {"/health", "/metrics", "/api/v1/openapi.json"}
    duplicate = (*ROUTES, ROUTES[5])
    with pytest.raises(ValueError, match="duplicate"):
        api_spec.check_table(duplicate)


def test_scoped_params_name_path_params_and_every_id_param_is_scoped() -> None:
    """Any path parameter of an authenticated route is tenant data: it must be declared scoped,
    so the isolation suite (which is generated from ``scoped``) covers it."""
    for r in ROUTES:
        if not r.public:
            assert {p for p, _ in r.scoped} == set(r.path_params), r.operation_id


@pytest.mark.parametrize(("twin", "view_module", "name"), [
    (api_spec.SourcingAppendRequest, "esb.views.sourcing", "SourcingAppendRequest"),
    (api_spec.SourcingReconstructRequest, "esb.views.sourcing", "SourcingReconstructRequest"),
    (api_spec.ReplayRequest, "esb.views.readmodels", "ReplayRequest"),
])
def test_documentation_twins_match_the_views(twin: type[BaseModel], view_module: str,
                                             name: str) -> None:
    import importlib

    real: type[BaseModel] = getattr(importlib.import_module(view_module), name)
    def shape(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema()
        schema.pop("description", None)  # docstrings may differ; fields may not
        return schema

    assert shape(twin) == shape(real)


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_document_is_valid_and_covers_every_http_row() -> None:
    import schemathesis

    doc = api_spec.openapi_document()
    assert doc["openapi"] == "3.1.0"
    operations = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert set(operations) == {(r.method, r.path) for r in api_spec.http_routes()}
    components = doc["components"]["schemas"]
    for ref in set(_refs(doc)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in components
    for r in api_spec.http_routes():
        op = operations[(r.method, r.path)]
        if r.public:
            assert op["security"] == [] and "401" not in op["responses"]
        else:
            assert {"400", "401", "403", "404", "409", "413", "422", "429"} <= set(op["responses"])
    loaded = schemathesis.openapi.from_dict(doc)
    results = list(loaded.get_all_operations())
    errors = [r for r in results if r.ok() is None]
    assert not errors and len(results) == len(operations)


def test_request_models_are_components() -> None:
    doc = api_spec.openapi_document()
    body = doc["paths"]["/api/v1/streams"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/StreamCreate"}
    assert doc["components"]["schemas"]["StreamCreate"]["additionalProperties"] is False
    problem = doc["paths"]["/api/v1/streams"]["post"]["responses"]["422"]["content"]
    assert problem == {"application/problem+json":
                       {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_links_name_real_operations_and_parameters() -> None:
    ops = api_spec.by_operation()
    for source, targets in api_spec.LINKS.items():
        assert source in ops
        for target, params in targets.items():
            assert set(params) <= set(ops[target].path_params), (source, target)
