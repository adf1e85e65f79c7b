"""The rule deciding where an HTTP step may connect (``engine/http_guard.py``), on
addresses; ``test_http_step.py`` runs it against real servers."""

from __future__ import annotations

import pickle
from ipaddress import ip_address

import pytest

from ruvon_workers.engine.http_guard import AllowList, HostGuard, non_public, parse_env
from ruvon_workers.errors import HostRefused

REFUSED_BY_DEFAULT = [
    ("127.0.0.1", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),                      # ULA
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),                 # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),             # NAT64 of 169.254.169.254
    ("2002:a00:1::", "private"),                      # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize(("address", "kind"), REFUSED_BY_DEFAULT)
def test_non_public_addresses(address: str, kind: str) -> None:
    assert non_public(ip_address(address)) == kind


# Their kind depends on the Python version's tables; refused either way.
@pytest.mark.parametrize("address", ["100.64.0.1", "240.0.0.1", "198.18.0.1", "192.0.2.1",
                                     "2001:db8::1", "::7f00:1", "fec0::1"])
def test_other_non_public_addresses(address: str) -> None:
    assert non_public(ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert non_public(ip_address(address)) is None


def test_by_default_every_address_must_be_public() -> None:
    guard = HostGuard(env=None)
    guard.check("api.example.com", [ip_address("93.184.216.34")])
    with pytest.raises(HostRefused) as info:
        guard.check("api.example.com", [ip_address("93.184.216.34"), ip_address("10.0.0.8")])
    assert str(info.value) == (
        "host 'api.example.com' (address 10.0.0.8) is refused: private addresses are refused "
        "by default; list the host in RUVON_HTTP_ALLOWED_HOSTS to allow it")
    assert info.value.retryable is False
    copy = pickle.loads(pickle.dumps(info.value))
    assert (str(copy), copy.host, copy.address) == (str(info.value), "api.example.com",
                                                     "10.0.0.8")


def test_the_allow_list_matches_names_patterns_and_networks() -> None:
    allowed = AllowList.parse(["API.example.com.", "*.corp.example", "10.0.0.0/8", "[::1]",
                               "127.0.0.1"])
    public, private = ip_address("93.184.216.34"), ip_address("10.1.2.3")
    assert allowed.admits("api.example.com", public)
    assert allowed.admits("api.example.com", private)   # a named host: whatever it resolves to
    assert allowed.admits("db.eu.corp.example", private)
    assert not allowed.admits("corp.example", public)   # the pattern is for subdomains
    assert not allowed.admits("other.example.com", public)
    assert allowed.admits("anything.test", private)     # in 10.0.0.0/8
    assert allowed.admits("127.0.0.1", ip_address("127.0.0.1"))
    assert allowed.admits("::1", ip_address("::1"))
    assert not allowed.admits("127.0.0.2", ip_address("127.0.0.2"))


@pytest.mark.parametrize("entry", ["http://api.example.com", "api.example.com:443",
                                   "*", "a b", "10.0.0.0/33", "exa*mple.com"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="is not a host name, a"):
        AllowList.parse([entry])


def test_the_environment_value() -> None:
    assert parse_env("") is None and parse_env(" , ") is None
    allowed = parse_env("localhost, 127.0.0.1")
    assert allowed is not None and allowed.names_host("LOCALHOST")
    with pytest.raises(ValueError, match=r"^RUVON_HTTP_ALLOWED_HOSTS: 'x:1' is not"):
        parse_env("x:1")


def test_with_an_allow_list_only_what_it_lists_is_reached() -> None:
    guard = HostGuard(env=AllowList.parse(["api.example.com"]))
    guard.check("api.example.com", [ip_address("93.184.216.34")])
    with pytest.raises(HostRefused, match="it is not in RUVON_HTTP_ALLOWED_HOSTS; add it"):
        guard.check("www.example.com", [ip_address("93.184.216.34")])


def test_the_steps_list_narrows_and_never_widens() -> None:
    public = [ip_address("93.184.216.34")]
    step = AllowList.parse(["api.example.com", "127.0.0.1"])
    narrowed = HostGuard(env=None, step=step)
    narrowed.check("api.example.com", public)
    with pytest.raises(HostRefused, match=r"it is not in the step's http_config\.allowed_hosts"):
        narrowed.check("www.example.com", public)
    with pytest.raises(HostRefused, match="loopback addresses are refused by default"):
        narrowed.check("127.0.0.1", [ip_address("127.0.0.1")])
    both = HostGuard(env=AllowList.parse(["*.example.com"]), step=step)
    both.check("api.example.com", public)
    with pytest.raises(HostRefused, match="not in RUVON_HTTP_ALLOWED_HOSTS"):
        both.check("127.0.0.1", [ip_address("127.0.0.1")])


def test_a_host_without_addresses_is_refused() -> None:
    with pytest.raises(HostRefused, match=r"^host 'nowhere' is refused: it resolves to no"):
        HostGuard(env=None).check("nowhere", [])


def test_the_demo_lets_its_worker_reach_the_carrier_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.cli.demo import _allowing

    monkeypatch.delenv("RUVON_HTTP_ALLOWED_HOSTS", raising=False)
    assert _allowing("http://127.0.0.1:8123") == "127.0.0.1"
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "api.example.com")
    assert _allowing("http://127.0.0.1:8123") == "api.example.com,127.0.0.1"
