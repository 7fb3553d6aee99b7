"""Quotas per tenant (ADR 0016): publish rates on both paths and counts of what a tenant creates.

- ``limits``: the limits a tenant has (defaults from the settings, overrides in the metadata
  catalog, so every replica sees the same ones) and the count check services call at create.
- ``publish``: the publish-rate budget, GCRA on the delivery rate limiter (in-process, or
  shared by every replica through Redis): HTTP answers 429 with ``Retry-After``; the Kafka
  ingress learns how many records it may route now and holds the rest.

Plain logic: imports no agents, views or Faust.
"""

from esb.quotas.limits import COUNT_LIMITS, QuotaBook, QuotaDocument, QuotaLimits, QuotaUpdate
from esb.quotas.publish import PublishQuota

__all__ = ["COUNT_LIMITS", "PublishQuota", "QuotaBook", "QuotaDocument", "QuotaLimits",
           "QuotaUpdate"]
