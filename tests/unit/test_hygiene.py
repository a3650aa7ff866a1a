"""Hygiene detector, table-driven."""

from __future__ import annotations

import pytest

from gateway.detect.hygiene import inspect

GOOD_HEAD = (b"From: Camille <camille@cabinet-kine.fr>\r\nTo: a@example.org\r\n"
             b"Date: Sun, 29 Nov 2026 10:00:00 +0100\r\nMessage-ID: <1@cabinet-kine.fr>\r\n"
             b"Subject: Rendez-vous\r\n")


def symbols(raw: bytes, *, eightbit: bool = False, utf8: bool = False,
            max_header: int = 64 * 1024) -> set[str]:
    return {h.symbol for h in inspect(raw, declared_8bitmime=eightbit, smtputf8=utf8,
                                      max_header_size=max_header)}


CASES: list[tuple[str, bytes, set[str]]] = [
    ("clean", GOOD_HEAD + b"\r\nBonjour\r\n", set()),
    ("clean, dot line is content", GOOD_HEAD + b"\r\na\r\n.\r\nb\r\n", set()),
    ("folded header", GOOD_HEAD + b"X-Long: a\r\n b\r\n\r\nhi\r\n", set()),
    ("no from", GOOD_HEAD.replace(b"From: Camille <camille@cabinet-kine.fr>\r\n", b"")
     + b"\r\nhi\r\n", {"HYG_NO_FROM"}),
    ("two froms", GOOD_HEAD + b"From: other@example.org\r\n\r\nhi\r\n", {"HYG_MULTI_FROM"}),
    ("unparseable from", GOOD_HEAD.replace(b"camille@cabinet-kine.fr", b"camille")
     + b"\r\nhi\r\n", {"HYG_FROM_INVALID"}),
    ("no date", GOOD_HEAD.replace(b"Date: Sun, 29 Nov 2026 10:00:00 +0100\r\n", b"")
     + b"\r\nhi\r\n", {"HYG_NO_DATE"}),
    ("two dates", GOOD_HEAD + b"Date: Mon, 30 Nov 2026 10:00:00 +0100\r\n\r\nhi\r\n",
     {"HYG_MULTI_DATE"}),
    ("bad date", GOOD_HEAD.replace(b"Sun, 29 Nov 2026 10:00:00 +0100", b"demain matin")
     + b"\r\nhi\r\n", {"HYG_DATE_INVALID"}),
    ("no message-id", GOOD_HEAD.replace(b"Message-ID: <1@cabinet-kine.fr>\r\n", b"")
     + b"\r\nhi\r\n", {"HYG_NO_MESSAGE_ID"}),
    ("two message-ids", GOOD_HEAD + b"Message-ID: <2@x>\r\n\r\nhi\r\n",
     {"HYG_MULTI_MESSAGE_ID"}),
    ("two subjects", GOOD_HEAD + b"Subject: autre\r\n\r\nhi\r\n", {"HYG_MULTI_SUBJECT"}),
    ("two to", GOOD_HEAD + b"To: b@example.org\r\n\r\nhi\r\n", {"HYG_MULTI_SINGLE_HEADER"}),
    ("header line too long", GOOD_HEAD + b"X-Big: " + b"a" * 1000 + b"\r\n\r\nhi\r\n",
     {"HYG_HEADER_LINE_TOO_LONG"}),
    ("8-bit body undeclared", GOOD_HEAD + "\r\nà demain\r\n".encode(), {"HYG_8BIT_UNDECLARED"}),
    ("8-bit header without smtputf8", GOOD_HEAD + "X-Nom: Élodie\r\n\r\nhi\r\n".encode(),
     {"HYG_8BIT_HEADER"}),
    ("nul byte", GOOD_HEAD + b"\r\nhi\x00there\r\n", {"HYG_NUL_BYTE"}),
    ("bare lf", GOOD_HEAD + b"\r\nline one\nline two\r\n", {"HYG_BARE_LF"}),
    ("smuggling lf.lf", GOOD_HEAD + b"\r\nhi\n.\nMAIL FROM:<x@y>\r\n", {"HYG_SMUGGLING"}),
    ("smuggling lf.crlf", GOOD_HEAD + b"\r\nhi\n.\r\nMAIL FROM:<x@y>\r\n", {"HYG_SMUGGLING"}),
    ("smuggling crlf.lf", GOOD_HEAD + b"\r\nhi\r\n.\nMAIL FROM:<x@y>\r\n", {"HYG_SMUGGLING"}),
    ("smuggling cr.cr", GOOD_HEAD + b"\r\nhi\r.\rMAIL FROM:<x@y>\r\n", {"HYG_SMUGGLING"}),
    ("not a message", b"hello world, no headers\r\n", {"HYG_NOT_A_MESSAGE"}),
    ("empty", b"\r\n", {"HYG_NOT_A_MESSAGE"}),
]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hygiene_table(name: str, raw: bytes, expected: set[str]) -> None:
    assert symbols(raw) == expected


def test_declared_8bit_is_fine() -> None:
    raw = GOOD_HEAD + "\r\nà demain\r\n".encode()
    assert symbols(raw, eightbit=True) == set()
    assert symbols(GOOD_HEAD + "X-Nom: Élodie\r\n\r\nhi\r\n".encode(), utf8=True) == set()


def test_header_too_big() -> None:
    raw = GOOD_HEAD + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 100) for i in range(20)) + b"\r\n"
    assert "HYG_HEADER_TOO_BIG" in symbols(raw, max_header=1000)


def test_too_many_headers() -> None:
    raw = GOOD_HEAD + b"".join(b"X-F: v\r\n" for _ in range(1100)) + b"\r\nhi\r\n"
    assert "HYG_TOO_MANY_HEADERS" in symbols(raw)


def test_evidence_never_quotes_header_values() -> None:
    raw = (b"From: a@b.fr\r\nFrom: Jean Dupont NIR 185057800608436 <x@y.fr>\r\n"
           b"Subject: lombalgie\r\nSubject: lombalgie\r\n\r\nhi\r\n")
    for hit in inspect(raw, declared_8bitmime=False, smtputf8=False):
        text = " ".join(hit.evidence) + hit.reason.fr + hit.reason.en
        assert "185057800608436" not in text and "lombalgie" not in text and "Dupont" not in text
