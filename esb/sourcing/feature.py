"""What the sourcing views need from the feature (``app.sourcing``); wired by
``esb.features.sourcing``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esb.sourcing.config import SourcingSettings
from esb.sourcing.replies import PendingReplies
from esb.sourcing.store import AggregateStore


@dataclass
class SourcingFeature:
    tables: Any
    store: AggregateStore
    replies: PendingReplies
    settings: SourcingSettings
