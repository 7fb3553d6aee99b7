"""Local table state that is ahead of the broker is discarded and rebuilt, never trusted.

Faust keeps each table partition in RocksDB under the worker's data directory, with the last
changelog offset it applied. When the broker lost that changelog (a memory broker restarted, the
worker now points at another cluster, a restore from an older backup), the local copy holds state
the broker never saw: Faust stops with ``ConsistencyError`` ("persisted offset ... is higher than
the last offset"), and where it does not check (a one-record changelog) it silently serves state
that disagrees with the changelog. The broker is the source of truth, so before recovery seeks,
every changelog partition whose local offset is past the broker's last offset loses its local
copy (logged) and is read again from the start of the changelog.

Installed by ``esb.app.create_app`` (``install()``); ADR 0014.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

_MARK = "_esb_reconcile"


def stale_partitions(offsets: Mapping[Any, int | None], last_offsets: Mapping[Any, int | None]
                     ) -> list[Any]:
    """Partitions whose applied offset is past the changelog's last offset (-1: empty log)."""
    stale = []
    for tp, applied in offsets.items():
        last = last_offsets.get(tp)
        if applied is not None and applied >= 0 and last is not None and applied > last:
            stale.append(tp)
    return stale


def discard_partition(store: Any, partition: int) -> bool:
    """Close and delete one partition's local RocksDB database; Faust reopens it empty.
    Returns False for stores without local files (the memory store)."""
    dbs = getattr(store, "_dbs", None)
    if dbs is None or not hasattr(store, "partition_path"):
        return False
    db = dbs.pop(partition, None)
    if db is not None:
        with contextlib.suppress(Exception):
            db.close()
    path = store.partition_path(partition)
    try:
        from rocksdict import Rdict

        Rdict.destroy(str(path))
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
    index = getattr(store, "_key_index", None)
    if index is not None:
        for key in [k for k, p in list(index.items()) if p == partition]:
            with contextlib.suppress(KeyError):
                del index[key]
    return True


async def reconcile(recovery: Any, consumer: Any, tps: set[Any],
                    destination: MutableMapping[Any, int], title: str) -> list[Any]:
    """Compare the start offsets Faust just built with the broker's end offsets; wipe and
    restart (offset -1) every partition whose local state is ahead. Returns those partitions."""
    if not tps:
        return []
    ends = await consumer.highwaters(*tps)
    last_offsets = {tp: (end - 1 if end is not None else -1) for tp, end in ends.items()}
    stale = stale_partitions({tp: destination.get(tp) for tp in tps}, last_offsets)
    for tp in stale:
        table = recovery.tp_to_table.get(tp)
        name = getattr(table, "name", "?")
        log.warning(
            "%s table %s partition %s: local state is at changelog offset %s but the broker's "
            "changelog %s ends at %s; discarding the local copy and rebuilding it from the "
            "changelog", title, name, tp.partition, destination.get(tp), tp.topic,
            last_offsets.get(tp))
        if table is not None:
            discard_partition(table.data, tp.partition)
        destination[tp] = -1
    return stale


def install() -> None:
    """Wrap Faust's ``Recovery._build_offsets`` (runs before every seek, active and standby)."""
    from faust.tables.recovery import Recovery

    original = Recovery._build_offsets
    if getattr(original, _MARK, False):
        return

    async def _build_offsets(self: Any, consumer: Any, tps: set[Any],
                             destination: Any, title: str) -> None:
        await original(self, consumer, tps, destination, title)
        await reconcile(self, consumer, tps, destination, title)

    setattr(_build_offsets, _MARK, True)
    Recovery._build_offsets = _build_offsets  # type: ignore[method-assign]
