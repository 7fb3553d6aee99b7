"""Event-sourcing tables (RocksDB, changelogged) and their co-partitioned command topic.

Every table and the command topic are keyed by the same JSON-serialized string (see
:mod:`esb.sourcing.store` for the key forms) and have the same partition count, so the worker
that owns a command-topic partition owns that partition of every table: ``app.router.key_store``
on the aggregates table names the replica whose agent decides an aggregate's appends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY_SERIALIZER = "json"
VALUE_SERIALIZER = "json"


@dataclass(frozen=True)
class SourcingTables:
    commands: Any  # faust topic: OwnerCommand dicts keyed by aggregate key
    aggregates: Any  # aggregate key -> AggregateRecord dict (version, state, snapshot index)
    events: Any  # "<aggregate key>#<version>" -> SourcedEvent dict
    snapshots: Any  # "<aggregate key>@<version>" -> Snapshot dict


def command_topic_name(prefix: str) -> str:
    return f"{prefix}.sourcing.commands"


def declare(app: Any) -> SourcingTables:
    """Create the tables and topic on ``app`` (before it starts)."""
    settings = app.runtime.settings
    partitions = settings.default_partitions

    def table(name: str, help_text: str) -> Any:
        # no key_type/value_type: Faust tables then use the json codec for keys and values,
        # the same key serializer as the command topic (checked at start-up below)
        created = app.Table(name, partitions=partitions, help=help_text)
        if created.key_serializer != KEY_SERIALIZER:
            raise RuntimeError(f"table {name} keys use {created.key_serializer!r}, not "
                               f"{KEY_SERIALIZER!r}: owner routing would be wrong")
        return created

    return SourcingTables(
        commands=app.topic(command_topic_name(settings.topic_prefix), partitions=partitions,
                           key_serializer=KEY_SERIALIZER, value_serializer=VALUE_SERIALIZER),
        aggregates=table("sourcing_aggregates", "aggregate version, state, snapshot index"),
        events=table("sourcing_events", "every event of every aggregate, by version"),
        snapshots=table("sourcing_snapshots", "aggregate state snapshots, by version"),
    )
