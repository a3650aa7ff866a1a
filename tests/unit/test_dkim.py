"""DKIM verification of every signature over the in-memory resolver: dkimpy's sample
messages and keys (``../shared/conformance/dkim/``), and messages signed at test time."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.detect.dkim import verify_dkim
from gateway.testing import TIMEOUT, DkimKey, FakeRecord, FakeResolver, make_message
from gateway.verdict import Outcome

DKIM_DIR = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "dkim"
# RFC 8463 appendix A: the ed25519 key that signed rfc6376.signed.msg (selector brisbane)
RFC8463_ED25519 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def shared(name: str) -> Path:
    path = DKIM_DIR / name
    if not path.is_file():
        pytest.skip(f"DKIM samples not found at {DKIM_DIR} (../shared/conformance/dkim/)")
    return path


def football(test_key: str | None = None, brisbane: str = RFC8463_ED25519) -> FakeResolver:
    zone: dict[str, list[FakeRecord]] = {
        "brisbane._domainkey.football.example.com": [("TXT", brisbane)]}
    if test_key is not None:
        zone["test._domainkey.football.example.com"] = [("TXT", test_key)]
    return FakeResolver(zone)


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    return DkimKey.generate("cabinet-kine.fr", "rsa1")


@pytest.fixture(scope="module")
def ed_key() -> DkimKey:
    return DkimKey.generate("cabinet-kine.fr", "ed1", algorithm="ed25519-sha256")


def zone_of(*keys: DkimKey) -> FakeResolver:
    return FakeResolver({k.name: [("TXT", k.record)] for k in keys})


# --- dkimpy's sample messages -----------------------------------------------------------

async def test_rfc6376_signed_both_signatures_ed25519_and_rsa_pass() -> None:
    raw = shared("rfc6376.signed.msg").read_bytes()
    results = await verify_dkim(raw, football(shared("test.txt").read_text().strip()))
    assert [(r.result, r.selector, r.algorithm, r.key_bits) for r in results] == [
        ("pass", "brisbane", "ed25519-sha256", 256), ("pass", "test", "rsa-sha256", 1024)]
    assert results[0].domain == "football.example.com"
    assert results[0].b == "9/dsDChY" and results[1].b == "icKcLSEZ"
    assert all(r.outcome is Outcome.PASS for r in results)


async def test_rsa_only_sample_passes_and_the_copy_without_t_fails() -> None:
    key = shared("test.txt").read_text().strip()
    ok = await verify_dkim(shared("rfc6376.signed.rsa.msg").read_bytes(), football(key))
    assert [r.result for r in ok] == ["pass"]
    # the same b= with the t= tag removed: the signed header no longer matches
    tampered = await verify_dkim(shared("rfc6376.signed.no_t.msg").read_bytes(), football(key))
    assert [(r.result, r.reason) for r in tampered] == [("fail", "signature did not verify")]


async def test_exim_ed25519_sample() -> None:
    raw = shared("ed25519test2.msg").read_bytes()
    resolver = FakeResolver({"sed._domainkey.test.ex": [
        ("TXT", shared("eximtest.dns").read_text().strip())]})
    assert [(r.result, r.domain) for r in await verify_dkim(raw, resolver)] == [
        ("pass", "test.ex")]


@pytest.mark.parametrize(("record_file", "reason"), [
    ("badk.txt", "unknown algorithm in k= tag"),
    ("badversion.txt", "bad"),
    ("test_bad.txt", "could not parse RSA public key"),
    ("test_tlsrpt.txt", "tlsrpt"),
])
async def test_broken_key_records_are_permerror(record_file: str, reason: str) -> None:
    raw = shared("rfc6376.signed.rsa.msg").read_bytes()
    results = await verify_dkim(raw, football(shared(record_file).read_text().strip()))
    assert [r.result for r in results] == ["permerror"]
    assert reason in results[0].reason


async def test_signature_with_invalid_d_is_permerror() -> None:
    raw = shared("test.message.baddomain").read_bytes()
    results = await verify_dkim(raw, FakeResolver())
    assert [r.result for r in results] == ["permerror"]
    assert "d= value is not valid" in results[0].reason


async def test_gmail_sample_with_its_key(tmp_path: Path) -> None:
    raw = shared("test2.message").read_bytes()
    resolver = FakeResolver({"20120113._domainkey.gmail.com": [
        ("TXT", shared("test2.txt").read_text().strip())]})
    results = await verify_dkim(raw, resolver)
    assert [(r.domain, r.selector) for r in results] == [("gmail.com", "20120113")]
    assert results[0].result in ("pass", "fail")  # a real message: no crash either way


async def test_unsigned_messages_give_no_result() -> None:
    assert await verify_dkim(shared("test.message").read_bytes(), FakeResolver()) == []
    assert await verify_dkim(b"", FakeResolver()) == []
    assert await verify_dkim(b"no header at all", FakeResolver()) == []


# --- messages signed at test time ------------------------------------------------------------

async def test_rsa_2048_and_ed25519_signed_now(rsa_key: DkimKey, ed_key: DkimKey) -> None:
    raw = ed_key.sign(rsa_key.sign(make_message()))
    results = await verify_dkim(raw, zone_of(rsa_key, ed_key))
    assert [(r.result, r.selector, r.key_bits) for r in results] == [
        ("pass", "ed1", 256), ("pass", "rsa1", 2048)]


async def test_every_signature_is_checked_second_one_verifies(rsa_key: DkimKey) -> None:
    """dkimpy's verify() stops at the first signature; we report each."""
    other = DkimKey.generate("cabinet-kine.fr", "wrong", bits=1024)
    signed = rsa_key.sign(make_message())
    # a top signature whose published key is not the one that signed
    forged = DkimKey(other.domain, other.selector, other.algorithm, rsa_key.private,
                     other.record).sign(signed)
    results = await verify_dkim(forged, zone_of(rsa_key, other))
    assert [(r.index, r.result, r.selector) for r in results] == [
        (0, "fail", "wrong"), (1, "pass", "rsa1")]


async def test_body_altered_after_signing_fails(rsa_key: DkimKey) -> None:
    raw = rsa_key.sign(make_message(body="Bonjour,\r\nà demain.\r\n"))
    altered = raw.replace("à demain".encode(), "à jeudi".encode())
    results = await verify_dkim(altered, zone_of(rsa_key))
    assert [(r.result, r.reason) for r in results] == [("fail", "body hash mismatch")]
    assert results[0].outcome is Outcome.FAIL


async def test_header_altered_after_signing_fails(ed_key: DkimKey) -> None:
    raw = ed_key.sign(make_message(subject="Rendez-vous"))
    altered = raw.replace(b"Subject: Rendez-vous", b"Subject: Facture")
    assert [r.result for r in await verify_dkim(altered, zone_of(ed_key))] == ["fail"]


async def test_dns_timeout_is_temperror_never_fail(rsa_key: DkimKey) -> None:
    raw = rsa_key.sign(make_message())
    results = await verify_dkim(raw, FakeResolver({rsa_key.name: [TIMEOUT]}))
    assert [r.result for r in results] == ["temperror"]
    assert results[0].outcome is Outcome.TEMPERROR


async def test_missing_and_revoked_keys_are_permerror(rsa_key: DkimKey) -> None:
    raw = rsa_key.sign(make_message())
    missing = await verify_dkim(raw, FakeResolver())
    assert [r.result for r in missing] == ["permerror"]
    assert "no key record" in missing[0].reason
    nodata = await verify_dkim(raw, FakeResolver({rsa_key.name: []}))
    assert [r.result for r in nodata] == ["permerror"]
    revoked = await verify_dkim(raw, FakeResolver({rsa_key.name: [
        ("TXT", "v=DKIM1; k=rsa; p=")]}))
    assert [(r.result, r.reason) for r in revoked] == [("permerror", "key revoked (empty p=)")]


async def test_short_rsa_key_is_permerror() -> None:
    """RFC 8301 sets the floor at 1024 bits (cryptography makes no shorter keys: the
    floor is raised to 2048 to show the check)."""
    small = DkimKey.generate("cabinet-kine.fr", "small", bits=1024)
    results = await verify_dkim(small.sign(make_message()), zone_of(small), minkey=2048)
    assert [r.result for r in results] == ["permerror"]
    assert "too small" in results[0].reason


async def test_long_key_split_in_several_strings(rsa_key: DkimKey) -> None:
    """A 2048-bit key is longer than one TXT string: the resolver glues the strings."""
    record = rsa_key.record
    chunks = [record[i:i + 255] for i in range(0, len(record), 255)]
    assert len(chunks) > 1
    resolver = FakeResolver({rsa_key.name: [("TXT", chunks)]})
    assert [r.result for r in await verify_dkim(rsa_key.sign(make_message()), resolver)] \
        == ["pass"]


async def test_at_most_max_signatures_are_verified(rsa_key: DkimKey) -> None:
    raw = make_message()
    for _ in range(4):
        raw = rsa_key.sign(raw)
    results = await verify_dkim(raw, zone_of(rsa_key), max_signatures=2)
    assert [r.result for r in results] == ["pass", "pass", "policy", "policy"]
    assert "more than 2" in results[2].reason


async def test_big_message_hashes_only_the_wanted_signatures(rsa_key: DkimKey) -> None:
    third = DkimKey.generate("mailer.example", "m1", bits=1024)
    raw = rsa_key.sign(third.sign(make_message(body="x" * 5000 + "\r\n")))
    resolver = zone_of(rsa_key, third)
    results = await verify_dkim(raw, resolver, big_message=1000,
                                wanted=lambda d: d == "cabinet-kine.fr")
    assert [(r.domain, r.result) for r in results] == [
        ("cabinet-kine.fr", "pass"), ("mailer.example", "policy")]
    # under the bound, every signature is checked
    small = await verify_dkim(raw, resolver, wanted=lambda d: d == "cabinet-kine.fr")
    assert [r.result for r in small] == ["pass", "pass"]


async def test_rsa_sha1_is_not_accepted(rsa_key: DkimKey) -> None:
    sha1 = rsa_key.sign(make_message()).replace(b"a=rsa-sha256", b"a=rsa-sha1")
    results = await verify_dkim(sha1, zone_of(rsa_key))
    assert [r.result for r in results] == ["policy"]
    assert results[0].outcome is Outcome.NONE


async def test_malformed_signature_is_permerror() -> None:
    raw = b"DKIM-Signature: v=1; garbage\r\n" + make_message()
    results = await verify_dkim(raw, FakeResolver())
    assert [r.result for r in results] == ["permerror"]
    raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n" + make_message()
    results = await verify_dkim(raw, FakeResolver())
    assert [r.result for r in results] == ["permerror"]
    assert "missing" in results[0].reason


async def test_lf_line_endings_verify_too(rsa_key: DkimKey) -> None:
    raw = rsa_key.sign(make_message()).replace(b"\r\n", b"\n")
    assert [r.result for r in await verify_dkim(raw, zone_of(rsa_key))] == ["pass"]


async def test_expired_signature_is_permerror(rsa_key: DkimKey) -> None:
    raw = rsa_key.sign(make_message()).replace(b"DKIM-Signature: v=1;",
                                                b"DKIM-Signature: v=1; x=1000;", 1)
    results = await verify_dkim(raw, zone_of(rsa_key))
    assert [r.result for r in results] == ["permerror"]
    assert "x= value is past" in results[0].reason


async def test_message_starting_with_a_continuation_line() -> None:
    raw = b" oops\r\nDKIM-Signature: v=1; d=x.fr; s=s\r\nFrom: a@x.fr\r\n\r\nbody\r\n"
    results = await verify_dkim(raw, FakeResolver())
    assert [r.result for r in results] == ["permerror"]
    assert "unparsable" in results[0].reason
