"""Names of event attributes as subscriptions may write them.

The seeds name event fields in snake_case (``tenant_id``, ``aggregate_type``); on the wire they
are CloudEvents attributes (``tenantid``, ``aggregatetype``; see DESIGN "The event on the wire").
Subscriptions may use either spelling, so every name is normalised once, at compile time, to the
CloudEvents name the delivery path reads from Kafka headers.
"""

from __future__ import annotations

__all__ = ["SEED_FIELDS", "SEED_TO_CLOUDEVENTS", "cloudevents_attribute_name"]

# Seed field name -> CloudEvents attribute. Everything else is lowercased without underscores.
SEED_TO_CLOUDEVENTS: dict[str, str] = {
    "event_id": "id",
    "event_type": "type",
    "source_capability": "source",
    "timestamp": "time",
    "content_type": "datacontenttype",
}


def cloudevents_attribute_name(name: str) -> str:
    """Map a seed or CloudEvents attribute name to its CloudEvents name (tenant_id -> tenantid)."""
    key = name.strip()
    if key in SEED_TO_CLOUDEVENTS:
        return SEED_TO_CLOUDEVENTS[key]
    return key.lower().replace("_", "")


# The seed's event fields (seed 002 "Core Event Structure") that travel as CloudEvents attributes.
SEED_FIELDS: tuple[str, ...] = (
    "event_id", "event_type", "event_version", "source_capability", "aggregate_id",
    "aggregate_type", "sequence_number", "timestamp", "correlation_id", "causation_id",
    "tenant_id", "user_id", "priority", "schema_version",
)
