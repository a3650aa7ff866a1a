"""iprev (RFC 8601 3) over the in-memory resolver."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.detect.authres import build_value
from gateway.detect.iprev import check_iprev
from gateway.testing import TIMEOUT, FakeRecord, FakeResolver

REV4 = "10.2.0.192.in-addr.arpa"


@pytest.mark.parametrize(("zone", "result", "name"), [
    ({REV4: [("PTR", "mx.x.fr")], "mx.x.fr": [("A", "192.0.2.10")]}, "pass", "mx.x.fr"),
    ({REV4: [("PTR", "a.x.fr"), ("PTR", "mx.x.fr")], "mx.x.fr": [("A", "192.0.2.10")]},
     "pass", "mx.x.fr"),
    ({REV4: [("PTR", "mx.x.fr")], "mx.x.fr": [("A", "192.0.2.99")]}, "fail", "mx.x.fr"),
    ({REV4: [("PTR", "mx.x.fr")]}, "fail", "mx.x.fr"),
    ({}, "permerror", ""),
    ({REV4: []}, "permerror", ""),
    ({REV4: [TIMEOUT]}, "temperror", ""),
    ({REV4: [("PTR", "mx.x.fr")], "mx.x.fr": [TIMEOUT]}, "temperror", "mx.x.fr"),
])
async def test_iprev(zone: dict[str, list[FakeRecord]], result: str, name: str) -> None:
    r = await check_iprev("192.0.2.10", FakeResolver(zone))
    assert (r.result, r.name) == (result, name)


async def test_iprev_ipv6_and_mapped() -> None:
    ip6 = ipaddress.IPv6Address("2001:db8::25")
    zone: dict[str, list[FakeRecord]] = {ip6.reverse_pointer: [("PTR", "mx6.x.fr")],
                                         "mx6.x.fr": [("AAAA", "2001:db8::25")],
                                         REV4: [("PTR", "mx.x.fr")],
                                         "mx.x.fr": [("A", "192.0.2.10")]}
    assert (await check_iprev(ip6, FakeResolver(zone))).result == "pass"
    assert (await check_iprev("::ffff:192.0.2.10", FakeResolver(zone))).result == "pass"


async def test_iprev_in_the_header() -> None:
    r = await check_iprev("192.0.2.10", FakeResolver({}))
    assert build_value("v.test", iprev=r) == \
        "v.test; iprev=permerror (no PTR record) policy.iprev=192.0.2.10"
