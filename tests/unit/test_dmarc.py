"""DMARC (RFC 7489) over the in-memory resolver: records, discovery, alignment, errors."""

from __future__ import annotations

import pytest

from gateway.detect.dkim import DkimResult
from gateway.detect.dmarc import (
    DmarcPolicy,
    DmarcResult,
    aligned,
    check_dmarc,
    fetch_policy,
    from_domains,
    is_dmarc_record,
    organizational_domain,
    parse_record,
)
from gateway.testing import TIMEOUT, FakeRecord, FakeResolver
from gateway.verdict import Outcome


def zone(records: dict[str, str | list[FakeRecord]]) -> FakeResolver:
    """``{"x.fr": "v=DMARC1; p=reject"}`` is a TXT record at _dmarc.x.fr."""
    out: dict[str, list[FakeRecord]] = {}
    for name, value in records.items():
        out["_dmarc." + name] = (
            [("TXT", value)] if isinstance(value, str) else value)
    return FakeResolver(out)


def dkim_pass(domain: str) -> DkimResult:
    return DkimResult("pass", 0, domain=domain, selector="s")


@pytest.mark.parametrize(("domain", "org"), [
    ("cabinet-kine.fr", "cabinet-kine.fr"),
    ("mail.cabinet-kine.fr", "cabinet-kine.fr"),
    ("MAIL.Cabinet-Kine.FR.", "cabinet-kine.fr"),
    ("masseur-kinesitherapeute.mssante.fr", "mssante.fr"),
    ("a.b.example.co.uk", "example.co.uk"),
    ("fr", None),
    ("co.uk", None),
    ("", None),
])
def test_organizational_domain(domain: str, org: str | None) -> None:
    assert organizational_domain(domain) == org


@pytest.mark.parametrize(("a", "b", "mode", "expected"), [
    ("cabinet-kine.fr", "cabinet-kine.fr", "s", True),
    ("mail.cabinet-kine.fr", "cabinet-kine.fr", "r", True),
    ("mail.cabinet-kine.fr", "cabinet-kine.fr", "s", False),
    ("cabinet-kine.fr", "news.cabinet-kine.fr", "r", True),
    ("evil-kine.fr", "cabinet-kine.fr", "r", False),
    ("example.co.uk", "other.co.uk", "r", False),  # same public suffix is not alignment
    ("", "cabinet-kine.fr", "r", False),
])
def test_alignment(a: str, b: str, mode: str, expected: bool) -> None:
    assert aligned(a, b, mode) is expected  # type: ignore[arg-type]


def test_from_domains() -> None:
    assert from_domains(["Camille <camille@Cabinet-Kine.fr>"]) == ["cabinet-kine.fr"]
    assert from_domains(["a@x.fr, b@x.fr"]) == ["x.fr"]
    assert from_domains(["a@x.fr", "b@y.fr"]) == ["x.fr", "y.fr"]
    assert from_domains(["undisclosed-recipients:;"]) == []
    assert from_domains(["nobody"]) == []
    assert from_domains([]) == []


# --- records --------------------------------------------------------------------------

def test_parse_record_defaults_and_tags() -> None:
    p = parse_record("v=DMARC1; p=reject", "cabinet-kine.fr", "cabinet-kine.fr")
    assert (p.policy, p.p, p.sp, p.adkim, p.aspf, p.pct) == (
        "reject", "reject", "reject", "r", "r", 100)
    p = parse_record("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;"
                     "rua=mailto:a@x.fr,mailto:b@x.fr;ruf=mailto:c@x.fr; fo=1",
                     "news.x.fr", "x.fr")
    assert (p.policy, p.p, p.sp, p.adkim, p.aspf, p.pct) == (
        "none", "quarantine", "none", "s", "s", 20)
    assert p.rua == ("mailto:a@x.fr", "mailto:b@x.fr") and p.ruf == ("mailto:c@x.fr",)


@pytest.mark.parametrize("record", [
    "v=DMARC1", "v=DMARC1; p=block", "v=DMARC1; p=reject; adkim=x",
    "v=DMARC1; p=reject; pct=101", "v=DMARC1; p=reject; pct=abc", "v=DMARC1; p=reject; junk",
    "v=DMARC2; p=reject",
])
def test_parse_record_errors(record: str) -> None:
    with pytest.raises(ValueError):
        parse_record(record, "x.fr", "x.fr")


def test_version_tag() -> None:
    assert is_dmarc_record("v=DMARC1; p=none") and is_dmarc_record("V = DMARC1;p=none")
    assert not is_dmarc_record("v=dmarc1; p=none")  # the value matches precisely (6.3)
    assert not is_dmarc_record("p=none; v=DMARC1")  # v= comes first
    assert not is_dmarc_record("v=DMARC10; p=none")


def test_invalid_p_with_rua_reads_as_none() -> None:
    p = parse_record("v=DMARC1; p=block; rua=mailto:d@x.fr", "x.fr", "x.fr")
    assert p.policy == "none" and p.problem


# --- discovery ------------------------------------------------------------------------------

async def test_record_at_from_domain() -> None:
    policy = await fetch_policy("cabinet-kine.fr", zone({"cabinet-kine.fr": "v=DMARC1; p=reject"}))
    assert isinstance(policy, DmarcPolicy)
    assert (policy.policy, policy.record_domain) == ("reject", "cabinet-kine.fr")


async def test_subdomain_falls_back_to_organizational_record_and_uses_sp() -> None:
    resolver = zone({"cabinet-kine.fr": "v=DMARC1; p=reject; sp=quarantine"})
    policy = await fetch_policy("news.cabinet-kine.fr", resolver)
    assert isinstance(policy, DmarcPolicy)
    assert (policy.policy, policy.record_domain) == ("quarantine", "cabinet-kine.fr")
    assert ("TXT", "_dmarc.news.cabinet-kine.fr") in resolver.queries


async def test_no_record_is_none() -> None:
    result = await fetch_policy("cabinet-kine.fr", FakeResolver())
    assert isinstance(result, DmarcResult) and result.result == "none"
    other_txt = zone({"cabinet-kine.fr": "v=spf1 -all"})
    result = await fetch_policy("cabinet-kine.fr", other_txt)
    assert isinstance(result, DmarcResult) and result.result == "none"


async def test_two_records_is_none() -> None:
    resolver = zone({"x.fr": [("TXT", "v=DMARC1; p=reject"), ("TXT", "v=DMARC1; p=none")]})
    result = await fetch_policy("x.fr", resolver)
    assert isinstance(result, DmarcResult) and result.result == "none"
    assert "2 DMARC records" in result.reason


async def test_bad_record_is_permerror() -> None:
    result = await fetch_policy("x.fr", zone({"x.fr": "v=DMARC1; p=block"}))
    assert isinstance(result, DmarcResult)
    assert result.result == "permerror" and result.outcome is Outcome.PERMERROR


async def test_dns_timeout_is_temperror() -> None:
    result = await fetch_policy("x.fr", zone({"x.fr": [TIMEOUT]}))
    assert isinstance(result, DmarcResult) and result.result == "temperror"
    result = await fetch_policy("mail.x.fr", zone({"x.fr": [TIMEOUT]}))  # at the org fallback
    assert isinstance(result, DmarcResult) and result.result == "temperror"


async def test_public_suffix_from_domain_is_none() -> None:
    result = await fetch_policy("mssante.fr.", FakeResolver())
    assert isinstance(result, DmarcPolicy | DmarcResult)
    result = await fetch_policy("fr", FakeResolver())
    assert isinstance(result, DmarcResult) and result.result == "none"


# --- evaluation ------------------------------------------------------------------------------

REJECT = zone({"cabinet-kine.fr": "v=DMARC1; p=reject"})


async def test_pass_by_aligned_spf() -> None:
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="pass",
                               spf_domain="bounce.cabinet-kine.fr", dkim=[])
    assert (result.result, result.spf_aligned, result.dkim_aligned) == ("pass", True, False)
    assert result.policy == "reject"


async def test_strict_spf_alignment_fails_for_a_subdomain() -> None:
    resolver = zone({"cabinet-kine.fr": "v=DMARC1; p=reject; aspf=s"})
    result = await check_dmarc("cabinet-kine.fr", resolver, spf_result="pass",
                               spf_domain="bounce.cabinet-kine.fr", dkim=[])
    assert result.result == "fail"
    assert "not aligned" in result.reason


async def test_pass_by_aligned_dkim_even_when_spf_fails() -> None:
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="fail",
                               spf_domain="list.example", dkim=[
                                   DkimResult("fail", 0, domain="cabinet-kine.fr"),
                                   dkim_pass("cabinet-kine.fr")])
    assert (result.result, result.dkim_domain) == ("pass", "cabinet-kine.fr")


async def test_spoof_fails_with_the_policy() -> None:
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="pass",
                               spf_domain="evil.example", dkim=[dkim_pass("evil.example")])
    assert (result.result, result.policy) == ("fail", "reject")
    assert "evil.example" in result.reason and result.outcome is Outcome.FAIL


async def test_temperror_on_an_aligned_identifier_is_temperror_not_fail() -> None:
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="temperror",
                               spf_domain="cabinet-kine.fr", dkim=[])
    assert result.result == "temperror"
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="fail",
                               spf_domain="cabinet-kine.fr", dkim=[
                                   DkimResult("temperror", 0, domain="cabinet-kine.fr")])
    assert result.result == "temperror"
    # a temperror on an identifier that could not align changes nothing
    result = await check_dmarc("cabinet-kine.fr", REJECT, spf_result="temperror",
                               spf_domain="evil.example", dkim=[])
    assert result.result == "fail"
