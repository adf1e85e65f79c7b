"""Which hosts an HTTP step may connect to: the allow-list and the default refusal.

``RUVON_HTTP_ALLOWED_HOSTS`` (comma-separated host names, ``*.domain`` patterns and IP
networks such as ``10.0.0.0/8`` or ``127.0.0.1``), when set, is the only way out: a host
it names may be reached whatever it resolves to, an address in one of its networks may be
reached, nothing else may. When it is not set, any host whose every address is public may
be reached; loopback, private (RFC 1918, ULA), link-local (the cloud metadata address
169.254.169.254 among them), unspecified, multicast and reserved addresses are refused. A
step's ``http_config.allowed_hosts`` (same entries) is checked on top of that: it narrows,
it never lets through what the rule above refuses.

The check is on the addresses a name resolves to, made where the connection is opened
(``http_transport``): this module only decides. It imports nothing that opens a socket.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..errors import HostRefused

ALLOWED_HOSTS_ENV = "RUVON_HTTP_ALLOWED_HOSTS"
STEP_SETTING = "http_config.allowed_hosts"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class AllowList:
    """Host names (``api.example.com``), subdomain patterns (``*.example.com``: any name
    under example.com, not example.com itself) and IP networks."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Raises ``ValueError`` naming the first entry that is none of the three."""
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            network = _network(entry)
            if network is not None:
                networks.append(network)
            elif entry.startswith("*.") and _is_name(entry[2:]):
                suffixes.append(entry[1:])
            elif _is_name(entry):
                names.add(entry)
            else:
                raise ValueError(f"{raw.strip()!r} is not a host name, a *.domain pattern or "
                                 "an IP network (e.g. api.example.com, *.example.com, "
                                 "10.0.0.0/8)")
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def names_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.names or host.endswith(self.suffixes)

    def admits(self, host: str, address: Address) -> bool:
        return self.names_host(host) or any(address in net for net in self.networks
                                            if net.version == address.version)


@lru_cache(maxsize=64)
def parse_env(value: str) -> AllowList | None:
    """The allow-list of ``RUVON_HTTP_ALLOWED_HOSTS``'s value; None when it is empty."""
    entries = [part for part in value.split(",") if part.strip()]
    if not entries:
        return None
    try:
        return AllowList.parse(entries)
    except ValueError as exc:
        raise ValueError(f"{ALLOWED_HOSTS_ENV}: {exc}") from None


@dataclass(frozen=True)
class HostGuard:
    """The rule for one request: the environment's allow-list (None: the default rule)
    and the step's own (None: no narrowing)."""

    env: AllowList | None
    step: AllowList | None = None

    @classmethod
    def for_step(cls, allowed_hosts: Sequence[str] | None) -> HostGuard:
        """Reads ``RUVON_HTTP_ALLOWED_HOSTS`` now. Raises ``ValueError`` on a bad entry."""
        env = parse_env(os.environ.get(ALLOWED_HOSTS_ENV, ""))
        step = None
        if allowed_hosts is not None:
            try:
                step = AllowList.parse(allowed_hosts)
            except ValueError as exc:
                raise ValueError(f"{STEP_SETTING}: {exc}") from None
        return cls(env, step)

    def check(self, host: str, addresses: Sequence[Address]) -> None:
        """Raise :class:`HostRefused` unless every address of ``host`` may be reached."""
        if not addresses:
            raise HostRefused(host, None, "it resolves to no address")
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise HostRefused(host, address, reason)

    def refusal(self, host: str, address: Address) -> str | None:
        """Why ``host`` at ``address`` may not be reached, or None."""
        if self.env is not None:
            if not self.env.admits(host, address):
                return f"it is not in {ALLOWED_HOSTS_ENV}; add it there to allow it"
        else:
            kind = non_public(address)
            if kind is not None:
                return (f"{kind} addresses are refused by default; list the host in "
                        f"{ALLOWED_HOSTS_ENV} to allow it")
        if self.step is not None and not self.step.admits(host, address):
            return f"it is not in the step's {STEP_SETTING}"
        return None


def non_public(address: Address) -> str | None:
    """What kind of non-public address ``address`` is (``'loopback'``...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if embedded is not None:
            return non_public(embedded)
    for kind, hit in (("loopback", address.is_loopback),
                      ("unspecified", address.is_unspecified),
                      ("link-local", address.is_link_local),
                      ("multicast", address.is_multicast),
                      ("private", address.is_private),
                      ("reserved", address.is_reserved)):
        if hit:
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    return None if address.is_global else "non-public"


def _network(entry: str) -> Network | None:
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _is_name(text: str) -> bool:
    labels = text.split(".")
    return all(0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum()
               and label.isascii() for label in labels)
