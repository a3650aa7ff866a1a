"""authenticate(): SPF, DKIM, ARC and DMARC combined over the in-memory resolver."""

from __future__ import annotations

import random

import pytest

from gateway.detect.auth import authenticate
from gateway.detect.authres import parse_value
from gateway.testing import TIMEOUT, DkimKey, FakeRecord, FakeResolver, make_message

IP = "192.0.2.10"
ID = "vigie.test"


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return DkimKey.generate("cabinet-kine.fr", "s1")


def zone(key: DkimKey, *, dmarc: str | None = "v=DMARC1; p=reject",
         extra: dict[str, list[FakeRecord]] | None = None) -> FakeResolver:
    records: dict[str, list[FakeRecord]] = {
        "cabinet-kine.fr": [("TXT", f"v=spf1 ip4:{IP} -all")],
        "mx.cabinet-kine.fr": [("TXT", f"v=spf1 ip4:{IP} -all"), ("A", IP)],
        key.name: [("TXT", key.record)],
    }
    if dmarc is not None:
        records["_dmarc.cabinet-kine.fr"] = [("TXT", dmarc)]
    records.update(extra or {})
    return FakeResolver(records)


async def test_all_pass(key: DkimKey) -> None:
    raw = key.sign(make_message(sender="Camille <camille@cabinet-kine.fr>"))
    v = await authenticate(raw, mail_from="camille@cabinet-kine.fr", helo="mx.cabinet-kine.fr",
                           client_ip=IP, resolver=zone(key), authserv_id=ID)
    assert v.spf is not None and v.spf.result == "pass"
    assert v.helo_spf is not None and v.helo_spf.result == "pass"
    assert [r.result for r in v.dkim] == ["pass"]
    assert (v.dmarc.result, v.dmarc.policy, v.arc.result) == ("pass", "reject", "none")
    assert (v.from_domain, v.vouched_for, v.policy) == ("cabinet-kine.fr", True, "")
    parsed = parse_value(v.authentication_results)
    assert parsed.authserv_id == ID
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass"), ("arc", "none")]
    assert parsed.of("dkim")[0].get("header.d") == "cabinet-kine.fr"


async def test_spoofed_from_fails_dmarc_with_reject(key: DkimKey) -> None:
    raw = make_message(sender="Dr Martin <dr.martin@cabinet-kine.fr>")
    v = await authenticate(raw, mail_from="bounce@evil.example", helo="evil.example",
                           client_ip="203.0.113.5", resolver=zone(key), authserv_id=ID)
    assert v.spf is not None and v.spf.result == "none"
    assert (v.dmarc.result, v.policy, v.vouched_for) == ("fail", "reject", False)
    assert "dmarc=fail (p=reject) header.from=cabinet-kine.fr" in v.authentication_results


async def test_dkim_of_another_domain_does_not_vouch(key: DkimKey) -> None:
    other = DkimKey.generate("evil.example", "e1", bits=1024)
    raw = other.sign(make_message(sender="dr.martin@cabinet-kine.fr"))
    resolver = zone(key, extra={other.name: [("TXT", other.record)]})
    v = await authenticate(raw, mail_from="x@evil.example", helo=None, client_ip=IP,
                           resolver=resolver, authserv_id=ID)
    assert [r.result for r in v.dkim] == ["pass"]
    assert (v.dmarc.result, v.vouched_for) == ("fail", False)


async def test_no_dmarc_record_aligned_pass_vouches(key: DkimKey) -> None:
    raw = key.sign(make_message())
    v = await authenticate(raw, mail_from="x@evil.example", helo=None, client_ip="203.0.113.5",
                           resolver=zone(key, dmarc=None), authserv_id=ID)
    assert (v.dmarc.result, v.dmarc.policy, v.policy) == ("none", "", "")
    assert v.vouched_for is True and "aligned DKIM pass" in v.reason
    # nothing aligned passes: not vouched, and still no policy to apply
    v = await authenticate(make_message(), mail_from="x@evil.example", helo=None,
                           client_ip="203.0.113.5", resolver=zone(key, dmarc=None),
                           authserv_id=ID)
    assert (v.dmarc.result, v.vouched_for, v.policy) == ("none", False, "")


async def test_dns_down_everywhere_is_temperror_never_fail(key: DkimKey) -> None:
    raw = key.sign(make_message())
    resolver = FakeResolver({name: [TIMEOUT] for name in (
        "cabinet-kine.fr", "_dmarc.cabinet-kine.fr", key.name, "mx.cabinet-kine.fr")})
    v = await authenticate(raw, mail_from="camille@cabinet-kine.fr", helo="mx.cabinet-kine.fr",
                           client_ip=IP, resolver=resolver, authserv_id=ID)
    assert v.spf is not None and v.spf.result == "temperror"
    assert [r.result for r in v.dkim] == ["temperror"]
    assert v.dmarc.result == "temperror"
    assert v.vouched_for is None and v.policy == ""
    assert {r.result for r in parse_value(v.authentication_results).results} == {
        "temperror", "none"}


async def test_dmarc_record_reachable_but_spf_and_dkim_time_out(key: DkimKey) -> None:
    raw = key.sign(make_message())
    resolver = zone(key, extra={"cabinet-kine.fr": [TIMEOUT], key.name: [TIMEOUT]})
    v = await authenticate(raw, mail_from="camille@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=resolver, authserv_id=ID)
    assert (v.dmarc.result, v.vouched_for) == ("temperror", None)


async def test_null_sender_uses_helo_for_spf_alignment(key: DkimKey) -> None:
    raw = make_message(sender="mailer-daemon@mx.cabinet-kine.fr")
    v = await authenticate(raw, mail_from="<>", helo="mx.cabinet-kine.fr", client_ip=IP,
                           resolver=zone(key), authserv_id=ID)
    assert v.spf is not None and v.spf.result == "pass" and v.helo_spf is None
    assert v.dmarc.result == "pass" and v.vouched_for is True
    assert "smtp.helo=mx.cabinet-kine.fr" in v.authentication_results


async def test_no_from_address(key: DkimKey) -> None:
    raw = b"To: a@b.fr\r\nSubject: x\r\n\r\nbody\r\n"
    v = await authenticate(raw, mail_from="a@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=zone(key), authserv_id=ID)
    assert (v.from_domain, v.from_domains, v.vouched_for) == ("", (), False)
    assert v.dmarc.result == "permerror"
    assert "dmarc=permerror" in v.authentication_results


async def test_several_from_domains_take_the_strictest(key: DkimKey) -> None:
    raw = key.sign(make_message(sender="camille@cabinet-kine.fr, boss@other.example"))
    resolver = zone(key, extra={"_dmarc.other.example": [("TXT", "v=DMARC1; p=quarantine")]})
    v = await authenticate(raw, mail_from="camille@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=resolver, authserv_id=ID)
    assert v.from_domains == ("cabinet-kine.fr", "other.example")
    assert (v.dmarc.result, v.dmarc.from_domain, v.policy) == ("fail", "other.example",
                                                               "quarantine")
    assert v.vouched_for is False and "several From domains" in v.reason
    # several addresses of one domain are that domain
    raw = key.sign(make_message(sender="a@cabinet-kine.fr, b@cabinet-kine.fr"))
    v = await authenticate(raw, mail_from="a@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=zone(key), authserv_id=ID)
    assert (v.from_domains, v.vouched_for) == (("cabinet-kine.fr",), True)


async def test_without_client_ip_spf_is_skipped(key: DkimKey) -> None:
    raw = key.sign(make_message())
    v = await authenticate(raw, mail_from="", helo=None, client_ip=None, resolver=zone(key),
                           authserv_id=ID)
    assert v.spf is None and "spf=" not in v.authentication_results
    assert v.dmarc.result == "pass"


async def test_trusted_provider_results_are_read(key: DkimKey) -> None:
    raw = (b"Authentication-Results: mx.provider.fr; spf=pass smtp.mailfrom=a@x.fr; "
           b"dmarc=pass header.from=x.fr\r\n" + make_message())
    v = await authenticate(raw, mail_from="a@x.fr", helo=None, client_ip=IP,
                           resolver=zone(key), authserv_id=ID,
                           trusted_authserv_ids=["mx.provider.fr"])
    assert [r.authserv_id for r in v.trusted] == ["mx.provider.fr"]
    assert v.trusted[0].of("dmarc")[0].result == "pass"


MALFORMED = [
    b"",
    b"\r\n\r\n",
    b" continuation first\r\nFrom: a@cabinet-kine.fr\r\n\r\nbody",
    b"From: a@cabinet-kine.fr",
    b"DKIM-Signature: \r\nFrom: a@cabinet-kine.fr\r\n\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=cabinet-kine.fr; s=s1; h=from; bh=AA==; b=\xff\xfe"
    b"\r\nFrom: a@cabinet-kine.fr\r\n\r\nx",
    b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.fr; s=s; b=AAAA\r\n"
    b"ARC-Message-Signature: i=2; a=rsa-sha256; d=x.fr; s=s; h=from; bh=AA==; b=AAAA\r\n"
    b"ARC-Authentication-Results: i=1; x.fr; none\r\nFrom: a@x.fr\r\n\r\nbody",
    b"From: =?utf-8?q?Dupont,_Jean?= <j@cabinet-kine.fr>, \xff@\xfe\r\n\r\n",
    b"From: <>\r\nFrom: @\r\nFrom: a@\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
async def test_malformed_messages_never_raise(raw: bytes, key: DkimKey) -> None:
    v = await authenticate(raw, mail_from="a@cabinet-kine.fr", helo="h", client_ip=IP,
                           resolver=zone(key), authserv_id=ID)
    parse_value(v.authentication_results)  # always a well-formed header value


async def test_random_mutations_never_raise(key: DkimKey) -> None:
    rng = random.Random(20261129)
    base = key.sign(make_message())
    pieces = [b"DKIM-Signature:", b"ARC-Seal: i=1;", b"From:", b"\r\n", b"\n", b"\r\n ",
              b"\r\n\r\n", b"\xff", b";", b"=", b"(", b'"', b" d=x.fr;"]
    resolver = zone(key)
    for _ in range(150):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 5)):
            pos = rng.randint(0, len(raw))
            if rng.random() < 0.5:
                raw[pos:pos] = rng.choice(pieces)
            else:
                del raw[pos:pos + rng.randint(1, 20)]
        v = await authenticate(bytes(raw), mail_from="a@cabinet-kine.fr", helo=None,
                               client_ip=IP, resolver=resolver, authserv_id=ID)
        parse_value(v.authentication_results)


async def test_iprev_on_request(key: DkimKey) -> None:
    resolver = zone(key, extra={"10.2.0.192.in-addr.arpa": [("PTR", "mx.cabinet-kine.fr")]})
    raw = key.sign(make_message())
    v = await authenticate(raw, mail_from="a@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=resolver, authserv_id=ID, check_iprev=True)
    assert v.iprev is not None and (v.iprev.result, v.iprev.name) == (
        "pass", "mx.cabinet-kine.fr")
    assert v.authentication_results.startswith(
        f"{ID}; iprev=pass (mx.cabinet-kine.fr) policy.iprev={IP}; spf=pass")
    v = await authenticate(raw, mail_from="a@cabinet-kine.fr", helo=None, client_ip=IP,
                           resolver=resolver, authserv_id=ID)
    assert v.iprev is None and "iprev" not in v.authentication_results
