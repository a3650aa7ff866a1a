"""iprev (RFC 8601 3): does the client IP's reverse name resolve back to that IP?

``await check_iprev(ip, resolver)`` returns an ``IprevResult``: ``pass`` (a PTR name
whose A/AAAA records include the IP), ``fail`` (PTR names, none resolving back),
``permerror`` (no PTR record), ``temperror`` (a DNS failure: never ``fail``). At most
``MAX_PTR_NAMES`` names are tried. A signal only: many honest small servers have
no matching reverse name.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.dns import DNSTempError, IPAddress, NXDomain, Resolver
from gateway.verdict import Outcome

IprevResultName = Literal["pass", "fail", "permerror", "temperror"]
MAX_PTR_NAMES = 10

_OUTCOMES: dict[str, Outcome] = {
    "pass": Outcome.PASS, "fail": Outcome.FAIL, "permerror": Outcome.PERMERROR,
    "temperror": Outcome.TEMPERROR,
}


@dataclass(frozen=True, slots=True)
class IprevResult:
    """``name`` is the confirmed reverse name (pass), or the first PTR name."""

    result: IprevResultName
    ip: str
    name: str = ""
    reason: str = ""

    @property
    def outcome(self) -> Outcome:
        return _OUTCOMES[self.result]


async def _forward(name: str, ip: IPAddress, resolver: Resolver
                   ) -> Sequence[IPAddress] | DNSTempError:
    try:
        if isinstance(ip, ipaddress.IPv4Address):
            return await resolver.a(name)
        return await resolver.aaaa(name)
    except NXDomain:
        return []
    except DNSTempError as exc:
        return exc


async def check_iprev(ip: IPAddress | str, resolver: Resolver) -> IprevResult:
    """The iprev result for ``ip`` (see the module docstring)."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    text = str(address)
    try:
        names = [n for n in await resolver.ptr(address) if n][:MAX_PTR_NAMES]
    except NXDomain:
        names = []
    except DNSTempError:
        return IprevResult("temperror", text, reason="DNS error on the PTR lookup")
    if not names:
        return IprevResult("permerror", text, reason="no PTR record")
    answers = await asyncio.gather(*(_forward(n, address, resolver) for n in names))
    for name, answer in zip(names, answers, strict=True):
        if not isinstance(answer, DNSTempError) and address in answer:
            return IprevResult("pass", text, name)
    if any(isinstance(a, DNSTempError) for a in answers):
        return IprevResult("temperror", text, names[0], "DNS error on a forward lookup")
    return IprevResult("fail", text, names[0], "no PTR name resolves back to the IP")
