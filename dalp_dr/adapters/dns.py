"""Name resolution the way a platform's clients do it, so a drill whose route is DNS sees
the route switch when they would (dnspython).

With nameservers from the inventory (``dalp_dns_nameservers``), a caching stub resolver asks
them and keeps each answer for its TTL, as a client's resolver library or a site resolver
does. Without, the system's resolver (``getaddrinfo``: /etc/hosts, /etc/resolv.conf, nscd
where the machine runs one). Each change of answer is noted, with where it came from, so a drill
can say when the first client resolved the new address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from datetime import datetime

import dns.exception
import dns.name
import dns.nameserver
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from pydantic import BaseModel

from dalp_dr.clock import utcnow
from dalp_dr.errors import EndpointError


class Resolution(BaseModel, frozen=True):
    """One lookup: the addresses a client got for a name, when, and from where."""

    name: str
    addresses: tuple[str, ...]
    at: datetime
    source: str
    """``server`` (asked a nameserver), ``cache`` (an answer within its TTL), ``system``
    (getaddrinfo) or ``literal`` (the URL holds an address)"""
    ttl: int | None = None
    """the answer's TTL when a nameserver gave it"""


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    """``address`` or ``address:port`` (``[v6]:port``) as a nameserver."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, tail = text.partition(":")
        port = int(tail)
    ipaddress.ip_address(host)  # ValueError for a name: nameservers are addresses
    return dns.nameserver.Do53Nameserver(host, port)


def nameservers(values: list[str]) -> list[dns.nameserver.Do53Nameserver]:
    """Parse inventory nameservers; ValueError naming the one that is not an address."""
    out = []
    for value in values:
        try:
            out.append(_nameserver(str(value).strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not an address or address:port") from None
    return out


class ClientResolver:
    """Resolves host names for one population's clients (thread-safe)."""

    def __init__(self, servers: list[str] | None = None, *,
                 on_change: Callable[[Resolution], None] | None = None) -> None:
        self._resolver: dns.resolver.Resolver | None = None
        if servers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers(servers))
            resolver.cache = dns.resolver.Cache()
            self._resolver = resolver
        self._lock = threading.Lock()
        self.on_change = on_change
        self._changes: list[Resolution] = []
        self._last: dict[str, frozenset[str]] = {}

    @property
    def changes(self) -> list[Resolution]:
        """Per name, the first lookup and every one whose set of addresses differs from the
        name's one before (the order within an answer is not a change)."""
        with self._lock:
            return list(self._changes)

    def resolve(self, name: str, port: int, *, timeout: float) -> str:
        """One address for ``name`` (the first the answer gives); EndpointError when the
        name does not resolve in time."""
        try:
            ipaddress.ip_address(name)
            literal: str | None = name
        except ValueError:
            literal = None
        if literal is not None:
            return self._note(Resolution(name=name, addresses=(name,), at=utcnow(),
                                         source="literal"))[0]
        if self._resolver is None:
            return self._note(self._system(name, port, timeout))[0]
        resolver = self._resolver
        assert resolver.cache is not None
        cached = resolver.cache.get((dns.name.from_text(name), dns.rdatatype.A,
                                     dns.rdataclass.IN))
        try:
            answer = resolver.resolve(name, "A", lifetime=timeout, search=False)
        except dns.resolver.NXDOMAIN:
            raise EndpointError(f"{name} does not exist (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            raise EndpointError(f"{name} has no A record") from None
        except dns.exception.Timeout:
            raise EndpointError(f"resolving {name}: no answer within {timeout:g}s") from None
        except dns.exception.DNSException as exc:
            raise EndpointError(f"resolving {name}: {exc}") from None
        addresses = tuple(str(r) for r in answer)
        return self._note(Resolution(
            name=name, addresses=addresses, at=utcnow(),
            source="cache" if cached is not None else "server",
            ttl=answer.rrset.ttl if answer.rrset is not None else None))[0]

    @staticmethod
    def _system(name: str, port: int, timeout: float) -> Resolution:
        del timeout  # getaddrinfo has no timeout of its own: the system's resolv.conf sets it
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise EndpointError(f"resolving {name}: {exc.strerror}") from None
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        return Resolution(name=name, addresses=addresses, at=utcnow(), source="system")

    def _note(self, resolution: Resolution) -> tuple[str, ...]:
        if not resolution.addresses:
            raise EndpointError(f"{resolution.name} resolved to no address")
        with self._lock:
            now = frozenset(resolution.addresses)
            changed = self._last.get(resolution.name) != now
            if changed:
                self._last[resolution.name] = now
                self._changes.append(resolution)
        if changed and self.on_change is not None:
            self.on_change(resolution)
        return resolution.addresses
