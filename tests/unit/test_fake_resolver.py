"""FakeResolver keeps the result model of gateway.dns: records, no data, NXDOMAIN, timeout."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.dns import DNSTempError, NXDomain
from gateway.testing import TIMEOUT, FakeResolver


async def test_records_no_data_and_nxdomain() -> None:
    dns = FakeResolver({"Example.COM.": [("TXT", ["v=spf1 ", "-all"]), ("A", "192.0.2.1"),
                                         ("MX", (10, "MX.example.com."))],
                        "empty.example.com": []})
    assert await dns.txt("example.com") == ["v=spf1 -all"]
    assert await dns.a("EXAMPLE.com.") == [ipaddress.IPv4Address("192.0.2.1")]
    assert await dns.mx("example.com") == [(10, "mx.example.com")]
    assert await dns.aaaa("example.com") == []
    assert await dns.txt("empty.example.com") == []
    with pytest.raises(NXDomain):
        await dns.txt("other.example.com")
    assert dns.queries[0] == ("TXT", "example.com")


async def test_timeouts() -> None:
    dns = FakeResolver({"slow.example": [TIMEOUT], "half.example": [("TXT", "x"), TIMEOUT],
                        "a.example": [("A", TIMEOUT), ("TXT", "y")]})
    with pytest.raises(DNSTempError):
        await dns.txt("slow.example")
    assert await dns.txt("half.example") == ["x"]
    with pytest.raises(DNSTempError):
        await dns.a("half.example")
    with pytest.raises(DNSTempError):
        await dns.a("a.example")
    assert await dns.txt("a.example") == ["y"]


async def test_cname_and_ptr() -> None:
    dns = FakeResolver({"alias.example": [("CNAME", "host.example.")],
                        "host.example": [("AAAA", "2001:db8::1")],
                        "loop1.example": [("CNAME", "loop2.example")],
                        "loop2.example": [("CNAME", "loop1.example")],
                        "1.2.0.192.in-addr.arpa": [("PTR", "host.example.")]})
    assert await dns.aaaa("alias.example") == [ipaddress.IPv6Address("2001:db8::1")]
    with pytest.raises(DNSTempError):
        await dns.a("loop1.example")
    assert await dns.ptr(ipaddress.IPv4Address("192.0.2.1")) == ["host.example"]
