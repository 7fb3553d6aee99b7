"""Seed 003's REST surface (``/events/publish``, ``/events/health``) over the core publisher.

A feature of its own so the seed's compatibility paths can be found (and dropped) in one place;
it needs only the core (streams, publisher), so it installs after it.
"""

from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    from esb.views import anumate

    anumate.blueprint.register(app, url_prefix="")  # the seed's paths have no /api/v1 prefix
