"""authenticate() end to end through the real dnspython resolver and a real DNS server
(dnsmasq on a loopback port) serving SPF, DKIM and DMARC records made at test time."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from gateway.detect.auth import authenticate
from gateway.detect.dkim import verify_dkim
from gateway.dns import DnsPythonResolver, DNSTempError, NXDomain
from gateway.testing import DkimKey, Dnsmasq, DnsRecord, make_message
from tests.conftest import require_dnsmasq

IP = "192.0.2.25"
ID = "vigie.test"


@pytest.fixture(scope="module")
def keys() -> tuple[DkimKey, DkimKey]:
    return (DkimKey.generate("cabinet-kine.fr", "rsa2048"),
            DkimKey.generate("cabinet-kine.fr", "ed", algorithm="ed25519-sha256"))


@pytest.fixture
def dns(keys: tuple[DkimKey, DkimKey]) -> Iterator[Dnsmasq]:
    require_dnsmasq()
    rsa, ed = keys
    server = Dnsmasq({
        "cabinet-kine.fr": [("TXT", f"v=spf1 ip4:{IP} -all"), ("MX", (10, "mx.cabinet-kine.fr"))],
        "mx.cabinet-kine.fr": [("A", IP), ("TXT", "v=spf1 a -all")],
        "_dmarc.cabinet-kine.fr": [("TXT", "v=DMARC1; p=reject; rua=mailto:d@cabinet-kine.fr")],
        rsa.name: [("TXT", rsa.record)],  # over 255 octets: several strings
        ed.name: [("TXT", ed.record)],
    })
    server.start()
    yield server
    server.close()


async def test_dnsmasq_serves_long_txt_and_nxdomain(dns: Dnsmasq,
                                                    keys: tuple[DkimKey, DkimKey]) -> None:
    resolver = DnsPythonResolver(dns.dns_config())
    assert len(keys[0].record) > 255
    assert await resolver.txt(keys[0].name) == [keys[0].record]
    assert await resolver.mx("cabinet-kine.fr") == [(10, "mx.cabinet-kine.fr")]
    with pytest.raises(NXDomain):
        await resolver.txt("_dmarc.unknown.example")
    assert await resolver.txt("mx.cabinet-kine.fr") == ["v=spf1 a -all"]
    assert await resolver.aaaa("mx.cabinet-kine.fr") == []


async def test_pass_then_spoof_then_dns_down(dns: Dnsmasq, keys: tuple[DkimKey, DkimKey]
                                            ) -> None:
    rsa, ed = keys
    resolver = DnsPythonResolver(dns.dns_config(timeout=1.0))
    signed = ed.sign(rsa.sign(make_message(sender="Camille <camille@cabinet-kine.fr>")))

    v = await authenticate(signed, mail_from="camille@cabinet-kine.fr",
                           helo="mx.cabinet-kine.fr", client_ip=IP, resolver=resolver,
                           authserv_id=ID)
    assert v.spf is not None and v.spf.result == "pass"
    assert [(r.selector, r.result) for r in v.dkim] == [("ed", "pass"), ("rsa2048", "pass")]
    assert (v.dmarc.result, v.vouched_for) == ("pass", True)
    assert "spf=pass" in v.authentication_results and "dmarc=pass" in v.authentication_results

    spoofed = make_message(sender="Camille <camille@cabinet-kine.fr>")
    v = await authenticate(spoofed, mail_from="bounce@bulk.example", helo="bulk.example",
                           client_ip="203.0.113.9", resolver=resolver, authserv_id=ID)
    assert (v.dmarc.result, v.policy, v.vouched_for) == ("fail", "reject", False)
    assert "dmarc=fail (p=reject)" in v.authentication_results

    dns.stop()
    v = await authenticate(signed, mail_from="camille@cabinet-kine.fr",
                           helo="mx.cabinet-kine.fr", client_ip=IP, resolver=resolver,
                           authserv_id=ID)
    assert v.spf is not None and v.spf.result == "temperror"
    assert v.helo_spf is not None and v.helo_spf.result == "temperror"
    assert [r.result for r in v.dkim] == ["temperror", "temperror"]
    assert v.dmarc.result == "temperror"
    assert v.vouched_for is None and v.policy == ""
    with pytest.raises(DNSTempError):
        await resolver.txt("cabinet-kine.fr")


async def test_body_altered_through_real_dns(dns: Dnsmasq, keys: tuple[DkimKey, DkimKey]
                                             ) -> None:
    rsa, _ed = keys
    raw = rsa.sign(make_message(body="Bilan du 3 mars.\r\n"))
    altered = raw.replace(b"3 mars", b"4 mars")
    results = await verify_dkim(altered, DnsPythonResolver(dns.dns_config()))
    assert [(r.result, r.reason) for r in results] == [("fail", "body hash mismatch")]


def test_dnsmasq_reports_a_bad_record_type() -> None:
    require_dnsmasq()
    server = Dnsmasq({"x.example": [("SRV", "0 0 5060 sip.x.example")]})
    try:
        with pytest.raises(ValueError, match="not supported"):
            server.start()
    finally:
        server.close()
    assert not server.workdir.exists()


async def test_dnsmasq_record_types() -> None:
    require_dnsmasq()
    records: dict[str, list[DnsRecord]] = {
        "a.example": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1")],
        "alias.example": [("CNAME", "a.example")],
        "5.2.0.192.in-addr.arpa": [("PTR", "p.example")],
        "t.example": [("TXT", ["deux ", "chaînes"]), ("TXT", 'guillemet " et \\ barre')],
    }
    with Dnsmasq(records) as server:
        resolver = DnsPythonResolver(server.dns_config())
        assert await resolver.a("alias.example") == [ipaddress.IPv4Address("192.0.2.1")]
        assert await resolver.aaaa("a.example") == [ipaddress.IPv6Address("2001:db8::1")]
        assert await resolver.ptr(ipaddress.ip_address("192.0.2.5")) == ["p.example"]
        assert sorted(await resolver.txt("t.example")) == sorted(
            ["deux chaînes", 'guillemet " et \\ barre'])
    assert not server.workdir.exists()
