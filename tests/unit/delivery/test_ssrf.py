"""The SSRF guard: schemes, address classes, embedded IPv4, allow-lists, DNS answers."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from esb.delivery.endpoints import endpoint_key
from esb.delivery.ssrf import (
    SsrfGuard,
    UnsafeWebhookUrl,
    WebhookHostUnresolvable,
    unsafe_address_reason,
)


def fake_dns(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]
    return resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.100", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.10",
    "::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "fec0::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:c0a8:0101::1",
])
def test_non_public_addresses_refused(address: str) -> None:
    assert unsafe_address_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert unsafe_address_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://[::1]:8080/", "http://[::ffff:169.254.169.254]/latest",
    "https://10.0.0.5/x", "http://0.0.0.0:80/",
])
async def test_literal_ip_urls_refused_without_dns(url: str) -> None:
    guard = SsrfGuard(resolver=fake_dns({}))
    with pytest.raises(UnsafeWebhookUrl) as info:
        await guard.check(url)
    assert info.value.http_status == 422 and not info.value.retriable


@pytest.mark.parametrize("url", ["ftp://example.com/", "gopher://x/", "file:///etc/passwd",
                                 "http://", "javascript:alert(1)"])
async def test_scheme_and_shape(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        await SsrfGuard(resolver=fake_dns({})).check(url)


async def test_hostname_resolving_to_private_is_refused() -> None:
    guard = SsrfGuard(resolver=fake_dns({"evil.example": ["93.184.216.34", "10.0.0.7"]}))
    with pytest.raises(UnsafeWebhookUrl, match=r"10\.0\.0\.7"):
        await guard.check("https://evil.example/hook")  # one bad answer is enough


async def test_public_hostname_passes_with_its_addresses() -> None:
    guard = SsrfGuard(resolver=fake_dns({"hooks.example": ["93.184.216.34", "2606:2800::1"]}))
    target = await guard.check("https://Hooks.Example/path?q=1")
    assert target.host == "hooks.example" and target.port == 443 and target.scheme == "https"
    assert target.addresses == ("93.184.216.34", "2606:2800::1")


async def test_dns_change_is_caught_at_delivery_time() -> None:
    table = {"rebind.example": ["93.184.216.34"]}
    guard = SsrfGuard(resolver=fake_dns(table))
    await guard.check("https://rebind.example/")  # at creation
    table["rebind.example"] = ["127.0.0.1"]
    with pytest.raises(UnsafeWebhookUrl):
        await guard.check("https://rebind.example/")  # at delivery


async def test_allow_list_by_cidr_and_hostname() -> None:
    dns = fake_dns({"receiver.internal": ["10.9.9.9"], "a.test.local": ["192.168.5.5"],
                    "other.internal": ["10.9.9.9"]})
    guard = SsrfGuard(allow_cidrs=["127.0.0.0/8", "fd00::/8"],
                      allow_hosts=["receiver.internal", "*.test.local"], resolver=dns)
    assert (await guard.check("http://127.0.0.1:9000/")).addresses == ("127.0.0.1",)
    assert (await guard.check("http://[::ffff:127.0.0.1]/")).port == 80
    assert (await guard.check("http://[fd00::5]/")).host == "fd00::5"
    assert (await guard.check("http://receiver.internal/")).addresses == ("10.9.9.9",)
    assert (await guard.check("http://a.test.local/")).addresses == ("192.168.5.5",)
    with pytest.raises(UnsafeWebhookUrl):
        await guard.check("http://other.internal/")
    with pytest.raises(UnsafeWebhookUrl):
        await guard.check("http://10.0.0.1/")  # outside the allowed CIDRs
    assert not guard.host_allowed("test.local")  # "*.x" means subdomains only


async def test_unresolvable_host_is_a_retriable_refusal() -> None:
    with pytest.raises(WebhookHostUnresolvable) as info:
        await SsrfGuard(resolver=fake_dns({})).check("https://nowhere.invalid/")
    assert info.value.retriable
    assert info.value.errors[0]["path"] == "webhook_url"


async def test_slow_dns_times_out_instead_of_hanging() -> None:
    async def never(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []
    with pytest.raises(WebhookHostUnresolvable):
        await SsrfGuard(resolver=never, resolve_timeout_s=0.05).check("https://slow.example/")


async def test_system_resolver_refuses_localhost() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        await SsrfGuard().check("http://localhost:8080/hook")


def test_endpoint_key() -> None:
    assert endpoint_key("https://A.Example.com/x") == endpoint_key("https://a.example.com:443/y")
    assert endpoint_key("http://a.example.com/x") == "http://a.example.com:80"
    assert endpoint_key("http://[2001:db8::1]:8080/") == "http://[2001:db8::1]:8080"
    assert endpoint_key("https://a.example.com:8443") != endpoint_key("https://a.example.com")
