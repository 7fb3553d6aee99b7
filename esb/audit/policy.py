"""Which requests the audit trail records, and what of them.

Recorded: every request to a route the table marks as changing state (any outcome), and every
401 or 403 on any route. Not recorded: reads, and publishing events (data, not configuration:
the publish hot path never waits for the audit log). Only ids are kept: path parameters and the
``*_id`` fields of a creation's answer, never request bodies (webhook secrets, tokens, payloads).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from esb import api_spec
from esb.audit.entry import AuditRecord

REFUSED = frozenset({401, 403})
MAX_TARGET_VALUE = 256
#: the ``X-Request-Id`` a client may send (else the bus makes one); anything else is replaced
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROUTES = api_spec.by_method_path()
#: answer fields that name what a request created (top level, strings)
_CREATED_KEYS = re.compile(r"^[a-z_]*_id$|^name$")


def route_for(method: str, template: str) -> api_spec.Route | None:
    """The table row of an aiohttp resource's canonical path."""
    return _ROUTES.get((method, template))


def kind_of(route: api_spec.Route | None, status: int) -> str | None:
    """'refused', 'change', or None (not recorded)."""
    if status in REFUSED:
        return "refused"
    if route is not None and route.changes_state:
        return "change"
    return None


def created_ids(body: bytes | None, status: int) -> dict[str, str]:
    """Ids a successful creation answered with (``stream_id``, ``subscription_id`` …)."""
    if body is None or not 200 <= status < 300 or len(body) > 1 << 20:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items()
            if isinstance(v, str) and k != "tenant_id" and _CREATED_KEYS.match(k)
            and len(v) <= MAX_TARGET_VALUE}


def build(*, kind: str, tenant: str, actor: str, request_id: str, method: str,
          route: api_spec.Route | None, status: int, path_params: Mapping[str, str],
          created: Mapping[str, str]) -> AuditRecord:
    target = {k: v[:MAX_TARGET_VALUE] for k, v in path_params.items()}
    target.update({k: v for k, v in created.items() if k not in target})
    return AuditRecord(tenant=tenant, actor=actor, request_id=request_id, method=method,
                       operation=route.operation_id if route is not None else "unmatched",
                       outcome=status, target=target, kind=kind)
