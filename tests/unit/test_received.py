"""Client IP and HELO from the Received fields of trusted relays, table-driven.

The Received lines are written after the formats each MTA really produces.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.detect.received import (
    FromClause,
    NoOrigin,
    Origin,
    origin_from_received,
    parse_from_clause,
    parse_trusted,
)

DATE = "Sun, 29 Nov 2026 10:00:00 +0100 (CET)"

POSTFIX = ("from mail.confrere-kine.fr (mail.confrere-kine.fr [192.0.2.25])\r\n"
           "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
           "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
           "\t(No client certificate requested)\r\n"
           "\tby mx1.fournisseur.fr (Postfix) with ESMTPS id 4ZxQk71Tg3z9rxL\r\n"
           f"\tfor <camille@cabinet-kine.fr>; {DATE}")
POSTFIX_UNKNOWN = ("from helo.example.net (unknown [198.51.100.7])\r\n"
                   f"\tby mx1.fournisseur.fr (Postfix) with ESMTP id 4ZxQk71Tg3z9rxL; {DATE}")
POSTFIX_V6 = ("from mail.example.org (mail.example.org [IPv6:2001:db8:1::25])\r\n"
              f"\tby mx1.fournisseur.fr (Postfix) with ESMTPS id 4ZxQk; {DATE}")
POSTFIX_IP_HELO = ("from [203.0.113.9] (unknown [198.51.100.77])\r\n"
                   f"\tby mx1.fournisseur.fr (Postfix) with ESMTP id 4ZxQk; {DATE}")
EXIM = ("from mail.confrere-kine.fr ([192.0.2.25]:54321 helo=smtp.confrere-kine.fr)\r\n"
        "\tby mx.fournisseur.fr with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n"
        "\t(Exim 4.96)\r\n\t(envelope-from <dr.martin@confrere-kine.fr>)\r\n"
        f"\tid 1t9XyZ-000ABC-2d\r\n\tfor camille@cabinet-kine.fr; {DATE}")
EXIM_SAME_HELO = ("from mail.confrere-kine.fr ([192.0.2.25])\r\n"
                  f"\tby mx.fournisseur.fr with esmtp (Exim 4.96) id 1t9XyZ-000ABC-2d; {DATE}")
EXIM_NO_RDNS = ("from [198.51.100.7] (port=40122 helo=pc-secretariat)\r\n"
                "\tby mx.fournisseur.fr with esmtp (Exim 4.96)\r\n"
                f"\t(envelope-from <x@example.net>) id 1t9XyZ-000ABC-2d; {DATE}")
EXIM_V6 = ("from mail.example.org ([2001:db8:1::25]:41000 helo=mail.example.org.)\r\n"
           f"\tby mx.fournisseur.fr with esmtps (TLS1.3) (Exim 4.97) id 1t9X; {DATE}")
SENDMAIL = ("from smtp.confrere-kine.fr (mail.confrere-kine.fr [192.0.2.25])\r\n"
            "\tby relais.fournisseur.fr (8.17.1/8.17.1) with ESMTPS id 4ATA0abc012345\r\n"
            "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)\r\n"
            f"\tfor <camille@cabinet-kine.fr>; {DATE}")
SENDMAIL_FORGED = ("from mail.ameli.fr (host-7.pirate.example [198.51.100.7] (may be forged))\r\n"
                   f"\tby relais.fournisseur.fr (8.17.1/8.17.1) with ESMTP id 4ATA0; {DATE}")
SENDMAIL_V6 = ("from mail.example.org (mail.example.org [IPv6:2001:db8:1::25])\r\n"
               f"\tby relais.fournisseur.fr (8.17.1/8.17.1) with ESMTP id 4ATA0; {DATE}")
EXCHANGE_INBOUND = ("from mail.confrere-kine.fr (192.0.2.25) by\r\n"
                    " AM4PEPF00027A5F.mail.protection.outlook.com (10.167.16.73) with Microsoft\r\n"
                    " SMTP Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384)\r\n"
                    " id 15.20.7587.17\r\n"
                    " via Frontend Transport; Sun, 29 Nov 2026 09:00:00 +0000")
EXCHANGE_INTERNAL_V6 = ("from AM0PR02MB1234.eurprd02.prod.outlook.com (2603:10a6:208:c0::12)\r\n"
                        " by AM9PR02MB5678.eurprd02.prod.outlook.com (2603:10a6:20b:3a2::9)\r\n"
                        " with Microsoft SMTP Server (version=TLS1_2,\r\n"
                        " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7633.22;\r\n"
                        " Sun, 29 Nov 2026 09:00:00 +0000")
EXCHANGE_IP_HELO = ("from [192.168.1.10] (192.0.2.50) by EXCH01.cabinet.local (10.0.0.5)\r\n"
                    " with Microsoft SMTP Server id 15.1.2507.6; Sun, 29 Nov 2026 09:00:00 +0000")
GMAIL = ("from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\r\n"
         "        by mx.google.com with SMTPS id a1sor123456wrb.12.2026.11.29.01.00.00\r\n"
         "        for <camille@gmail.com>\r\n        (Google Transport Security);\r\n"
         "        Sun, 29 Nov 2026 01:00:00 -0800 (PST)")
GMAIL_V6 = ("from mail-ej1-x62e.google.com (mail-ej1-x62e.google.com. [2a00:1450:4864:20::62e])\r\n"
            "        by mx.fournisseur.fr with ESMTPS id z3si1234567ejb.99.2026.11.29.01.00.00\r\n"
            "        for <camille@cabinet-kine.fr>; Sun, 29 Nov 2026 01:00:00 -0800 (PST)")
QMAIL = ("from unknown (HELO mail.confrere-kine.fr) (192.0.2.25)\r\n"
         f"  by mx.fournisseur.fr with SMTP; {DATE}")
QMAIL_SAME = f"from mail.confrere-kine.fr (192.0.2.25)\r\n  by mx.fournisseur.fr with SMTP; {DATE}"
QMAIL_INFO = ("from mail.example.org (HELO mail.example.org) (postmaster@198.51.100.7)\r\n"
              f"  by mx.fournisseur.fr with SMTP; {DATE}")
QMAIL_NOTE = "(qmail 12345 invoked from network); 29 Nov 2026 09:00:00 -0000"
OPENSMTPD = ("from mail.confrere-kine.fr (mail.confrere-kine.fr [192.0.2.25])\r\n"
             "\tby mx.fournisseur.fr (OpenSMTPD) with ESMTPS id 1a2b3c4d\r\n"
             "\t(TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO)\r\n"
             f"\tfor <camille@cabinet-kine.fr>; {DATE}")
OPENSMTPD_V6 = ("from mail.example.org (mail.example.org [IPv6:2001:db8:1::25])\r\n"
                f"\tby mx.fournisseur.fr (OpenSMTPD) with ESMTP id 5e6f7a8b; {DATE}")
COURIER = ("from mail.example.org (mail.example.org [::ffff:192.0.2.25])\r\n"
           "  (AUTH: LOGIN someone, TLS: TLSv1.3,256bits,TLS_AES_256_GCM_SHA384)\r\n"
           "  by mx.fournisseur.fr with ESMTPS; Sun, 29 Nov 2026 09:00:00 +0000\r\n"
           "  id 000000000012ABCD.00000000674A1B2C.00001234")
AMAVIS_BACK = ("from localhost (localhost [127.0.0.1])\r\n"
               f"\tby mx1.fournisseur.fr (Postfix) with ESMTP id 4ZxQk8; {DATE}")
AMAVIS = ("from mx1.fournisseur.fr ([127.0.0.1])\r\n"
          "\tby localhost (mx1.fournisseur.fr [127.0.0.1]) (amavisd-new, port 10024)\r\n"
          f"\twith ESMTP id aBcDeF12; {DATE}")

CLAUSES: list[tuple[str, str, FromClause | None]] = [
    ("postfix", POSTFIX, FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("postfix, no rdns", POSTFIX_UNKNOWN, FromClause("198.51.100.7", "helo.example.net")),
    ("postfix, IPv6", POSTFIX_V6, FromClause("2001:db8:1::25", "mail.example.org")),
    ("postfix, address literal HELO", POSTFIX_IP_HELO,
     FromClause("198.51.100.77", "[203.0.113.9]")),
    ("exim", EXIM, FromClause("192.0.2.25", "smtp.confrere-kine.fr")),
    ("exim, helo = host name", EXIM_SAME_HELO,
     FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("exim, no rdns", EXIM_NO_RDNS, FromClause("198.51.100.7", "pc-secretariat")),
    ("exim, IPv6", EXIM_V6, FromClause("2001:db8:1::25", "mail.example.org.")),
    ("sendmail", SENDMAIL, FromClause("192.0.2.25", "smtp.confrere-kine.fr")),
    ("sendmail, may be forged", SENDMAIL_FORGED, FromClause("198.51.100.7", "mail.ameli.fr")),
    ("sendmail, IPv6", SENDMAIL_V6, FromClause("2001:db8:1::25", "mail.example.org")),
    ("microsoft 365 inbound", EXCHANGE_INBOUND,
     FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("microsoft 365 internal IPv6", EXCHANGE_INTERNAL_V6,
     FromClause("2603:10a6:208:c0::12", "AM0PR02MB1234.eurprd02.prod.outlook.com")),
    ("exchange, address literal HELO", EXCHANGE_IP_HELO,
     FromClause("192.0.2.50", "[192.168.1.10]")),
    ("gmail", GMAIL, FromClause("209.85.220.41", "mail-sor-f41.google.com")),
    ("gmail, IPv6", GMAIL_V6, FromClause("2a00:1450:4864:20::62e", "mail-ej1-x62e.google.com")),
    ("qmail", QMAIL, FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("qmail, helo = host name", QMAIL_SAME, FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("qmail, remote info", QMAIL_INFO, FromClause("198.51.100.7", "mail.example.org")),
    ("opensmtpd", OPENSMTPD, FromClause("192.0.2.25", "mail.confrere-kine.fr")),
    ("opensmtpd, IPv6", OPENSMTPD_V6, FromClause("2001:db8:1::25", "mail.example.org")),
    ("courier, IPv4-mapped", COURIER, FromClause("192.0.2.25", "mail.example.org")),
    ("amavis", AMAVIS, FromClause("127.0.0.1", "mx1.fournisseur.fr")),
    # HELO arguments that try to plant an address where the relay writes its own
    ("qmail, HELO with a planted address", "from unknown (HELO x) (6.6.6.6) by evil (y)"
     f" (198.51.100.7)\r\n  by mx.fournisseur.fr with SMTP; {DATE}",
     FromClause("198.51.100.7", "x) (6.6.6.6) by evil (y")),
    ("qmail, HELO an address literal", "from unknown (HELO [6.6.6.6]) (198.51.100.7)\r\n"
     f"  by mx.fournisseur.fr with SMTP; {DATE}", FromClause("198.51.100.7", "[6.6.6.6]")),
    ("postfix, HELO with brackets", "from x([6.6.6.6]) (unknown [198.51.100.7])\r\n"
     f"\tby mx1.fournisseur.fr (Postfix) with ESMTP id 4Z; {DATE}",
     FromClause("198.51.100.7", "x([6.6.6.6])")),
    # no from clause, or one in no known form
    ("local submission", "by mx1.fournisseur.fr (Postfix, from userid 1000)\r\n"
     f"\tid 4ZxQk; {DATE}", None),
    ("qmail local", "(qmail 4242 invoked by uid 89); 29 Nov 2026 09:00:00 -0000", None),
    ("gmail internal", "by 2002:a05:6000:1a8c:b0:385:f0c8:1234 with SMTP id "
     f"a12csp345678wrb; {DATE}", None),
    ("from without address", f"from mail.example.org by mx.example.net; {DATE}", None),
    ("bracketed non-address", f"from a (b [not.an.ip]) by mx; {DATE}", None),
    ("bare bracket without Exim", f"from [6.6.6.6] by mx.example.net; {DATE}", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CLAUSES],
                         ids=[c[0] for c in CLAUSES])
def test_from_clause(value: str, expected: FromClause | None) -> None:
    assert parse_from_clause(value) == expected


MX = "203.0.113.10"  # the provider's MX, trusted
MX6 = "2001:db8:ffff::10"
FILTER = "10.0.0.5"  # a second relay inside the provider, trusted
TRUSTED = parse_trusted(["203.0.113.0/28", "10.0.0.0/8", "2001:db8:ffff::/48"])
FORGED = (f"from trusted.fournisseur.fr (trusted.fournisseur.fr [203.0.113.11]) by mx (Postfix)"
          f" with ESMTP id X; {DATE}")
HOP_MX_FROM_FILTER = (f"from filter.fournisseur.fr (filter.fournisseur.fr [{FILTER}])\r\n"
                      f"\tby mx1.fournisseur.fr (Postfix) with ESMTP id 4Z; {DATE}")

WALKS: list[tuple[str, list[str], str, Origin | NoOrigin]] = [
    ("not behind a relay: the connecting host", [POSTFIX], "192.0.2.99",
     Origin("192.0.2.99", "helo.session", 0)),
    ("one trusted hop, postfix", [POSTFIX], MX,
     Origin("192.0.2.25", "mail.confrere-kine.fr", 1)),
    ("one trusted hop, IPv6 relay and client", [POSTFIX_V6], MX6,
     Origin("2001:db8:1::25", "mail.example.org", 1)),
    ("one trusted hop, exim", [EXIM], MX, Origin("192.0.2.25", "smtp.confrere-kine.fr", 1)),
    ("one trusted hop, qmail with its queue note", [QMAIL_NOTE, QMAIL], MX,
     Origin("192.0.2.25", "mail.confrere-kine.fr", 2)),
    ("two trusted hops", [HOP_MX_FROM_FILTER, SENDMAIL], MX,
     Origin("192.0.2.25", "smtp.confrere-kine.fr", 2)),
    ("content filter on loopback", [AMAVIS_BACK, AMAVIS, POSTFIX], MX,
     Origin("192.0.2.25", "mail.confrere-kine.fr", 3)),
    ("forged Received below the origin is ignored", [POSTFIX, FORGED, GMAIL], MX,
     Origin("192.0.2.25", "mail.confrere-kine.fr", 1)),
    ("a forged line claiming a trusted sender is never reached",
     [POSTFIX_UNKNOWN, FORGED], MX, Origin("198.51.100.7", "helo.example.net", 1)),
    ("trusted relay line unreadable", ["by mx1.fournisseur.fr (Postfix, from userid 0) id X; "
                                       + DATE, POSTFIX], MX,
     NoOrigin("Received field 1, added by the trusted relay 203.0.113.10, has no from "
              "clause vigie can read", 0)),
    ("trusted relay added no line", [], MX,
     NoOrigin("the trusted relay 203.0.113.10 added no Received field", 0)),
    ("the second trusted relay added no line", [HOP_MX_FROM_FILTER], MX,
     NoOrigin("the trusted relay 10.0.0.5 added no Received field", 1)),
    ("bad connecting address", [POSTFIX], "not-an-ip",
     NoOrigin("the connecting address is not an IP address", 0)),
]


@pytest.mark.parametrize(("received", "connecting", "expected"), [w[1:] for w in WALKS],
                         ids=[w[0] for w in WALKS])
def test_origin_walk(received: list[str], connecting: str,
                     expected: Origin | NoOrigin) -> None:
    assert origin_from_received(received, connecting, TRUSTED, "helo.session") == expected


def test_loopback_connection_is_not_trusted_implicitly() -> None:
    """A client on 127.0.0.1 is a client like any other unless the config says so."""
    assert origin_from_received([POSTFIX], "127.0.0.1", TRUSTED) == Origin(
        "127.0.0.1", None, 0)
    local = parse_trusted(["127.0.0.1"])
    assert origin_from_received([POSTFIX], "127.0.0.1", local) == Origin(
        "192.0.2.25", "mail.confrere-kine.fr", 1)


def test_no_origin_is_falsy_and_says_why() -> None:
    result = origin_from_received([], MX, TRUSTED)
    assert not result
    assert isinstance(result, NoOrigin)
    assert "203.0.113.10" in result.reason


def test_ipv4_mapped_connecting_address() -> None:
    assert origin_from_received([POSTFIX], "::ffff:203.0.113.10", TRUSTED) == Origin(
        "192.0.2.25", "mail.confrere-kine.fr", 1)


def test_parse_trusted() -> None:
    assert parse_trusted(["192.0.2.1", " 2001:db8::/32 ", "10.1.2.3/8"]) == [
        ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("10.0.0.0/8")]
    with pytest.raises(ValueError, match=r"'mx\.example\.org'"):
        parse_trusted(["mx.example.org"])


HELO_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@settings(max_examples=300, deadline=None)
@given(helo=st.text(HELO_CHARS, min_size=1, max_size=60))
def test_a_postfix_helo_cannot_plant_an_address(helo: str) -> None:
    """Postfix writes the HELO argument (one word) before its own comment."""
    line = f"from {helo} (unknown [198.51.100.7])\r\n\tby mx1 (Postfix) with ESMTP id 4Z; {DATE}"
    assert parse_from_clause(line) == FromClause("198.51.100.7", helo)


@settings(max_examples=300, deadline=None)
@given(helo=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80))
def test_a_qmail_helo_cannot_plant_an_address(helo: str) -> None:
    """qmail copies the whole HELO argument, spaces and parentheses included."""
    line = f"from unknown (HELO {helo}) (198.51.100.7)\r\n  by mx with SMTP; {DATE}"
    clause = parse_from_clause(line)
    assert clause is not None and clause.ip == "198.51.100.7"


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(max_size=200), max_size=4),
       connecting=st.sampled_from([MX, MX6, FILTER, "192.0.2.1", "::1", "junk"]))
def test_any_text_gives_an_origin_or_a_reason(lines: list[str], connecting: str) -> None:
    result = origin_from_received(lines, connecting, TRUSTED)
    if isinstance(result, NoOrigin):
        assert result.reason
    else:
        assert ipaddress.ip_address(result.ip)
        assert 0 <= result.hops_skipped <= len(lines)
