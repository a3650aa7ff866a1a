"""What the console shows of one held message: header fields, the attachment list
with true types, and a plain-text preview — the mail's HTML is turned into text,
never rendered. Pure: bytes in, plain data out.
"""

from __future__ import annotations

import email
import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser

import magic

PREVIEW_LIMIT = 20_000  # characters of text shown
MAGIC_BYTES = 1 << 20  # libmagic needs the start of a file, not all of it
SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
                 "Return-Path", "Authentication-Results", "Received", "X-Mailer",
                 "User-Agent", "Content-Type")
# Outbound mail comes from the practice: the recipients and the subject may name a
# patient, so only these are shown until the admin chooses to see the content.
TECHNICAL_HEADERS = ("From", "Date", "Message-ID", "X-Mailer", "User-Agent", "Content-Type")


@dataclass(frozen=True)
class Attachment:
    filename: str
    declared: str  # the Content-Type the mail says
    true_type: str  # what libmagic finds in the decoded bytes
    size: int
    name_type: str = ""  # the type the file name's extension claims (not shown)

    @property
    def mismatch(self) -> bool:
        """The declared type (or the file name) and the content disagree: a .exe sent
        as a PDF, or plain text (a script, an EICAR test file) named or declared a
        PDF or an image."""
        claimed = self.declared
        if claimed in _GENERIC:
            claimed = self.name_type
        if claimed in _GENERIC or self.true_type in ("application/octet-stream", ""):
            return False
        if self.true_type == "text/plain":
            main = claimed.split("/")[0]
            return main in _BINARY_MAIN and claimed not in _TEXTUAL and not claimed.endswith(
                ("+xml", "+json"))
        return claimed.split("/")[0] != self.true_type.split("/")[0] or (
            claimed.split("/")[0] == "application" and claimed != self.true_type)


_GENERIC = frozenset({"application/octet-stream", "text/plain", ""})
_BINARY_MAIN = frozenset({"application", "image", "audio", "video", "font"})
# application types whose content is text: plain text there is no surprise
_TEXTUAL = frozenset({"application/json", "application/xml", "application/javascript",
                      "application/x-javascript", "application/ecmascript",
                      "application/x-sh", "application/x-csh", "application/x-perl",
                      "application/x-python", "application/pgp-signature",
                      "application/pgp-keys", "application/pgp-encrypted", "application/rtf",
                      "application/x-yaml", "application/yaml", "application/sql",
                      "application/x-tex", "application/x-latex", "application/mbox",
                      "application/x-pem-file", "application/pkix-cert"})


def _name_type(filename: str) -> str:
    return mimetypes.guess_type(filename, strict=False)[0] or "" if filename else ""


@dataclass
class Preview:
    headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    text: str = ""
    text_source: str = ""  # "text/plain", "text/html" (converted) or ""
    truncated: bool = False
    unreadable: bool = False  # the bytes could not be parsed as a message


class _TextOfHTML(HTMLParser):
    """Visible text of an HTML part: tags dropped, scripts and styles skipped,
    block elements on their own lines, links shown as «text [address]»."""

    BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table",
                        "blockquote", "pre", "hr", "ul", "ol", "section", "article",
                        "header", "footer"})
    LINES = frozenset({"br", "tr", "li"})  # a new line before, none after
    SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS or tag in self.LINES:
            self.parts.append("\n")
        if tag == "a":
            self._href.append(dict(attrs).get("href"))
        if tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f" [image : {alt}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a" and self._href:
            href = self._href.pop()
            if href and not href.startswith("#"):
                self.parts.append(f" [{href}]")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        joined = "".join(self.parts)
        joined = re.sub(r"[ \t\r\f\v]+", " ", joined)
        joined = re.sub(r" *\n *", "\n", joined)
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_to_text(html: str) -> str:
    parser = _TextOfHTML()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - HTMLParser is lenient
        pass
    return parser.text()


def true_type(data: bytes) -> str:
    try:
        return str(magic.from_buffer(data[:MAGIC_BYTES], mime=True))
    except Exception:  # libmagic errors on odd input: not worth failing the page
        return "application/octet-stream"


def _decoded(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message) -> str:
    data = _decoded(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", "replace")


def _header_text(msg: Message, name: str) -> list[str]:
    out = []
    for value in msg.get_all(name, []):
        text = str(value)
        out.append(re.sub(r"\s+", " ", text).strip())
    return out


def build_preview(raw: bytes, *, content: bool = True) -> Preview:
    """The preview of ``raw``. With ``content=False`` (outbound mail not yet
    unveiled) only technical header fields and attachment types and sizes are
    given: no subject, recipients, file names or text."""
    preview = Preview()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # the email package raises many things on broken input
        preview.unreadable = True
        return preview
    names = SHOWN_HEADERS if content else TECHNICAL_HEADERS
    for name in names:
        try:
            values = _header_text(msg, name)
        except Exception:  # a header the policy cannot parse: show it raw
            values = [str(v) for v in msg.get_all(name, [])]
        preview.headers.extend((name, v) for v in values)
    plain: Message | None = None
    html: Message | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        ctype = part.get_content_type()
        if filename or disposition == "attachment" or not ctype.startswith("text/"):
            data = _decoded(part)
            preview.attachments.append(Attachment(
                filename=(filename or "(sans nom)") if content else "(masqué)",
                declared=ctype, true_type=true_type(data), size=len(data),
                name_type=_name_type(filename or "")))
            continue
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
    if not content:
        return preview
    if plain is not None:
        text, preview.text_source = _part_text(plain), "text/plain"
    elif html is not None:
        text, preview.text_source = html_to_text(_part_text(html)), "text/html"
    else:
        text = ""
    if len(text) > PREVIEW_LIMIT:
        text, preview.truncated = text[:PREVIEW_LIMIT], True
    preview.text = text
    return preview

