"""One async DNS resolver, injectable: the protocol the checks use, and dnspython behind it.

The result model, the same for every implementation (see ``gateway.testing.FakeResolver``):

- a list of records: the name exists; an empty list is "no data" (NOERROR, no answer);
- ``NXDomain``: the name does not exist (RCODE 3), or cannot exist (invalid name);
- ``DNSTempError``: timeout, SERVFAIL, refused, no server answered: try again later.

"No data" and ``NXDomain`` together are what RFC 7208 calls a *void lookup*.
CNAME chains are followed by the resolver; callers only see the final records.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from gateway.config import DNSConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DNSError(Exception):
    """Base of the resolver's errors."""


class NXDomain(DNSError):
    """The name does not exist (RCODE 3 "Name Error"), or is not a valid domain name."""


class DNSTempError(DNSError):
    """Timeout, SERVFAIL or another transient failure: the answer is unknown."""


class Resolver(Protocol):
    """What the checks need from DNS. Names are given without or with the final dot."""

    async def txt(self, name: str) -> list[str]:
        """TXT records of ``name``, each one's strings glued (UTF-8, bad bytes as U+FFFD)."""
        ...

    async def a(self, name: str) -> list[ipaddress.IPv4Address]:
        """A records of ``name``."""
        ...

    async def aaaa(self, name: str) -> list[ipaddress.IPv6Address]:
        """AAAA records of ``name``."""
        ...

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """MX records of ``name`` as (preference, exchange without the final dot; "" for
        a null MX)."""
        ...

    async def ptr(self, ip: IPAddress) -> list[str]:
        """PTR names of the reverse name of ``ip``, without the final dot."""
        ...


def decode_txt(strings: list[bytes] | tuple[bytes, ...]) -> str:
    """The character-strings of one TXT record glued together with no separator."""
    return b"".join(strings).decode("utf-8", errors="replace")


def _host(name: dns.name.Name) -> str:
    """A name without the final dot; the root (a null MX, RFC 7505) is ""."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True)


class DnsPythonResolver:
    """``Resolver`` over ``dns.asyncresolver``, configured from ``[dns]``.

    Empty ``nameservers`` means the system's configuration (/etc/resolv.conf);
    ``timeout`` bounds each whole query (all servers and retries together).
    """

    def __init__(self, cfg: DNSConfig | None = None) -> None:
        cfg = cfg or DNSConfig()
        if cfg.nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(cfg.nameservers)
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration as exc:
                raise ValueError(
                    "no DNS server: [dns] nameservers is empty and the system has no "
                    "resolver configuration (/etc/resolv.conf); set [dns] nameservers"
                ) from exc
        if cfg.port:
            self._resolver.port = cfg.port
        self._resolver.timeout = cfg.timeout
        self._resolver.lifetime = cfg.timeout

    async def _query(self, name: str | dns.name.Name, rdtype: dns.rdatatype.RdataType
                     ) -> dns.resolver.Answer:
        if isinstance(name, dns.name.Name):
            qname = name
        else:
            try:  # a name that cannot be written in DNS cannot exist
                qname = dns.name.from_text(name)
            except dns.exception.DNSException as exc:
                raise NXDomain(f"invalid domain name {name!r}: {exc}") from exc
        try:
            return await self._resolver.resolve(qname, rdtype, search=False,
                                                raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN) as exc:
            raise NXDomain(str(exc)) from exc
        except dns.exception.DNSException as exc:  # Timeout, NoNameservers (SERVFAIL)…
            raise DNSTempError(f"{type(exc).__name__}: {exc}") from exc

    async def txt(self, name: str) -> list[str]:
        answer = await self._query(name, dns.rdatatype.TXT)
        return [decode_txt(rr.strings) for rr in answer]

    async def a(self, name: str) -> list[ipaddress.IPv4Address]:
        answer = await self._query(name, dns.rdatatype.A)
        return [ipaddress.IPv4Address(rr.address) for rr in answer]

    async def aaaa(self, name: str) -> list[ipaddress.IPv6Address]:
        answer = await self._query(name, dns.rdatatype.AAAA)
        return [ipaddress.IPv6Address(rr.address) for rr in answer]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        answer = await self._query(name, dns.rdatatype.MX)
        return [(int(rr.preference), _host(rr.exchange)) for rr in answer]

    async def ptr(self, ip: IPAddress) -> list[str]:
        answer = await self._query(dns.reversename.from_address(str(ip)), dns.rdatatype.PTR)
        return [_host(rr.target) for rr in answer]
