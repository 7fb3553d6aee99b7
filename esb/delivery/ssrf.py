"""Server-side request forgery guard for webhook URLs.

A webhook URL is chosen by a tenant, but the request leaves from inside our network, so a URL
pointing at ``127.0.0.1``, the cloud metadata address ``169.254.169.254`` or a private subnet
would let a tenant probe or attack internal services. We therefore refuse any URL that is not
http(s) or whose host resolves to a non-public address: private, loopback, link-local,
multicast, reserved, unspecified, shared (CGNAT) or otherwise not globally routable, in IPv4 and
IPv6, including IPv4 embedded in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``,
6to4 ``2002::/16``). Every resolved address must pass: one bad A record refuses the URL.

An operator allow-list (CIDRs, hostnames, ``*.suffix`` wildcards) lets test and on-prem
receivers through. Check at subscription creation and again before each delivery, because DNS
answers change (rebinding). To close the remaining gap between our check and the HTTP client's
own lookup, the HTTP adapter should connect to the addresses :meth:`SsrfGuard.check` returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from esb.errors import ValidationFailed

__all__ = [
    "ResolvedTarget",
    "SsrfGuard",
    "UnsafeWebhookUrl",
    "WebhookHostUnresolvable",
    "check_url_syntax",
    "unsafe_address_reason",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeWebhookUrl(ValidationFailed):
    """The URL is refused by policy; retrying will not help."""

    code = "unsafe_webhook_url"


class WebhookHostUnresolvable(ValidationFailed):
    """DNS gave no answer; at delivery time this is retriable, at creation it is a 422."""

    code = "webhook_host_unresolvable"
    retriable = True


def _refuse(cls: type[ValidationFailed], url: str, reason: str) -> ValidationFailed:
    return cls(f"webhook_url refused: {reason}",
               errors=[{"path": "webhook_url", "message": reason}], url=url)


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A vetted destination: connect to one of ``addresses`` (vetted at ``check`` time)."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_url_syntax(url: str) -> tuple[str, str, int]:
    """Return ``(scheme, host, port)`` of an http(s) URL with a host, or raise UnsafeWebhookUrl."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(UnsafeWebhookUrl, url, f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse(UnsafeWebhookUrl, url, "scheme must be http or https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _refuse(UnsafeWebhookUrl, url, "URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def unsafe_address_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be contacted, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = unsafe_address_reason(inner)
            return f"embeds {inner}: {reason}" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is {name}"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None


class SsrfGuard:
    """Vets webhook URLs against the address rules and the configured allow-list."""

    def __init__(self, *, allow_cidrs: Iterable[str] = (), allow_hosts: Iterable[str] = (),
                 resolve_timeout_s: float = 5.0, resolver: Resolver | None = None) -> None:
        self._allow_networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(c.strip(), strict=False) for c in allow_cidrs
        )
        hosts = [h.strip().lower().rstrip(".") for h in allow_hosts if h.strip()]
        self._allow_exact = frozenset(h for h in hosts if not h.startswith("*."))
        self._allow_suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))  # ".example.com"
        self._resolve_timeout_s = resolve_timeout_s
        self._resolver: Resolver = resolver or _system_resolver

    def host_allowed(self, host: str) -> bool:
        """True when the allow-list names this host (exactly or by ``*.suffix``)."""
        name = host.lower().rstrip(".")
        return name in self._allow_exact or any(name.endswith(s) for s in self._allow_suffixes)

    def address_refusal(self, address: IPAddress) -> str | None:
        """The reason to refuse ``address``, or None if it is public or allow-listed."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            mapped: IPAddress = address.ipv4_mapped
            if any(mapped in net for net in self._allow_networks):
                return None
        if any(address in net for net in self._allow_networks):
            return None
        return unsafe_address_reason(address)

    async def check(self, url: str) -> ResolvedTarget:
        """Validate ``url`` and resolve it; raise UnsafeWebhookUrl / WebhookHostUnresolvable."""
        scheme, host, port = check_url_syntax(url)
        literal = _parse_ip(host)
        if literal is not None:
            reason = self.address_refusal(literal)
            if reason:
                raise _refuse(UnsafeWebhookUrl, url, reason)
            return ResolvedTarget(scheme, host, port, (str(literal),))
        addresses = await self._resolve(url, host, port)
        if not self.host_allowed(host):
            for address in addresses:
                reason = self.address_refusal(address)
                if reason:
                    raise _refuse(UnsafeWebhookUrl, url, f"{host} resolves to {reason}")
        return ResolvedTarget(scheme, host, port, tuple(dict.fromkeys(map(str, addresses))))

    async def _resolve(self, url: str, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self._resolve_timeout_s):
                answers = await self._resolver(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise _refuse(WebhookHostUnresolvable, url, f"cannot resolve {host}: {exc}") from None
        addresses = [ip for ip in map(_parse_ip, answers) if ip is not None]
        if not addresses:
            raise _refuse(WebhookHostUnresolvable, url, f"{host} has no address")
        return addresses


async def _system_resolver(host: str, port: int) -> list[str]:
    """The event loop's getaddrinfo (run in its thread pool, so it never blocks the loop)."""
    infos: list[Any] = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]
