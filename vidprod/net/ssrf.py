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

# Named for the error message; anything else that is not globally routable is refused too.
_NAMED_RANGES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fdaa::/16", "Fly.io private network"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
]
_RANGES = [(ipaddress.ip_network(net), name) for net, name in _NAMED_RANGES]


class BlockedAddress(httpcore.ConnectError):
    """The URL leads to an address we refuse to connect to."""


def address_problem(address: IPAddress) -> str | None:
    """Why this address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d, 64:ff9b::a.b.c.d (NAT64) and 2002:a.b.c.d:: (6to4) reach IPv4 hosts.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_problem(embedded)
            return f"{inner} (IPv4 inside IPv6)" if inner else None
    for network, name in _RANGES:
        if address.version == network.version and address in network:
            return name
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
