"""Composition: which feature installs which agents, tables and views (ADR 0009).

The floor above everything else: each module here has ``install(app)`` and is the only place
that imports ``agents``, ``tables`` and ``esb.views`` together. Domain packages (``esb.schemas``,
``esb.sourcing``, ``esb.delivery``, ``esb.processing``) never import agents or views; what a view
needs from a feature is a typed attribute of :class:`esb.app.EsbApp`.
"""

from __future__ import annotations

#: one line per feature; order is start-up order
FEATURES: tuple[str, ...] = (
    "esb.features.core",
    "esb.features.schemas",
    "esb.features.sourcing",
    "esb.features.delivery",
    "esb.features.processing",
    "esb.features.monitoring",  # after delivery: scans its subscriptions' lag (ADR 0020)
    "esb.features.anumate",
    "esb.features.audit",  # last: its middleware records what every other feature serves
)
