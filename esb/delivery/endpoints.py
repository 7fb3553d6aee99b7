"""One name per webhook endpoint, the key for its circuit breaker and rate limiter.

Two subscriptions posting to the same receiver share its breaker and limit: the receiver's health
and capacity do not depend on which subscription calls it. The key is the URL's origin
(scheme, lowercased host, explicit port), so ``https://A.example.com/x`` and
``https://a.example.com:443/y`` are one endpoint.
"""

from __future__ import annotations

from esb.delivery.ssrf import check_url_syntax

__all__ = ["endpoint_key"]


def endpoint_key(url: str) -> str:
    """``scheme://host:port`` of a webhook URL (IPv6 hosts in brackets)."""
    scheme, host, port = check_url_syntax(url)
    shown = f"[{host}]" if ":" in host else host.lower()
    return f"{scheme}://{shown}:{port}"
