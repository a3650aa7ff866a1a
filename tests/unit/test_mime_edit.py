"""The warning banner in delivered mail: which parts get it, what stays byte-identical.

The messages are written the way Thunderbird, Outlook, Gmail and Apple Mail build
them (boundaries, header order, charsets and transfer encodings as they produce).
"""

from __future__ import annotations

import base64
import email.policy
import quopri
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mime_edit import MAX_DEPTH, BannerStatus, add_banner, banner_html
from tests.samples_builder import make_pdf, make_png

BANNER = ("⚠ vigie : ce message prétend venir d'un confrère mais n'a pas été envoyé "
          "depuis son adresse habituelle.\n"
          "Ne répondez pas et ne cliquez sur rien avant d'avoir vérifié par téléphone.")
BANNER_LINES = BANNER.splitlines()
PDF = make_pdf(["Compte rendu de bilan", "Séance du 29 novembre"])
PNG = make_png(16, 16)


def b64(data: bytes, eol: str = "\r\n") -> str:
    flat = base64.b64encode(data).decode("ascii")
    return "".join(flat[i:i + 76] + eol for i in range(0, len(flat), 76))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def latin1_crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1")


HEAD = ("Return-Path: <dr.martin@confrere-kine.fr>\n"
        "Received: from mail.confrere-kine.fr (mail.confrere-kine.fr [192.0.2.25])\n"
        "\tby mx1.fournisseur.fr (Postfix) with ESMTPS id 4ZxQk71Tg3z9rxL\n"
        "\tfor <camille@cabinet-kine.fr>; Sun, 29 Nov 2026 10:00:00 +0100 (CET)\n")

PDF_PART = ('Content-Type: application/pdf; name="bilan.pdf"\n'
            'Content-Disposition: attachment; filename="bilan.pdf"\n'
            "Content-Transfer-Encoding: base64\n\n" + b64(PDF, "\n"))

THUNDERBIRD = HEAD + """\
Content-Type: multipart/mixed; boundary="------------0aBcD1eF2gH3iJ4kL5mN6oP7"
Message-ID: <4c1d2e3f-aaaa-bbbb-cccc-1234567890ab@confrere-kine.fr>
Date: Sun, 29 Nov 2026 10:00:00 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: fr
To: Camille <camille@cabinet-kine.fr>
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: Bilan de M. X

This is a multi-part message in MIME format.
--------------0aBcD1eF2gH3iJ4kL5mN6oP7
Content-Type: multipart/alternative;
 boundary="------------Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"

--------------Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Bonjour Camille,

Voici le bilan de la séance.

Cordialement,
--
Dr Martin

--------------Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: 8bit

<!DOCTYPE html>
<html>
  <head>
    <meta http-equiv="content-type" content="text/html; charset=UTF-8">
  </head>
  <body>
    <p>Bonjour Camille,</p>
    <p>Voici le bilan de la séance.</p>
  </body>
</html>

--------------Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2--
--------------0aBcD1eF2gH3iJ4kL5mN6oP7
""" + PDF_PART + """
--------------0aBcD1eF2gH3iJ4kL5mN6oP7--
"""

THUNDERBIRD_PLAIN = HEAD + """\
Message-ID: <5d2e3f40-aaaa-bbbb-cccc-1234567890ab@confrere-kine.fr>
Date: Sun, 29 Nov 2026 10:00:00 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: fr
To: camille@cabinet-kine.fr
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: Rappel
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Merci de me rappeler au 01 23 45 67 89.
"""

OUTLOOK_HTML = """\
<html xmlns:v=3D"urn:schemas-microsoft-com:vml" xmlns:o=3D"urn:schemas-micr=
osoft-com:office:office" xmlns:w=3D"urn:schemas-microsoft-com:office:word" =
xmlns:m=3D"http://schemas.microsoft.com/office/2004/12/omml" xmlns=3D"http:=
//www.w3.org/TR/REC-html40">
<head>
<meta http-equiv=3D"Content-Type" content=3D"text/html; charset=3Diso-8859-=
1">
<style><!--
p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif=
;}
--></style>
</head>
<body lang=3D"FR" link=3D"#0563C1" vlink=3D"#954F72" style=3D"word-wrap:bre=
ak-word">
<div class=3D"WordSection1">
<p class=3D"MsoNormal">Bonjour,<o:p></o:p></p>
<p class=3D"MsoNormal">Voici le compte rendu de la s=E9ance.<o:p></o:p></p>
<p class=3D"MsoNormal"><img width=3D"16" height=3D"16" src=3D"cid:image001.=
png@01DB4242.ABCDEF00"></p>
</div>
</body>
</html>
"""

OUTLOOK = HEAD + """\
From: "Martin, Pierre" <dr.martin@confrere-kine.fr>
To: Camille <camille@cabinet-kine.fr>
Subject: Compte rendu
Thread-Topic: Compte rendu
Thread-Index: AdtCQkJCQkJCQkJCQkJCQkJCQkJCQg==
Date: Sun, 29 Nov 2026 09:00:00 +0000
Message-ID: <AM0PR02MB12345678ABCDEF@AM0PR02MB1234.eurprd02.prod.outlook.com>
Accept-Language: fr-FR, en-US
Content-Language: fr-FR
X-MS-Has-Attach: yes
Content-Type: multipart/mixed;
\tboundary="_004_AM0PR02MB12345678ABCDEF_"
MIME-Version: 1.0

--_004_AM0PR02MB12345678ABCDEF_
Content-Type: multipart/related;
\tboundary="_003_AM0PR02MB12345678ABCDEF_";
\ttype="multipart/alternative"

--_003_AM0PR02MB12345678ABCDEF_
Content-Type: multipart/alternative;
\tboundary="_000_AM0PR02MB12345678ABCDEF_"

--_000_AM0PR02MB12345678ABCDEF_
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Bonjour,

Voici le compte rendu de la s=E9ance.

[cid:image001.png@01DB4242.ABCDEF00]

--_000_AM0PR02MB12345678ABCDEF_
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

""" + OUTLOOK_HTML + """
--_000_AM0PR02MB12345678ABCDEF_--

--_003_AM0PR02MB12345678ABCDEF_
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"; size=90;
\tcreation-date="Sun, 29 Nov 2026 09:00:00 GMT";
\tmodification-date="Sun, 29 Nov 2026 09:00:00 GMT"
Content-ID: <image001.png@01DB4242.ABCDEF00>
Content-Transfer-Encoding: base64

""" + b64(PNG, "\n") + """
--_003_AM0PR02MB12345678ABCDEF_--

--_004_AM0PR02MB12345678ABCDEF_
""" + PDF_PART + """
--_004_AM0PR02MB12345678ABCDEF_--
"""

GMAIL = HEAD + """\
MIME-Version: 1.0
From: Patient <un.patient@gmail.com>
Date: Sun, 29 Nov 2026 10:00:00 +0100
Message-ID: <CAFx1a2b3c4d5e6f7g8h9i0jKLMNOPqrstuvwxyz@mail.gmail.com>
Subject: Ordonnance
To: camille@cabinet-kine.fr
Content-Type: multipart/mixed; boundary="000000000000b1c2d3060d4e5f6b"

--000000000000b1c2d3060d4e5f6b
Content-Type: multipart/alternative; boundary="000000000000a1b2c3060d4e5f6a"

--000000000000a1b2c3060d4e5f6a
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Bonjour, voici l'ordonnance pour la s=C3=A9ance de mardi.

--000000000000a1b2c3060d4e5f6a
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr">Bonjour, voici l&#39;ordonnance pour la s=C3=A9ance de mar=
di.</div>

--000000000000a1b2c3060d4e5f6a--
--000000000000b1c2d3060d4e5f6b
Content-Type: application/pdf; name="ordonnance.pdf"
Content-Disposition: attachment; filename="ordonnance.pdf"
Content-Transfer-Encoding: base64
Content-ID: <f_m3x1y2z30>
X-Attachment-Id: f_m3x1y2z30

""" + b64(PDF, "\n") + """--000000000000b1c2d3060d4e5f6b--
"""

APPLE_HTML = """\
<html><head><meta http-equiv=3D"content-type" content=3D"text/html; charset=
=3Dutf-8"></head><body style=3D"overflow-wrap: break-word; -webkit-nbsp-mode=
: space; line-break: after-white-space;">Bonjour,<div>Voici le bilan.</div>=
<div><br></div></body></html>"""

APPLE = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Content-Type: multipart/alternative;
\tboundary="Apple-Mail=_1A2B3C4D-5E6F-7A8B-9C0D-1E2F3A4B5C6D"
Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))
Subject: Bilan
Message-Id: <1A2B3C4D-0000-1111-2222-333344445555@confrere-kine.fr>
Date: Sun, 29 Nov 2026 10:00:00 +0100
To: Camille <camille@cabinet-kine.fr>
X-Mailer: Apple Mail (2.3774.600.62)


--Apple-Mail=_1A2B3C4D-5E6F-7A8B-9C0D-1E2F3A4B5C6D
Content-Transfer-Encoding: quoted-printable
Content-Type: text/plain;
\tcharset=utf-8

Bonjour,
Voici le bilan.

--Apple-Mail=_1A2B3C4D-5E6F-7A8B-9C0D-1E2F3A4B5C6D
Content-Type: multipart/mixed;
\tboundary="Apple-Mail=_99887766-5544-3322-1100-AABBCCDDEEFF"


--Apple-Mail=_99887766-5544-3322-1100-AABBCCDDEEFF
Content-Transfer-Encoding: quoted-printable
Content-Type: text/html;
\tcharset=utf-8

""" + APPLE_HTML + """
--Apple-Mail=_99887766-5544-3322-1100-AABBCCDDEEFF
Content-Disposition: inline;
\tfilename=bilan.pdf
Content-Type: application/pdf;
\tx-unix-mode=0644;
\tname="bilan.pdf"
Content-Transfer-Encoding: base64

""" + b64(PDF, "\n") + """
--Apple-Mail=_99887766-5544-3322-1100-AABBCCDDEEFF
Content-Transfer-Encoding: 7bit
Content-Type: text/html;
\tcharset=us-ascii

<html><head><meta http-equiv="content-type" content="text/html; charset=us-ascii">\
</head><body style="overflow-wrap: break-word;"><div><br></div>Cordialement</body></html>
--Apple-Mail=_99887766-5544-3322-1100-AABBCCDDEEFF--

--Apple-Mail=_1A2B3C4D-5E6F-7A8B-9C0D-1E2F3A4B5C6D--
"""

APPLE_PLAIN = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Content-Type: text/plain;
\tcharset=us-ascii
Content-Transfer-Encoding: 7bit
Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))
Subject: Rappel
Date: Sun, 29 Nov 2026 10:00:00 +0100
To: camille@cabinet-kine.fr

Merci de me rappeler.
"""

# Thunderbird, HTML with an inline image: alternative(plain, related(html, png)).
THUNDERBIRD_RELATED = HEAD + """\
Content-Type: multipart/alternative;
 boundary="------------AAAAAAAAAAAAAAAAAAAAAAAA"
MIME-Version: 1.0
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: Schema

This is a multi-part message in MIME format.
--------------AAAAAAAAAAAAAAAAAAAAAAAA
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Voir le schema.

--------------AAAAAAAAAAAAAAAAAAAAAAAA
Content-Type: multipart/related;
 boundary="------------BBBBBBBBBBBBBBBBBBBBBBBB"

--------------BBBBBBBBBBBBBBBBBBBBBBBB
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: 7bit

<html><head></head><BODY TEXT="#000000"><p>Voir le schema.</p>
<img src="cid:part1.ABCD@confrere-kine.fr"></BODY></html>

--------------BBBBBBBBBBBBBBBBBBBBBBBB
Content-Type: image/png; name="schema.png"
Content-Disposition: inline; filename="schema.png"
Content-Id: <part1.ABCD@confrere-kine.fr>
Content-Transfer-Encoding: base64

""" + b64(PNG, "\n") + """
--------------BBBBBBBBBBBBBBBBBBBBBBBB--

--------------AAAAAAAAAAAAAAAAAAAAAAAA--
"""

# a phishing kit: one base64 HTML part, no <body> tag
PHISHING_HTML = HEAD + """\
From: "Ameli" <securite@ameli-remboursement.example>
Subject: Remboursement en attente
MIME-Version: 1.0
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: base64

""" + b64("<p>Votre remboursement de 42,50 € est en attente : "
          "<a href='http://x.example/'>cliquez ici</a></p>".encode(), "\n")

# a forwarded mail: mixed(plain, message/rfc822); the forwarded one is never touched
FORWARD = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: Fwd: Facture
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd-outer"

--fwd-outer
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: 8bit

Voir ci-dessous.

--fwd-outer
Content-Type: message/rfc822

From: facture@fournisseur.example
Subject: Facture
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Facture 42 en piece jointe.

--fwd-outer--
"""

# a script's mail: no MIME at all (LF line endings), then the same with 8-bit bytes
BARE = "From: robot@example.org\nSubject: test\n\nBonjour\nligne 2\n"

SIGNED = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: Signed
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/pkcs7-signature";
 micalg=sha-256; boundary="------------ms010203040506070809000102"

This is a cryptographically signed message in MIME format.

--------------ms010203040506070809000102
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Signed text.

--------------ms010203040506070809000102
Content-Type: application/pkcs7-signature; name="smime.p7s"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="smime.p7s"
Content-Description: S/MIME Cryptographic Signature

MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAKCC

--------------ms010203040506070809000102--
"""

PGP_ENCRYPTED = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: ...
MIME-Version: 1.0
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
 boundary="------------enc0123456789"

This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
--------------enc0123456789
Content-Type: application/pgp-encrypted
Content-Description: PGP/MIME version identification

Version: 1

--------------enc0123456789
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Description: OpenPGP encrypted message
Content-Disposition: inline; filename="encrypted.asc"

-----BEGIN PGP MESSAGE-----

hF4DAAAAAAAAAAASAQdAaaaa
-----END PGP MESSAGE-----

--------------enc0123456789--
"""

SMIME_OPAQUE = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: chiffre
MIME-Version: 1.0
Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="smime.p7m"

MIAGCSqGSIb3DQEHA6CAMIACAQAxggF
"""

# a mailing list that wrapped a signed message and added a footer
LIST_SIGNED = HEAD + """\
From: Dr Martin <dr.martin@confrere-kine.fr>
Subject: [liste] Signed
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="list-outer"

--list-outer
""" + SIGNED[SIGNED.index("Content-Type: multipart/signed"):] + """
--list-outer
Content-Type: text/plain; charset="us-ascii"
Content-Disposition: inline

-- liste kine
--list-outer--
"""


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    parts: int  # bodies that get the banner
    kinds: tuple[str, ...]  # content types that get it, in document order


CASES = [
    Case("thunderbird, alternative in mixed", crlf(THUNDERBIRD), 2, ("text/plain", "text/html")),
    Case("thunderbird, plain text only", crlf(THUNDERBIRD_PLAIN), 1, ("text/plain",)),
    Case("thunderbird, related inside alternative", crlf(THUNDERBIRD_RELATED), 2,
         ("text/plain", "text/html")),
    Case("outlook, mixed(related(alternative, png), pdf)", latin1_crlf(OUTLOOK), 2,
         ("text/plain", "text/html")),
    Case("gmail, alternative in mixed", crlf(GMAIL), 2, ("text/plain", "text/html")),
    Case("apple mail, alternative(plain, mixed(html, pdf, html))", crlf(APPLE), 2,
         ("text/plain", "text/html")),
    Case("apple mail, us-ascii plain text", crlf(APPLE_PLAIN), 1, ("text/plain",)),
    Case("phishing kit, base64 html without body tag", crlf(PHISHING_HTML), 1,
         ("text/html",)),
    Case("forward, windows-1252 8bit text and message/rfc822", latin1_crlf(FORWARD), 1,
         ("text/plain",)),
    Case("no MIME, bare LF", BARE.encode(), 1, ("text/plain",)),
    Case("thunderbird with LF line endings", THUNDERBIRD.encode(), 2,
         ("text/plain", "text/html")),
]


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def shallow_leaves(msg: Message) -> list[Message]:
    """Leaf parts, message/rfc822 parts counted as one leaf (never walked into)."""
    if msg.get_content_type() == "message/rfc822" or not msg.is_multipart():
        return [msg]
    out: list[Message] = []
    payload = msg.get_payload()
    assert isinstance(payload, list)
    for child in payload:
        assert isinstance(child, Message)
        out.extend(shallow_leaves(child))
    return out


def content(part: Message) -> str:
    """The decoded text, line breaks as LF (8bit parts keep their CRLF when decoded)."""
    text = part.get_content()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def html_banners() -> list[str]:
    """The HTML block as inserted in a UTF-8 part, and in parts whose charset lacks some
    of its characters (they become character references)."""
    block = banner_html(BANNER)
    return [block] + [block.encode(charset, "xmlcharrefreplace").decode(charset)
                      for charset in ("iso-8859-1", "us-ascii")]


def has_banner(part: Message) -> bool:
    text = content(part)
    if part.get_content_type() == "text/plain":
        return text.startswith("\n".join(BANNER_LINES) + "\n\n")
    return any(block in text for block in html_banners())


def without_banner(part: Message) -> str:
    text = content(part)
    if part.get_content_type() == "text/plain":
        return text.removeprefix("\n".join(BANNER_LINES) + "\n\n")
    for block in html_banners():
        text = text.replace(block, "", 1)
    return text


def segments(raw: bytes, boundaries: list[str]) -> list[bytes]:
    """The message cut at every boundary delimiter line (lines themselves excluded)."""
    if not boundaries:
        return [raw]
    alternatives = b"|".join(re.escape(b.encode("ascii")) for b in boundaries)
    return re.split(rb"(?m)^--(?:" + alternatives + rb")(?:--)?[ \t]*\r?$", raw)


def check_only_banner_parts_changed(before: bytes, after: bytes, parts: int) -> None:
    boundaries = [b for p in parse(before).walk() if (b := p.get_boundary())]
    old, new = segments(before, boundaries), segments(after, boundaries)
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert len(changed) == parts  # one segment per edited part, every other byte the same


def check_lines(raw: bytes) -> None:
    assert max(len(line) for line in re.split(rb"\r\n|\n", raw)) <= 998


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_banner_goes_to_the_main_bodies(case: Case) -> None:
    result = add_banner(case.raw, BANNER)
    assert result.status is BannerStatus.ADDED, result.problem
    assert result.parts == case.parts
    before, after = parse(case.raw), parse(result.raw)
    old_leaves, new_leaves = shallow_leaves(before), shallow_leaves(after)
    assert [p.get_content_type() for p in old_leaves] == [
        p.get_content_type() for p in new_leaves]
    bannered = []
    for old, new in zip(old_leaves, new_leaves, strict=True):
        assert not new.defects
        if new.get_content_maintype() == "text" and has_banner(new):
            bannered.append(new.get_content_type())
            assert without_banner(new) == content(old)
        elif old.get_content_type() == "message/rfc822":
            assert new.as_bytes() == old.as_bytes()
        else:
            assert new.get_payload(decode=True) == old.get_payload(decode=True)
            assert dict(new.items()) == dict(old.items())
    assert tuple(bannered) == case.kinds
    check_only_banner_parts_changed(case.raw, result.raw, case.parts)
    check_lines(result.raw)


def test_attachments_are_byte_identical() -> None:
    for case in CASES:
        result = add_banner(case.raw, BANNER)
        for attachment in (PDF, PNG):
            for eol in ("\r\n", "\n"):
                block = b64(attachment, eol).encode("ascii")
                assert case.raw.count(block) == result.raw.count(block)


def test_html_banner_right_after_the_body_tag() -> None:
    out = parse(add_banner(crlf(THUNDERBIRD), BANNER).raw)
    html = content(next(p for p in out.walk() if p.get_content_type() == "text/html"))
    assert re.search(r"<body>" + re.escape(banner_html(BANNER)) + r"\n    <p>Bonjour", html)
    # upper-case tag with attributes
    out = parse(add_banner(crlf(THUNDERBIRD_RELATED), BANNER).raw)
    html = content(next(p for p in out.walk() if p.get_content_type() == "text/html"))
    assert '<BODY TEXT="#000000">' + banner_html(BANNER) + "<p>Voir" in html
    # no <body>: at the start
    out = parse(add_banner(crlf(PHISHING_HTML), BANNER).raw)
    assert content(out).startswith(banner_html(BANNER) + "<p>Votre remboursement")


def test_html_block_is_escaped_and_self_contained() -> None:
    block = banner_html('⚠ <script>alert("x")</script> & co\nligne 2')
    assert "<script>" not in block
    assert "&lt;script&gt;" in block and "&amp; co" in block
    assert "<br>\nligne 2" in block
    assert "http" not in block and "src=" not in block and "<style" not in block
    assert block.startswith('<div style="')


def test_caller_html_is_used_as_given() -> None:
    html = "<p><b>Attention</b> : message suspect</p>"
    out = parse(add_banner(crlf(GMAIL), "Attention : message suspect", html).raw)
    bodies = {p.get_content_type(): content(p) for p in out.walk()
              if p.get_content_maintype() == "text"}
    assert bodies["text/plain"].startswith("Attention : message suspect\n\n")
    assert bodies["text/html"].startswith(html + '<div dir="ltr">')


def test_charsets_and_transfer_encodings() -> None:
    # Outlook's iso-8859-1 plain part cannot hold "⚠": that part switches to UTF-8;
    # its HTML part keeps iso-8859-1 and gets a character reference instead
    out = add_banner(latin1_crlf(OUTLOOK), BANNER).raw
    parsed = parse(out)
    plain = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
    html = next(p for p in parsed.walk() if p.get_content_type() == "text/html")
    assert plain.get_content_charset() == "utf-8"
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content_charset() == "iso-8859-1"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    qp = html.get_payload()
    assert isinstance(qp, str)
    assert b"&#9888; vigie" in quopri.decodestring(qp.encode("ascii"))
    assert "s=E9ance" in qp  # still latin-1 bytes
    # 7bit us-ascii (Apple Mail) becomes UTF-8 quoted-printable; the header fields
    # around keep their bytes and order
    out = add_banner(crlf(APPLE_PLAIN), BANNER).raw
    assert b'Content-Type: text/plain;\r\n\tcharset="utf-8"\r\n' in out
    assert b"Content-Transfer-Encoding: quoted-printable\r\nMime-Version: 1.0 (Mac OS X" in out
    assert content(parse(out)).endswith("\n\nMerci de me rappeler.\n")
    # UTF-8 8bit (Thunderbird) stays 8bit; base64 stays base64
    out = add_banner(crlf(THUNDERBIRD), BANNER).raw
    assert out.count(b"Content-Transfer-Encoding: 8bit") == 2
    assert "⚠ vigie".encode() in out
    out = add_banner(crlf(PHISHING_HTML), BANNER).raw
    assert parse(out)["Content-Transfer-Encoding"] == "base64"
    # windows-1252 cannot hold "⚠" either: that part becomes UTF-8, still 8bit
    out = add_banner(latin1_crlf(FORWARD), BANNER).raw
    first = shallow_leaves(parse(out))[0]
    assert first.get_content_charset() == "utf-8"
    assert first["Content-Transfer-Encoding"] == "8bit"
    # a message without MIME fields gets them (the banner is not ASCII)
    out = add_banner(BARE.encode(), BANNER).raw
    assert out.startswith(b"From: robot@example.org\nSubject: test\n"
                          b'Content-Type: text/plain; charset="utf-8"\n'
                          b"MIME-Version: 1.0\n"
                          b"Content-Transfer-Encoding: quoted-printable\n\n")


def test_ascii_banner_keeps_charset_and_encoding() -> None:
    out = add_banner(crlf(APPLE_PLAIN), "Attention : message suspect").raw
    assert out == crlf(APPLE_PLAIN).replace(
        b"\r\n\r\nMerci", b"\r\n\r\nAttention : message suspect\r\n\r\nMerci")


def test_utf16_part_is_decoded_and_reencoded() -> None:
    body = "<html><body><p>Bonjour</p></body></html>".encode("utf-16")
    raw = crlf("From: a@b.example\nMIME-Version: 1.0\n"
               'Content-Type: text/html; charset="utf-16"\n'
               "Content-Transfer-Encoding: base64\n\n") + b64(body).encode("ascii")
    result = add_banner(raw, BANNER)
    assert result.added
    html = content(parse(result.raw))
    assert html == "<html><body>" + banner_html(BANNER) + "<p>Bonjour</p></body></html>"


def test_long_lines_are_never_produced() -> None:
    long_line = "x" * 2000
    raw = crlf("From: a@b.example\nMIME-Version: 1.0\n"
               "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               + long_line + "\n")
    result = add_banner(raw, BANNER + " " + "y" * 1500)
    assert result.added
    check_lines(result.raw)
    out = parse(result.raw)
    assert out["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(out).endswith(long_line + "\n")


@pytest.mark.parametrize(("name", "raw"), [
    ("S/MIME signed", crlf(SIGNED)),
    ("PGP/MIME encrypted", crlf(PGP_ENCRYPTED)),
    ("S/MIME opaque", crlf(SMIME_OPAQUE)),
    ("signed inside a list's mixed", crlf(LIST_SIGNED)),
])
def test_signed_and_encrypted_are_not_modified(name: str, raw: bytes) -> None:
    result = add_banner(raw, BANNER)
    assert result.status is BannerStatus.SIGNED
    assert result.raw is raw
    assert not result.added


MALFORMED = [
    ("no body", crlf("From: a@b.example\nSubject: x\n")),
    ("boundary never found", crlf(
        'From: a@b.example\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n'
        "--b2\nContent-Type: text/plain\n\nhi\n--b2--\n")),
    ("no closing boundary", crlf(
        'From: a@b.example\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain\n\nhi\n")),
    ("multipart without boundary", crlf(
        "From: a@b.example\nMIME-Version: 1.0\nContent-Type: multipart/mixed\n\nhi\n")),
    ("undecodable base64", crlf(
        "From: a@b.example\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\nQm9uam91c*&^\n")),
    ("unknown charset", crlf(
        "From: a@b.example\nMIME-Version: 1.0\nContent-Type: text/plain; charset=x-martian\n"
        "\nhi\n")),
    ("not a text charset", crlf(
        "From: a@b.example\nMIME-Version: 1.0\nContent-Type: text/plain; charset=base64\n"
        "\nhi\n")),
    ("unknown transfer encoding", crlf(
        "From: a@b.example\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n")),
    ("body invalid in its charset", b"From: a@b.example\r\nMIME-Version: 1.0\r\n"
     b"Content-Type: text/plain; charset=us-ascii\r\n\r\nabc\xff\xfe\r\n"),
]


@pytest.mark.parametrize(("name", "raw"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_comes_back_unchanged(name: str, raw: bytes) -> None:
    result = add_banner(raw, BANNER)
    assert result.status is BannerStatus.MALFORMED
    assert result.raw is raw
    assert result.problem
    assert b"hi" not in result.problem.encode()  # the reason never quotes the content


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_second_call_changes_nothing(case: Case) -> None:
    once = add_banner(case.raw, BANNER).raw
    again = add_banner(once, BANNER)
    assert again.status is BannerStatus.PRESENT
    assert again.raw is once


def test_rfc2231_boundary_and_related_start() -> None:
    raw = crlf(
        "From: a@b.example\nMIME-Version: 1.0\n"
        "Content-Type: multipart/related; boundary*=us-ascii''rel%2Dbound;\n"
        ' start="<root@x>"\n\n'
        "--rel-bound\nContent-Type: image/png\nContent-ID: <img@x>\n"
        "Content-Transfer-Encoding: base64\n\n" + b64(PNG, "\n")
        + "--rel-bound\nContent-Type: text/html; charset=utf-8\nContent-ID: <root@x>\n\n"
        "<html><body><img src='cid:img@x'></body></html>\n--rel-bound--\n")
    result = add_banner(raw, BANNER)
    assert result.added and result.parts == 1
    html = shallow_leaves(parse(result.raw))[1]
    assert content(html).startswith("<html><body>" + banner_html(BANNER))
    check_only_banner_parts_changed(raw, result.raw, 1)


def nested(levels: int) -> bytes:
    head, tail = b"", b""
    for i in range(levels):
        head += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        tail = b"\r\n--b%d--\r\n" % i + tail
    return (b"From: a@b.example\r\nMIME-Version: 1.0\r\n" + head
            + b"Content-Type: text/plain\r\n\r\nhi" + tail)


def test_nesting_is_bounded() -> None:
    assert add_banner(nested(MAX_DEPTH), BANNER).added
    deep = nested(2000)
    result = add_banner(deep, BANNER)
    assert result.status is BannerStatus.MALFORMED
    assert result.problem == f"multipart nested deeper than {MAX_DEPTH} levels"
    assert result.raw is deep


def test_a_mixed_with_many_parts_is_read_up_to_its_body() -> None:
    raw = (b'From: a@b.example\r\nMIME-Version: 1.0\r\n'
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           + b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 5000 + b"--b--\r\n")
    result = add_banner(raw, BANNER)
    assert result.parts == 1
    check_only_banner_parts_changed(raw, result.raw, 1)


def test_nothing_to_mark() -> None:
    only_attachment = crlf(HEAD + 'MIME-Version: 1.0\nContent-Type: multipart/mixed; '
                           'boundary="x"\n\n--x\n' + PDF_PART + "--x--\n")
    result = add_banner(only_attachment, BANNER)
    assert result.status is BannerStatus.NO_TEXT
    assert result.raw is only_attachment


# --- property: generated MIME trees --------------------------------------------------

TEXTS = st.text(alphabet=st.sampled_from("abcdefgh XYZ.,;:!?=-_<>&éèàçœ€⚠\n\t"),
                max_size=300)
CHARSETS = ["us-ascii", "iso-8859-1", "utf-8", "windows-1252", "iso-8859-15"]
CTES = ["7bit", "8bit", "quoted-printable", "base64"]


@st.composite
def text_leaf(draw: st.DrawFn) -> EmailMessage:
    subtype = draw(st.sampled_from(["plain", "html"]))
    text = draw(TEXTS)
    if subtype == "html" and draw(st.booleans()):
        text = "<html><head></head><body class='x'>" + text + "</body></html>"
    charset = draw(st.sampled_from(CHARSETS))
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    cte = draw(st.sampled_from(CTES))
    if cte == "7bit" and not text.isascii():
        cte = "quoted-printable"
    part = EmailMessage()
    part.set_content(text, subtype=subtype, charset=charset, cte=cte)
    del part["MIME-Version"]
    return part


@st.composite
def attachment_leaf(draw: st.DrawFn) -> EmailMessage:
    part = EmailMessage()
    kind = draw(st.sampled_from(["bin", "png", "txt", "pdf"]))
    if kind == "txt":
        part.set_content(draw(TEXTS), subtype="plain", charset="utf-8",
                         disposition="attachment", filename="notes.txt")
    else:
        data = {"bin": draw(st.binary(max_size=400)), "png": PNG, "pdf": PDF}[kind]
        maintype, subtype = {"bin": ("application", "octet-stream"),
                             "png": ("image", "png"), "pdf": ("application", "pdf")}[kind]
        part.set_content(data, maintype=maintype, subtype=subtype,
                         disposition=draw(st.sampled_from(["attachment", "inline"])),
                         filename=f"piece.{kind}")
    del part["MIME-Version"]
    return part


@st.composite
def rfc822_leaf(draw: st.DrawFn) -> EmailMessage:
    inner = EmailMessage()
    inner["Subject"] = "transféré"
    inner.set_content(draw(TEXTS))
    part = EmailMessage()
    part.set_content(inner)
    del part["MIME-Version"]
    return part


def multipart(children: list[EmailMessage], subtype: str) -> EmailMessage:
    node = EmailMessage()
    node["Content-Type"] = f"multipart/{subtype}"
    for child in children:
        node.attach(child)
    return node


TREES = st.recursive(
    st.one_of(text_leaf(), attachment_leaf(), rfc822_leaf()),
    lambda inner: st.builds(multipart, st.lists(inner, min_size=1, max_size=4),
                            st.sampled_from(["mixed", "alternative", "related"])),
    max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES, lf=st.booleans())
def test_generated_trees(tree: EmailMessage, lf: bool) -> None:
    tree["From"] = "Dr Martin <dr.martin@confrere-kine.fr>"
    tree["Subject"] = "arbre"
    if "MIME-Version" not in tree:
        tree["MIME-Version"] = "1.0"
    policy = email.policy.default if lf else email.policy.SMTP
    raw = tree.as_bytes(policy=policy)
    result = add_banner(raw, BANNER)
    assert result.status in (BannerStatus.ADDED, BannerStatus.NO_TEXT), result.problem
    if not result.added:
        assert result.raw is raw
        return
    before, after = parse(raw), parse(result.raw)
    old_leaves, new_leaves = shallow_leaves(before), shallow_leaves(after)
    assert len(old_leaves) == len(new_leaves)
    bannered = 0
    for old, new in zip(old_leaves, new_leaves, strict=True):
        assert new.get_content_type() == old.get_content_type()
        assert not new.defects
        if old.get_content_type() == "message/rfc822" or old.get_filename():
            # attachments and forwarded messages: not a byte changed
            assert new.as_bytes() == old.as_bytes()
        elif new.get_content_type() in ("text/plain", "text/html") and has_banner(new):
            bannered += 1
            assert without_banner(new) == content(old)
        else:
            assert new.get_payload(decode=True) == old.get_payload(decode=True)
    assert bannered == result.parts >= 1
    check_only_banner_parts_changed(raw, result.raw, result.parts)
    check_lines(result.raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_messages_never_raise(data: st.DataObject) -> None:
    """Bytes flipped, cut or inserted anywhere: a result always comes back, and the
    bytes are either unchanged or a message that still parses."""
    raw = bytearray(data.draw(st.sampled_from([c.raw for c in CASES])))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[pos] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 200))]
        else:
            raw[pos:pos] = data.draw(st.sampled_from(
                [b"\r\n", b"\r\n\r\n", b"--", b"=", b"=\r\n", b"<body>", b"\xff\xfe", b";"]))
        if not raw:
            raw = bytearray(b"x")
    damaged = bytes(raw)
    result = add_banner(damaged, BANNER)
    if result.added:
        parse(result.raw)
        assert result.parts >= 1
    else:
        assert result.raw is damaged
        assert result.problem
