from __future__ import annotations

import ast
from pathlib import Path

import esb.sourcing

EXPECTED = {
    "ANY", "DEFAULT_RECENT_IDS_LIMIT", "DEFAULT_SNAPSHOT_EVERY", "ENTRY_POINT_GROUP", "NO_STREAM",
    "STREAM_EXISTS", "AggregateState", "AppendCommand", "AppendDecision", "AppendOutcome",
    "AppendRequest", "AppendResponse", "ExpectedVersion", "ExpectedVersionKind",
    "ReconstructRequest", "ReconstructResponse", "Reconstruction", "Reducer", "ReducerRegistry",
    "Snapshot", "SnapshotPolicy", "SourcedEvent", "StreamGap", "choose_snapshot", "decide_append",
    "default_registry", "merge_patch", "merge_reducer", "reconstruct", "shared_registry",
}


def test_exported_members_are_locked():
    assert set(esb.sourcing.__all__) == EXPECTED
    assert all(hasattr(esb.sourcing, name) for name in EXPECTED)


def test_sourcing_imports_no_faust_aiohttp_or_psycopg():
    package = Path(esb.sourcing.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in {"faust", "aiohttp", "psycopg", "mode"}, path
