"""The layout the design card asks for, and the things a new user would trip on."""

from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_our_tables_package_is_the_one_loaded() -> None:
    import tables  # PyTables is also importable as `tables`

    assert getattr(tables, "ESB_TABLES_PACKAGE", False)
    assert Path(tables.__file__).resolve().parent == ROOT / "tables"


def test_top_level_layout_exists() -> None:
    for name in ("pyproject.toml", "esb", "agents", "tables", "schemas", "tests", "helm",
                 "docker-compose.yml", "README.md"):
        assert (ROOT / name).exists(), name


def test_faust_app_and_features_import() -> None:
    from esb.features import FEATURES

    app_module = importlib.import_module("esb.app")
    assert app_module.app.conf.id
    for feature in FEATURES:
        assert callable(importlib.import_module(feature).install)


#: the floors above the core: composition, the CLI and dev stack, views, benchmarks
UPPER_FLOORS = ("esb/app.py", "esb/cli.py", "esb/embedded.py", "esb/features/", "esb/views/",
                "esb/bench/")


def _imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_core_and_domain_packages_never_import_agents_views_or_composition() -> None:
    offenders = []
    for path in sorted((ROOT / "esb").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(UPPER_FLOORS):
            continue
        bad = {name for name in _imports(path)
               if name.split(".")[0] == "agents" or name.startswith(("esb.views", "esb.features"))}
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_shipped_schemas_are_valid_json_schema() -> None:
    import json

    from jsonschema import Draft202012Validator

    for path in (ROOT / "schemas").glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_shipped_event_schema_matches_the_api_model() -> None:
    import json

    from esb.envelope import EventIn

    shipped = json.loads((ROOT / "schemas" / "event.schema.json").read_text())
    generated = EventIn.model_json_schema()
    assert {k: v for k, v in shipped.items() if k not in ("$schema", "$id", "title")} == {
        k: v for k, v in generated.items() if k != "title"}
