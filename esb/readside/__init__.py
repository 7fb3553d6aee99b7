"""The PostgreSQL read side: event archive, processing history and read models.

Fed by the projection agent (idempotent by event id), read by the web views. Every read is
scoped by tenant; every value reaches SQL as a parameter.
"""

from __future__ import annotations

from esb.readside.archive import EventArchive, EventPage, EventQuery, build_filters
from esb.readside.history import (
    HistoryEntry,
    ProcessingHistory,
    ProcessingHistoryResponse,
    ProcessingRecord,
    ProcessingStatus,
    history_id_for,
    summarize,
)
from esb.readside.models import ArchivedEvent
from esb.readside.paging import glob_matches, glob_to_like
from esb.readside.readmodels import (
    DocumentPage,
    Projection,
    ReadModelDefinition,
    ReadModelDocument,
    ReadModelStore,
    project,
)

__all__ = [
    "ArchivedEvent",
    "DocumentPage",
    "EventArchive",
    "EventPage",
    "EventQuery",
    "HistoryEntry",
    "ProcessingHistory",
    "ProcessingHistoryResponse",
    "ProcessingRecord",
    "ProcessingStatus",
    "Projection",
    "ReadModelDefinition",
    "ReadModelDocument",
    "ReadModelStore",
    "build_filters",
    "glob_matches",
    "glob_to_like",
    "history_id_for",
    "project",
    "summarize",
]
