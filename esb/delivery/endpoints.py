"""Names per webhook endpoint: the receiver's origin, and the per-tenant scope of its limits.

The endpoint is the URL's origin (scheme, lowercased host, explicit port), so
``https://A.example.com/x`` and ``https://a.example.com:443/y`` are one endpoint.

Circuit breakers and rate limits are kept per (tenant, endpoint) — :func:`limit_scope` — not per
endpoint: tenants are isolated, so one tenant's failing or flooding subscriptions must not open
the breaker of, or use up the rate budget of, another tenant that posts to the same URL (a shared
SaaS receiver, or two tenants' receivers behind one gateway). Within a tenant, subscriptions to
one receiver still share its breaker and limit: its health does not depend on who calls it.
"""

from __future__ import annotations

from urllib.parse import quote

from esb.delivery.ssrf import check_url_syntax

__all__ = ["endpoint_key", "limit_scope"]


def endpoint_key(url: str) -> str:
    """``scheme://host:port`` of a webhook URL (IPv6 hosts in brackets)."""
    scheme, host, port = check_url_syntax(url)
    shown = f"[{host}]" if ":" in host else host.lower()
    return f"{scheme}://{shown}:{port}"


def limit_scope(tenant: str, url: str) -> str:
    """The breaker / rate-limit key of ``tenant`` calling ``url``: ``<tenant>|scheme://host:port``.

    The tenant is percent-encoded, so no tenant name can forge another tenant's scope.
    """
    if not tenant:
        raise ValueError("a limit scope needs a tenant")
    return f"{quote(tenant, safe='')}|{endpoint_key(url)}"
