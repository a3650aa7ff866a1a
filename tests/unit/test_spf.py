"""SPF evaluator (RFC 7208) over the in-memory resolver: macros, limits, errors, identities."""

from __future__ import annotations

import pytest

from gateway.detect.spf import (
    check_helo,
    check_host,
    check_mail_from,
    expand_macros,
    syntax_error,
    valid_domain,
)
from gateway.testing import TIMEOUT, FakeRecord, FakeResolver
from gateway.verdict import Outcome

SENDER = "strong-bad@email.example.com"


def resolver(**zone: list[FakeRecord]) -> FakeResolver:
    """A FakeResolver from keyword names: ``example_com=[...]`` is example.com."""
    return FakeResolver({name.replace("_", "."): records for name, records in zone.items()})


def spf(record: str, *more: FakeRecord) -> list[FakeRecord]:
    return [("TXT", record), *more]


# --- macros (RFC 7208 7.4 examples) -----------------------------------------------------

@pytest.mark.parametrize(("macro", "expected"), [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%{h}", "mx.example.org"),
    ("%%%_%-", "% %20"),
    ("%{L}", "strong-bad"),
    ("%{S}", "strong-bad%40email.example.com"),
    ("%{d200}", "email.example.com"),
    ("%{l+-}", "strong.bad"),
])
async def test_macro_expansion_rfc_examples(macro: str, expected: str) -> None:
    out = await expand_macros(macro, "192.0.2.3", SENDER, "email.example.com",
                              FakeResolver(), helo="mx.example.org")
    assert out == expected


async def test_macro_ipv6_nibbles() -> None:
    out = await expand_macros("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01", SENDER,
                              "email.example.com", FakeResolver())
    assert out == ("1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2"
                   ".ip6._spf.example.com")


async def test_explanation_only_macros() -> None:
    out = await expand_macros("%{c} via %{r} at %{t}", "2001:db8::1", SENDER, "example.com",
                              FakeResolver(), receiver="vigie.test", now=1234.9,
                              explanation=True)
    assert out == "2001:db8::1 via vigie.test at 1234"
    for letter in "crt":
        with pytest.raises(ValueError, match="not allowed"):
            await expand_macros(f"%{{{letter}}}.example.com", "192.0.2.1", SENDER,
                                "example.com", FakeResolver())


@pytest.mark.parametrize("bad", ["%{d0}", "%x", "%{z}", "%{d", "a b", "%(d)", "é"])
async def test_macro_syntax_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        await expand_macros(bad, "192.0.2.1", SENDER, "example.com", FakeResolver())


async def test_p_macro_validated_name() -> None:
    dns = FakeResolver({
        "3.2.0.192.in-addr.arpa": [("PTR", "mail.example.com"), ("PTR", "fake.example.net")],
        "mail.example.com": [("A", "192.0.2.3")], "fake.example.net": [("A", "192.0.2.99")]})
    assert await expand_macros("%{p}", "192.0.2.3", SENDER, "example.com", dns) \
        == "mail.example.com"
    assert await expand_macros("%{p}", "192.0.2.4", SENDER, "example.com", dns) == "unknown"
    dns = FakeResolver({"3.2.0.192.in-addr.arpa": [("PTR", ".")]})
    assert await expand_macros("%{p}", "192.0.2.3", SENDER, "example.com", dns) == "unknown"
    assert dns.queries == [("PTR", "3.2.0.192.in-addr.arpa")]


# --- record syntax -------------------------------------------------------------------------

@pytest.mark.parametrize("record", [
    "v=spf1", "v=spf1 -all", "V=SPF1 +MX/24//64 ~ALL", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32",
    "v=spf1 include:_spf.%{d2} exists:%{ir}.sbl.example.org redirect=other.example",
    "v=spf1 a:mail.example.com/0 ptr:example.com ?all exp=explain.%{d}",
    "v=spf1 foo=bar default=+ -all", "v=spf1  -all  ", "v=spf1 a:%{d}",
])
def test_valid_records(record: str) -> None:
    assert syntax_error(record) is None


@pytest.mark.parametrize(("record", "why"), [
    ("v=spf1 ip4:192.0.2.1/33", "CIDR"),
    ("v=spf1 ip4:192.0.2.01", "address"),
    ("v=spf1 ip6:2001:db8::/129", "CIDR"),
    ("v=spf1 a/024", "CIDR"),
    ("v=spf1 a:localhost", "top label"),
    ("v=spf1 a:example.123", "top label"),
    ("v=spf1 include", "needs a domain"),
    ("v=spf1 include:", "empty"),
    ("v=spf1 all:x", "invalid term"),
    ("v=spf1 frob:example.com", "unknown mechanism"),
    ("v=spf1 redirect=a.example redirect=b.example", "twice"),
    ("v=spf1 exp=a.example exp=b.example", "twice"),
    ("v=spf1 -all x=%{q}", "macro"),
    ("v=spf1 a:%{c}.example.com", "not allowed"),
    ("v=spf1 ip4:192.0.2.1\t-all", "invalid character"),
    ("v=spf1 -all é=x", "invalid character"),
    ("v=spf1 =x", "invalid term"),
])
def test_invalid_records(record: str, why: str) -> None:
    problem = syntax_error(record)
    assert problem is not None and why in problem


# --- results ----------------------------------------------------------------------------------

async def test_pass_fail_softfail_neutral_and_matched_mechanism() -> None:
    dns = resolver(example_com=spf("v=spf1 ip4:192.0.2.0/24 ~ip6:2001:db8::/32 ?a -all"))
    r = await check_host("192.0.2.7", "example.com", SENDER, "h.example", dns)
    assert (r.result, r.mechanism, r.outcome) == ("pass", "ip4:192.0.2.0/24", Outcome.PASS)
    r = await check_host("2001:db8::7", "example.com", SENDER, "h.example", dns)
    assert (r.result, r.mechanism) == ("softfail", "~ip6:2001:db8::/32")
    r = await check_host("198.51.100.1", "example.com", SENDER, "h.example", dns)
    assert (r.result, r.mechanism, r.outcome) == ("fail", "-all", Outcome.FAIL)
    dns = resolver(example_com=spf("v=spf1 ip4:192.0.2.1"))
    r = await check_host("198.51.100.1", "example.com", SENDER, "h.example", dns)
    assert (r.result, r.mechanism, r.outcome) == ("neutral", "", Outcome.NONE)


async def test_ipv4_mapped_client_is_ipv4() -> None:
    dns = resolver(example_com=spf("v=spf1 ip4:192.0.2.1 -all"))
    r = await check_host("::ffff:192.0.2.1", "example.com", SENDER, "h.example", dns)
    assert r.result == "pass"


async def test_two_spf_records_is_permerror() -> None:
    dns = resolver(example_com=[("TXT", "v=spf1 +all"), ("TXT", "v=spf1 -all"),
                                ("TXT", "google-site-verification=x")])
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", dns)
    assert r.result == "permerror" and "2 v=spf1 records" in r.problem
    assert r.outcome is Outcome.PERMERROR


async def test_one_spf_record_among_other_txt_records() -> None:
    dns = resolver(example_com=[("TXT", "v=spf10 +all"), ("TXT", ["v=spf1 ", "-all"]),
                                ("TXT", "v=DMARC1")])
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", dns)
    assert r.result == "fail"


async def test_syntax_error_anywhere_beats_an_earlier_match() -> None:
    dns = resolver(example_com=spf("v=spf1 +all ip4:300.1.1.1"))
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", dns)
    assert r.result == "permerror"


@pytest.mark.parametrize("domain", [
    "localhost", "a..example.com", "x" * 64 + ".example.com", "[192.0.2.1]", "", ".",
    ("a" * 62 + ".") * 5 + "com",
])
async def test_invalid_domain_is_none_without_query(domain: str) -> None:
    dns = FakeResolver()
    r = await check_host("192.0.2.1", domain, f"x@{domain}", "h.example", dns)
    assert r.result == "none"
    assert dns.queries == []
    assert not valid_domain(domain)


async def test_no_record_and_nxdomain_are_none() -> None:
    dns = resolver(example_com=[("TXT", "hello"), ("A", "192.0.2.1")])
    assert (await check_host("192.0.2.1", "example.com", SENDER, "h", dns)).result == "none"
    assert (await check_host("192.0.2.1", "nx.example.com", SENDER, "h", dns)).result == "none"


# --- temporary errors: never a pass, never a fail ------------------------------------------

@pytest.mark.parametrize("zone", [
    {"example.com": [TIMEOUT]},
    {"example.com": spf("v=spf1 a:slow.example.com -all"), "slow.example.com": [TIMEOUT]},
    {"example.com": spf("v=spf1 include:slow.example.com -all"),
     "slow.example.com": [("TXT", TIMEOUT)]},
    {"example.com": spf("v=spf1 exists:%{i}.slow.example.com -all"),
     "slow.example.com": [TIMEOUT], "192.0.2.1.slow.example.com": [TIMEOUT]},
    {"example.com": spf("v=spf1 mx -all", ("MX", (10, "mx.example.com"))),
     "mx.example.com": [("A", TIMEOUT)]},
    {"example.com": spf("v=spf1 -mx +all", ("MX", TIMEOUT))},
    {"example.com": spf("v=spf1 redirect=slow.example.com"), "slow.example.com": [TIMEOUT]},
])
async def test_timeout_is_temperror(zone: dict[str, list[FakeRecord]]) -> None:
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", FakeResolver(zone))
    assert r.result == "temperror", r
    assert r.outcome is Outcome.TEMPERROR
    assert "timeout" in r.problem


async def test_ptr_timeout_does_not_match_and_is_no_temperror() -> None:
    dns = FakeResolver({"example.com": spf("v=spf1 ptr -all"),
                        "1.2.0.192.in-addr.arpa": [TIMEOUT]})
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", dns)
    assert r.result == "fail"


async def test_exp_timeout_gives_the_default_explanation() -> None:
    dns = resolver(example_com=spf("v=spf1 -all exp=why.example.com"),
                   why_example_com=[TIMEOUT])
    r = await check_host("192.0.2.1", "example.com", SENDER, "h.example", dns,
                         default_explanation="not allowed")
    assert (r.result, r.explanation) == ("fail", "not allowed")


# --- limits ------------------------------------------------------------------------------------

def _a_records(n: int) -> dict[str, list[FakeRecord]]:
    zone: dict[str, list[FakeRecord]] = {}
    for i in range(n):
        zone[f"h{i}.example.com"] = [("A", "198.51.100.1")]
    return zone


async def test_ten_dns_mechanisms_allowed_eleven_permerror() -> None:
    terms = " ".join(f"a:h{i}.example.com" for i in range(10))
    zone = _a_records(11) | {"ten.example.com": spf(f"v=spf1 {terms} ip4:192.0.2.1 -all"),
                             "eleven.example.com": spf(f"v=spf1 {terms} a:h10.example.com "
                                                       "ip4:192.0.2.1 -all")}
    dns = FakeResolver(zone)
    r = await check_host("192.0.2.1", "ten.example.com", SENDER, "h", dns)
    assert (r.result, r.lookups) == ("pass", 10)
    r = await check_host("192.0.2.1", "eleven.example.com", SENDER, "h", dns)
    assert r.result == "permerror" and "more than 10 DNS lookups" in r.problem


async def test_lookup_limit_counts_across_includes() -> None:
    terms = " ".join(f"a:h{i}.example.com" for i in range(9))
    zone = _a_records(9) | {"example.com": spf("v=spf1 include:inc.example.com a -all"),
                            "inc.example.com": spf(f"v=spf1 {terms}")}
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", FakeResolver(zone))
    assert r.result == "permerror"  # 1 include + 9 a + 1 a = 11


async def test_include_loop_is_permerror() -> None:
    dns = resolver(a_example=spf("v=spf1 include:b.example"),
                   b_example=spf("v=spf1 include:a.example"))
    r = await check_host("192.0.2.1", "a.example", SENDER, "h", dns)
    assert r.result == "permerror"
    assert len(dns.queries) == 11  # the first record, then 10 includes: no more


async def test_void_lookup_limit() -> None:
    two = spf("v=spf1 a:nx1.example.com a:nx2.example.com ?all")
    three = spf("v=spf1 a:nx1.example.com exists:nx2.example.com mx:nx3.example.com ?all")
    dns = resolver(two_example_com=two, three_example_com=three)
    r = await check_host("192.0.2.1", "two.example.com", SENDER, "h", dns)
    assert (r.result, r.void_lookups) == ("neutral", 2)
    r = await check_host("192.0.2.1", "three.example.com", SENDER, "h", dns)
    assert r.result == "permerror" and "void" in r.problem


async def test_empty_answer_is_a_void_lookup_too() -> None:
    dns = resolver(example_com=spf("v=spf1 a a a ?all", ("MX", (1, "x.example.com"))))
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert r.result == "permerror"


async def test_more_than_ten_mx_is_permerror() -> None:
    mx: list[FakeRecord] = [("MX", (i, f"mx{i}.example.com")) for i in range(11)]
    dns = resolver(example_com=[*spf("v=spf1 mx ?all"), *mx])
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert r.result == "permerror"
    dns = resolver(example_com=[*spf("v=spf1 mx ?all"), *mx[:10]],
                   mx9_example_com=[("A", "192.0.2.1")])
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert (r.result, r.mechanism) == ("pass", "mx")


async def test_only_ten_ptr_names_are_tried() -> None:
    ptrs: list[FakeRecord] = [("PTR", f"n{i}.example.com") for i in range(11)]
    zone: dict[str, list[FakeRecord]] = {
        "1.2.0.192.in-addr.arpa": ptrs, "example.com": spf("v=spf1 ptr -all"),
        "n10.example.com": [("A", "192.0.2.1")]}
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", FakeResolver(zone))
    assert r.result == "fail"
    zone["n9.example.com"] = [("A", "192.0.2.1")]
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", FakeResolver(zone))
    assert (r.result, r.mechanism) == ("pass", "ptr")


# --- modifiers ---------------------------------------------------------------------------------

async def test_redirect_and_its_explanation() -> None:
    dns = FakeResolver({
        "example.com": spf("v=spf1 exp=one.example.com redirect=_spf.example.com"),
        "_spf.example.com": spf("v=spf1 -all exp=two.example.com"),
        "one.example.com": [("TXT", "one")],
        "two.example.com": [("TXT", "%{i} is not a server of %{d} (%{o})")]})
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert (r.result, r.domain) == ("fail", "_spf.example.com")
    assert r.explanation == "192.0.2.1 is not a server of _spf.example.com (email.example.com)"


async def test_redirect_to_no_record_is_permerror() -> None:
    dns = resolver(example_com=spf("v=spf1 redirect=nx.example.com"))
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert r.result == "permerror"


async def test_include_results() -> None:
    dns = resolver(example_com=spf("v=spf1 include:p.example include:f.example "
                                   "include:n.example -all"),
                   p_example=spf("v=spf1 ip4:192.0.2.1 -all"),
                   f_example=spf("v=spf1 -all"),
                   n_example=spf("v=spf1 ?all"))
    r = await check_host("192.0.2.1", "example.com", SENDER, "h", dns)
    assert (r.result, r.mechanism) == ("pass", "include:p.example")
    r = await check_host("192.0.2.2", "example.com", SENDER, "h", dns)
    assert (r.result, r.mechanism) == ("fail", "-all")
    dns = resolver(example_com=spf("v=spf1 include:none.example -all"), none_example=[])
    assert (await check_host("192.0.2.1", "example.com", SENDER, "h", dns)).result \
        == "permerror"


# --- identities (RFC 7208 2.3, 2.4) ---------------------------------------------------------

async def test_null_sender_checks_the_helo_identity() -> None:
    dns = resolver(mail_example_com=spf("v=spf1 a -all exp=why.example.com",
                                        ("A", "192.0.2.1")),
                   why_example_com=[("TXT", "%{s}")])
    for null in ("", "<>"):
        r = await check_mail_from("192.0.2.1", null, "mail.example.com", dns)
        assert (r.result, r.domain) == ("pass", "mail.example.com")
        r = await check_mail_from("192.0.2.9", null, "mail.example.com", dns)
        assert (r.result, r.explanation) == ("fail", "postmaster@mail.example.com")


async def test_mail_from_identity_and_empty_local_part() -> None:
    dns = resolver(example_com=spf("v=spf1 -all exp=why.example.com"),
                   why_example_com=[("TXT", "%{l} at %{o}")])
    r = await check_mail_from("192.0.2.1", "<@example.com>", "h.example", dns)
    assert (r.result, r.explanation) == ("fail", "postmaster at example.com")
    r = await check_mail_from("192.0.2.1", "Camille@Example.COM", "h.example", dns)
    assert (r.result, r.explanation) == ("fail", "Camille at Example.COM")


async def test_helo_address_literal_or_single_label_is_none() -> None:
    dns = FakeResolver()
    assert (await check_helo("192.0.2.1", "[192.0.2.1]", dns)).result == "none"
    assert (await check_helo("192.0.2.1", "OEMCOMPUTER", dns)).result == "none"
    assert dns.queries == []
