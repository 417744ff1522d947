"""Outbound HTTP to addresses users typed in (webhook URLs), without reaching our own network.

Written here because no well-kept library does this for httpx: the advocate package
wraps requests and is unmaintained since 2020, and the httpx wrappers on PyPI are
single-author projects months old. The guard sits in httpcore's network backend, the
one place that opens sockets: it resolves the name itself, refuses unless every address
is public, and connects to the address it vetted. There is no second lookup for an
attacker's DNS to answer differently (DNS rebinding), and TLS still checks the
certificate against the hostname. Redirects are never followed and proxies from the
environment are ignored, so nothing else opens a connection.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# The IANA special-purpose address registries (iana-ipv4-special-registry and
# iana-ipv6-special-registry, 2025), written out here because Python's ipaddress lags them
# (3.11 calls 192.0.0.8 and ::7f00:1 global). Rows marked "Globally Reachable: True" are
# the exceptions below; every other row is refused by name. is_global stays as a backstop.
_NAMED_RANGES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("169.254.0.0/16", "link-local"),
    ("192.0.0.0/24", "IETF protocol assignment"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignment"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6)"),
    ("fdaa::/16", "Fly.io private network"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
]
_RANGES = [(ipaddress.ip_network(net), name) for net, name in _NAMED_RANGES]
# Inside the refused blocks above, the registries mark these globally reachable (anycast
# services such as PCP, TURN, AS112, AMT, ORCHIDv2, drone DET).
_GLOBAL_EXCEPTIONS = [
    ipaddress.ip_network(net)
    for net in (
        "192.0.0.9/32",
        "192.0.0.10/32",
        "2001:1::1/128",
        "2001:1::2/128",
        "2001:1::3/128",
        "2001:3::/32",
        "2001:4:112::/48",
        "2001:20::/28",
        "2001:30::/28",
    )
]
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 hosts an IPv6 address leads to: IPv4-mapped, IPv4-compatible (deprecated
    but still routed by some stacks), NAT64 well-known prefix, 6to4 and both ends of Teredo."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


class BlockedAddress(httpcore.ConnectError):
    """The URL leads to an address we refuse to connect to."""


def address_problem(address: IPAddress) -> str | None:
    """Why this address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address > ipaddress.IPv6Address(1):
        for inner in _embedded_ipv4(address):
            problem = address_problem(inner)
            if problem:
                return f"{problem} (IPv4 inside IPv6)"
        if address in _IPV4_COMPATIBLE:
            return "deprecated IPv4-compatible"
    if any(address.version == net.version and address in net for net in _GLOBAL_EXCEPTIONS):
        return None
    for network, name in _RANGES:
        if address.version == network.version and address in network:
            return name
    if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address):
        return None  # judged by the IPv4 host it leads to, above
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "reserved"
    if not address.is_global:
        return "reserved"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def vet_host(
    host: str, port: int, resolver: Resolver = system_resolver, *, allow_private: bool = False
) -> list[str]:
    """The addresses to connect to; raises BlockedAddress unless every one is public
    (or allow_private)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except OSError as exc:
            raise BlockedAddress(f"{host} could not be resolved ({exc})") from exc
    if not addresses:
        raise BlockedAddress(f"{host} resolves to no address")
    for text in [] if allow_private else addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%")[0]))
        if problem:
            shown = host if host == text else f"{host} resolves to {text}, which"
            raise BlockedAddress(f"{shown} is a {problem} address; only public addresses are allowed")
    return addresses


def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> str:
    """A URL we may post to, normalised; raises ValueError with words for the user."""
    parts = urlsplit(url.strip())
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise ValueError("The webhook URL must start with https://")
    if not parts.hostname:
        raise ValueError("The webhook URL has no host name")
    if parts.username or parts.password:
        raise ValueError("The webhook URL must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"The webhook URL has a bad port: {exc}") from None
    if not allow_private:
        try:
            vet_host(parts.hostname, port, resolver)
        except BlockedAddress as exc:
            raise ValueError(f"The webhook URL is not allowed: {exc}") from None
    return parts.geturl()


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, resolver: Resolver, allow_private: bool) -> None:
        self.resolver = resolver
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in vet_host(host, port, self.resolver, allow_private=self.allow_private):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the host's next address
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are not allowed")


def guarded_client(
    *,
    allow_private: bool = False,
    timeout: float = 15.0,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """An httpx client whose every connection goes through the address guard."""
    context = ssl_context or ssl.create_default_context()
    transport = httpx.HTTPTransport(verify=context)
    # httpx takes no network backend, so the pool it built is replaced by one that has
    # ours (same options). tests/test_ssrf.py fails if an httpx upgrade changes this.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context,
        max_connections=20,
        max_keepalive_connections=5,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        network_backend=_GuardedBackend(resolver, allow_private),
    )
    return httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
