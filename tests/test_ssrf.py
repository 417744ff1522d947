"""The address guard for webhook URLs: refusals by class, at connect time, and TLS."""

from __future__ import annotations

import ipaddress
import ssl

import httpx
import pytest
import trustme

from tests.receiver import Reply, running_receiver
from vidprod.net.ssrf import address_problem, check_url, guarded_client

PUBLIC = "93.184.215.14"


def public_resolver(host: str, port: int) -> list[str]:
    return [PUBLIC]


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("[fdaa::3]", "Fly.io private network"),
        ("[fdaa:0:1:a7b::2]", "Fly.io private network"),
        ("[fd12::1]", "unique local"),
        ("[::ffff:127.0.0.1]", "loopback (IPv4 inside IPv6)"),
        ("[::ffff:10.0.0.1]", "private (IPv4 inside IPv6)"),
        ("[::ffff:169.254.169.254]", "link-local (IPv4 inside IPv6)"),
        ("[64:ff9b::a00:1]", "private (IPv4 inside IPv6)"),
        ("[2002:7f00:1::]", "loopback (IPv4 inside IPv6)"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.1", "documentation"),
        ("240.0.0.1", "reserved"),
        # issue 20 finding 9: IPv4 inside IPv4-compatible and local-use NAT64 forms, and the
        # IANA special-purpose rows Python's ipaddress still calls global
        ("[::7f00:1]", "loopback (IPv4 inside IPv6)"),
        ("[::127.0.0.1]", "loopback (IPv4 inside IPv6)"),
        ("[::a00:1]", "private (IPv4 inside IPv6)"),
        ("[::8.8.8.8]", "deprecated IPv4-compatible"),
        ("[64:ff9b:1::7f00:1]", "local-use NAT64"),
        ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "loopback (IPv4 inside IPv6)"),
        ("192.0.0.8", "IETF protocol assignment"),
        ("192.0.0.170", "IETF protocol assignment"),
        ("198.18.0.1", "benchmarking"),
        ("203.0.113.5", "documentation"),
        ("255.255.255.255", "reserved"),
        ("[2001:db8::1]", "documentation"),
        ("[3fff::1]", "documentation"),
        ("[100::1]", "discard-only"),
        ("[5f00::1]", "segment routing"),
        ("[2001:2::1]", "IETF protocol assignment"),
    ],
)
def test_every_non_public_address_class_is_refused(host, kind):
    with pytest.raises(ValueError, match="not allowed") as refused:
        check_url(f"https://{host}/hook", allow_private=False, resolver=public_resolver)
    assert kind in str(refused.value)


def test_public_addresses_pass():
    assert check_url("https://hooks.example.com/x?y=1", allow_private=False, resolver=public_resolver)
    assert address_problem(ipaddress.ip_address("2606:4700::1111")) is None
    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None


@pytest.mark.parametrize(
    "address",
    ["192.0.0.9", "192.0.0.10", "2001:1::1", "2001:4:112::1", "2001:20::1", "64:ff9b::808:808",
     "::ffff:8.8.8.8", "2002:808:808::1"],
)
def test_special_purpose_rows_the_registry_calls_globally_reachable_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["[::7f00:1]", "[::127.0.0.1]", "[64:ff9b:1::7f00:1]", "192.0.0.8"])
def test_the_probes_addresses_are_refused_at_connect_time(host):
    """A name that resolves to one of these at connect time is refused before any byte."""
    literal = host.strip("[]")
    with running_receiver() as receiver:
        url = f"https://probe.example:{receiver.port}/hook"
        with guarded_client(resolver=lambda h, p: [literal]) as client:
            with pytest.raises(httpx.ConnectError, match="only public addresses"):
                client.post(url, content=b"{}")
        with guarded_client() as client, pytest.raises(httpx.ConnectError, match="only public"):
            client.post(f"https://{host}:{receiver.port}/hook", content=b"{}")
        assert receiver.requests == []


def test_a_hostname_that_resolves_to_loopback_is_refused():
    with pytest.raises(ValueError, match="localhost resolves to .* loopback"):
        check_url("https://localhost/hook", allow_private=False)


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(ValueError, match="10.0.0.7, which is a private"):
        check_url(
            "https://mixed.example/hook", allow_private=False, resolver=lambda h, p: [PUBLIC, "10.0.0.7"]
        )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.example.com/x", "https://"),
        ("ftp://hooks.example.com/x", "https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com:99999/", "bad port"),
    ],
)
def test_url_shape_rules(url, words):
    with pytest.raises(ValueError, match=words):
        check_url(url, allow_private=False, resolver=public_resolver)


def test_the_guard_acts_at_connect_time_against_dns_rebinding():
    """The name looked public when the URL was checked; at connect time it answers
    loopback. The guard resolves once, itself, and refuses before any byte is sent."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    with running_receiver() as receiver:
        url = f"https://rebind.example:{receiver.port}/hook"
        check_url(url, allow_private=False, resolver=rebinding)  # the first answer passes
        with guarded_client(resolver=rebinding) as client, pytest.raises(httpx.ConnectError, match="loopback"):
            client.post(url, content=b"{}")
        assert receiver.requests == []


def test_literal_loopback_is_refused_at_connect_time_too():
    with running_receiver() as receiver:
        with guarded_client() as client, pytest.raises(httpx.ConnectError, match="loopback"):
            client.post(receiver.url, content=b"{}")
        assert receiver.requests == []


def test_redirects_are_not_followed():
    with running_receiver() as target, running_receiver() as receiver:
        receiver.script = [Reply(307, headers={"Location": target.url})]
        with guarded_client(allow_private=True) as client:
            response = client.post(receiver.url, content=b"{}")
        assert response.status_code == 307
        assert target.requests == []


def test_tls_is_checked_against_the_hostname_while_connecting_to_the_vetted_address(tmp_path):
    """The connection goes to the address the guard resolved, and the certificate is still
    verified for the name in the URL (SNI), so pinning the address costs no security."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    pinned = lambda host, port: ["127.0.0.1"]  # noqa: E731 - the test's DNS
    with running_receiver(ssl_context=server_context) as receiver:
        url = f"https://hooks.test:{receiver.port}/hook"
        with guarded_client(allow_private=True, resolver=pinned, ssl_context=client_context) as client:
            assert client.post(url, content=b"{}").status_code == 200
        assert receiver.requests[0].headers["host"] == f"hooks.test:{receiver.port}"
        wrong_name = f"https://other.test:{receiver.port}/hook"
        with guarded_client(allow_private=True, resolver=pinned, ssl_context=client_context) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                client.post(wrong_name, content=b"{}")
