"""Authentication-Results (RFC 8601): our value, removing forged ones, reading a trusted one."""

from __future__ import annotations

import pytest

from gateway.detect.arc import ArcResult
from gateway.detect.authres import (
    authserv_id_of,
    build_value,
    header_field,
    parse_value,
    remove_ours,
    trusted_results,
)
from gateway.detect.dkim import DkimResult
from gateway.detect.dmarc import DmarcResult
from gateway.detect.spf import SpfResult


def test_build_value_all_methods() -> None:
    value = build_value(
        "vigie.cabinet-kine.fr",
        spf=SpfResult("pass", "cabinet-kine.fr"), mail_from="<camille@cabinet-kine.fr>",
        dkim=[DkimResult("pass", 0, domain="cabinet-kine.fr", selector="s1",
                         algorithm="rsa-sha256", b="AbCd/+Ef"),
              DkimResult("fail", 1, domain="x.example", selector="k", b="12345678",
                         reason="body hash mismatch")],
        dmarc=DmarcResult("fail", "cabinet-kine.fr", "reject"),
        arc=ArcResult("pass", 2, 0))
    assert value == (
        "vigie.cabinet-kine.fr; spf=pass smtp.mailfrom=camille@cabinet-kine.fr; "
        "dkim=pass header.d=cabinet-kine.fr header.s=s1 header.a=rsa-sha256 "
        "header.b=AbCd/+Ef; "
        "dkim=fail (body hash mismatch) header.d=x.example header.s=k header.b=12345678; "
        "dmarc=fail (p=reject) header.from=cabinet-kine.fr; "
        "arc=pass header.oldest-pass=0")
    # what we write, we can read back
    parsed = parse_value(value)
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "pass"), ("dkim", "pass"), ("dkim", "fail"), ("dmarc", "fail"), ("arc", "pass")]
    assert parsed.results[1].get("header.b") == "AbCd/+Ef"
    assert parsed.results[2].reason == "body hash mismatch"


def test_build_value_none_forms() -> None:
    assert build_value("vigie.test") == "vigie.test; none"
    value = build_value("vigie.test", spf=SpfResult("temperror", "x.fr", problem="DNS (x)"),
                        mail_from="", helo="mx.x.fr", dkim=[],
                        dmarc=DmarcResult("none", "x.fr"), arc=ArcResult("none"))
    assert value == ("vigie.test; spf=temperror (DNS \\(x\\)) smtp.helo=mx.x.fr; dkim=none; "
                     "dmarc=none header.from=x.fr; arc=none")
    assert [r.result for r in parse_value(value).results] == [
        "temperror", "none", "none", "none"]


def test_odd_addresses_are_quoted() -> None:
    value = build_value("v.test", spf=SpfResult("pass", "x.fr"),
                        mail_from='"jean dupont"@x.fr')
    assert 'smtp.mailfrom="\\"jean dupont\\"@x.fr"' in value
    assert parse_value(value).results[0].get("smtp.mailfrom") == '"jean dupont"@x.fr'


def test_header_field_folds() -> None:
    value = build_value("vigie.test", spf=SpfResult("pass", "x.fr"), mail_from="a@x.fr",
                        dkim=[DkimResult("pass", 0, domain="x.fr", selector="s",
                                         algorithm="ed25519-sha256", b="abcdefgh")],
                        dmarc=DmarcResult("pass", "x.fr", "none"), arc=ArcResult("none"))
    field = header_field(value)
    assert field.startswith(b"Authentication-Results: vigie.test;") and field.endswith(b"\r\n")
    lines = field.decode().split("\r\n")[:-1]
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(line.startswith("\t") for line in lines[1:])
    unfolded = field.decode()[len("Authentication-Results:"):].replace("\r\n\t", " ").strip()
    assert unfolded == value


@pytest.mark.parametrize(("value", "expected"), [
    ("vigie.test; none", "vigie.test"),
    ("  (comment) VIGIE.test 1; spf=pass", "VIGIE.test"),
    ('"vigie.test"; none', "vigie.test"),
    ("vigie.test;spf=pass", "vigie.test"),
    ("", ""),
])
def test_authserv_id_of(value: str, expected: str) -> None:
    assert authserv_id_of(value) == expected


RAW = (b"Return-Path: <a@x.fr>\r\n"
       b"Authentication-Results: vigie.test; spf=pass\r\n"
       b"Received: from mx (mx [192.0.2.1])\r\n\tby vigie.test; Sun, 1 Jan 2026\r\n"
       b"authentication-results : (forged)\r\n VIGIE.TEST;\r\n\tdkim=pass header.d=x.fr\r\n"
       b"Authentication-Results: mx.provider.fr; dmarc=pass header.from=x.fr\r\n"
       b"Authentication-Results: vigie.test.evil.example; spf=pass\r\n"
       b"From: a@x.fr\r\n"
       b"\r\n"
       b"Authentication-Results: vigie.test; this is the body\r\n")


def test_remove_ours_keeps_every_other_byte() -> None:
    out = remove_ours(RAW, "Vigie.Test")
    assert out == (b"Return-Path: <a@x.fr>\r\n"
                   b"Received: from mx (mx [192.0.2.1])\r\n\tby vigie.test; Sun, 1 Jan 2026\r\n"
                   b"Authentication-Results: mx.provider.fr; dmarc=pass header.from=x.fr\r\n"
                   b"Authentication-Results: vigie.test.evil.example; spf=pass\r\n"
                   b"From: a@x.fr\r\n"
                   b"\r\n"
                   b"Authentication-Results: vigie.test; this is the body\r\n")
    assert remove_ours(RAW, "other.test") == RAW
    lf = RAW.replace(b"\r\n", b"\n")
    assert remove_ours(lf, "vigie.test") == out.replace(b"\r\n", b"\n")
    assert remove_ours(b"", "vigie.test") == b""
    assert remove_ours(b"Authentication-Results: vigie.test; none", "vigie.test") == b""


def test_parse_provider_value() -> None:
    parsed = parse_value(
        "mx.google.com;\r\n       dkim=pass header.i=@gmail.com header.s=20230601 "
        "header.b=AbC/dEf=;\r\n       spf=pass (google.com: domain of x@gmail.com designates "
        "209.85.220.41 as permitted sender) smtp.mailfrom=x@gmail.com;\r\n"
        "       dmarc=pass (p=NONE sp=QUARANTINE dis=NONE) header.from=gmail.com")
    assert parsed.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.of("dkim")[0].get("header.b") == "AbC/dEf="
    assert parsed.of("spf")[0].reason.startswith("google.com: domain of")
    assert parsed.of("dmarc")[0].get("header.from") == "gmail.com"


@pytest.mark.parametrize("value", [
    "example.org 1; none",
    "example.com; spf=pass smtp.mailfrom=example.net",
    "example.com; dkim/1=fail reason=\"bad sig\" header.i=@x (comment)",
    "example.com; auth=pass (cram-md5) smtp.auth=sender@example.net; spf=pass "
    "smtp.mailfrom=example.net",
])
def test_parse_rfc8601_examples(value: str) -> None:
    parsed = parse_value(value)
    assert parsed.authserv_id in ("example.org", "example.com")


@pytest.mark.parametrize("value", ["", "; spf=pass", "x; spf", "x; spf=", "x; spf=pass (open",
                                   "x; spf=pass smtp.mailfrom", 'x; spf=pass a.b="open'])
def test_parse_errors(value: str) -> None:
    with pytest.raises(ValueError):
        parse_value(value)


def test_trusted_results() -> None:
    found = trusted_results(RAW, ["MX.provider.fr"])
    assert [r.authserv_id for r in found] == ["mx.provider.fr"]
    assert found[0].of("dmarc")[0].result == "pass"
    assert trusted_results(RAW, []) == []


def test_no_control_character_reaches_the_header() -> None:
    value = build_value("vigie.test", dkim=[DkimResult(
        "permerror", 0, domain="x.fr\r\nBcc: evil@x.fr", selector="s\n", b="ab\rcd",
        reason="bad\r\nX-Injected: 1")], mail_from="a\r\n@x.fr",
        spf=SpfResult("pass", "x.fr"))
    assert not any(ch in value for ch in "\r\n\x00")
    assert len(parse_value(value).results) == 2
    assert b"\r\n" not in header_field(value).rstrip(b"\r\n").replace(b"\r\n\t", b"")
