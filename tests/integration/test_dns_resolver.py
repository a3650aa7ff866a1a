"""The dnspython resolver against a small DNS server on loopback: records, NXDOMAIN, no
data, SERVFAIL and silence map onto the result model that the SPF evaluator relies on."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from gateway.config import DNSConfig
from gateway.detect.spf import check_host
from gateway.dns import DnsPythonResolver, DNSTempError, NXDomain

ZONE: dict[tuple[str, str], list[str]] = {
    ("example.test.", "TXT"): ['"v=spf1 " "ip4:192.0.2.0/24 " "a:mail.example.test -all"',
                               '"hello world"'],
    ("example.test.", "MX"): ["10 mail.example.test.", "20 ."],
    ("mail.example.test.", "A"): ["198.51.100.7"],
    ("mail.example.test.", "AAAA"): ["2001:db8::7"],
    ("7.100.51.198.in-addr.arpa.", "PTR"): ["mail.example.test."],
    ("bad-utf8.test.", "TXT"): ['"caf\\233"'],
}
CNAMES = {"alias.example.test.": "mail.example.test."}
EXISTS = {name for name, _ in ZONE} | set(CNAMES)


class _Server(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        if name.startswith("silent."):
            return
        response = dns.message.make_response(query)
        if name.startswith("servfail."):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in CNAMES:
            target = CNAMES[name]
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", target))
            values = ZONE.get((target, rdtype), [])
            if values:
                response.answer.append(dns.rrset.from_text(target, 60, "IN", rdtype, *values))
        elif name not in EXISTS:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in ZONE:
            response.answer.append(
                dns.rrset.from_text(name, 60, "IN", rdtype, *ZONE[(name, rdtype)]))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def resolver() -> AsyncIterator[DnsPythonResolver]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Server, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    yield DnsPythonResolver(DNSConfig(nameservers=["127.0.0.1"], port=port, timeout=0.5))
    transport.close()


async def test_records(resolver: DnsPythonResolver) -> None:
    assert sorted(await resolver.txt("example.test")) == [
        "hello world", "v=spf1 ip4:192.0.2.0/24 a:mail.example.test -all"]
    assert await resolver.txt("bad-utf8.test.") == ["caf\ufffd"]
    assert sorted(await resolver.mx("example.test")) == [(10, "mail.example.test"), (20, "")]
    assert await resolver.a("mail.example.test") == [ipaddress.IPv4Address("198.51.100.7")]
    assert await resolver.aaaa("mail.example.test") == [ipaddress.IPv6Address("2001:db8::7")]
    assert await resolver.ptr(ipaddress.ip_address("198.51.100.7")) == ["mail.example.test"]
    assert await resolver.a("alias.example.test") == [ipaddress.IPv4Address("198.51.100.7")]


async def test_no_data_is_an_empty_list(resolver: DnsPythonResolver) -> None:
    assert await resolver.a("example.test") == []
    assert await resolver.txt("mail.example.test") == []


async def test_nxdomain_and_invalid_names(resolver: DnsPythonResolver) -> None:
    with pytest.raises(NXDomain):
        await resolver.txt("nowhere.example.test")
    with pytest.raises(NXDomain):
        await resolver.a("a..example.test")
    with pytest.raises(NXDomain):
        await resolver.a("x" * 64 + ".example.test")


async def test_servfail_and_silence_are_temporary(resolver: DnsPythonResolver) -> None:
    with pytest.raises(DNSTempError):
        await resolver.txt("servfail.example.test")
    started = time.monotonic()
    with pytest.raises(DNSTempError):
        await resolver.txt("silent.example.test")
    assert time.monotonic() - started < 3


async def test_spf_over_the_real_resolver(resolver: DnsPythonResolver) -> None:
    r = await check_host("198.51.100.7", "example.test", "a@example.test", "h", resolver)
    assert (r.result, r.mechanism) == ("pass", "a:mail.example.test")
    r = await check_host("203.0.113.1", "example.test", "a@example.test", "h", resolver)
    assert r.result == "fail"
    r = await check_host("203.0.113.1", "servfail.example.test", "a@x", "h", resolver)
    assert r.result == "temperror"
