"""What the delivery views need from the feature (``app.delivery``); wired by
``esb.features.delivery``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esb.delivery.config import DeliverySettings
from esb.delivery.lag import OffsetReader, RateTracker
from esb.delivery.service import ConsumerGroupService, SubscriptionService

__all__ = ["DeliveryFeature"]


@dataclass
class DeliveryFeature:
    config: DeliverySettings
    subscriptions: SubscriptionService
    groups: ConsumerGroupService
    offsets: OffsetReader
    rates: RateTracker
    worker: Any
