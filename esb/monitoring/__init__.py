"""Monitoring (issue 12, ADR 0020): per-stream figures read from the Prometheus registry, the
``/ws/monitoring`` subscribe protocol, and the background scan that keeps consumer lag and the
data directory's size current. Plain logic: no agents or views are imported here."""
