"""SDK tests talk to the shared ``bus`` worker through the SDK only (plus Kafka to make
dead letters), with a token per test tenant."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.delivery_e2e.conftest import (  # noqa: F401 (fixtures for test_cli_ops)
    dapi,
    delivery_bus,
    receiver,
)
from tests.support import WorkerGroup


@pytest.fixture
def bus_url(bus: tuple[WorkerGroup, int]) -> str:
    group, port = bus
    return group.url(port)


@pytest.fixture
def token_for(bus: tuple[WorkerGroup, int]) -> Callable[..., str]:
    group, _ = bus
    return group.token
