"""Faust agents and Kafka-native workers: thin wiring around the logic in ``esb``."""

from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    """Register every pipeline stage with the app (called once by ``esb.app.create_app``)."""
    from agents import deadletters, ingress

    if app.runtime.settings.router_enabled:
        app.ingress_router = ingress.install(app.runtime)
    deadletters.install(app)
