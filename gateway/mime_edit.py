"""The warning banner put at the top of the text and HTML bodies of a suspicious inbound mail.

Pure byte surgery, in the spirit of ``model.prefix_subject``: the MIME tree is walked
over the original bytes (offsets, not a re-serialised ``email`` object), and only the
body parts that receive the banner are re-encoded; every other byte (other header
fields, attachments, other parts, boundaries, preamble, epilogue) stays as it was.

Which parts get the banner: the main text/plain and text/html bodies (a single-part
message; every text/plain and text/html alternative of a multipart/alternative; the
first non-attachment body of a multipart/mixed; the root of a multipart/related).
Attachments (``Content-Disposition: attachment`` or a file name) and nested
message/rfc822 parts are never touched. multipart/signed, multipart/encrypted and
application/pkcs7-mime bodies are left alone (the signature would break): the caller
then relies on the subject prefix and its header. Malformed input never raises: the
bytes come back unchanged with the reason. A body that already starts with the same
banner is not given a second one.

Encodings: an edited part keeps its Content-Transfer-Encoding (a 7bit part that now
holds 8-bit text, or any 7bit/8bit part with a line over 998 bytes, becomes
quoted-printable). A text/plain part keeps its charset when the charset can hold the
banner, else it is transcoded to UTF-8 and its charset parameter changed; an HTML part
always keeps its charset (and any ``<meta charset>`` stays true): characters it lacks
are written as character references.
"""

from __future__ import annotations

import binascii
import codecs
import enum
import html as html_lib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message as RawHeaders
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value

MAX_LINE = 998  # RFC 5322 2.1.1, CRLF excluded
QP_LINE = 76  # RFC 2045 6.7 and 6.8
MAX_DEPTH = 50  # multipart nesting; deeper is an attack on parsers, not a mail
SIGNED_TYPES = frozenset({"multipart/signed", "multipart/encrypted",
                          "application/pkcs7-mime", "application/x-pkcs7-mime"})
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_KNOWN_CTE = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_LINE_BREAK = re.compile(rb"\r\n|\n")
_HTML_ANCHORS = (re.compile(rb"<body\b[^>]*>", re.IGNORECASE),
                 re.compile(rb"</head\s*>", re.IGNORECASE),
                 re.compile(rb"<html\b[^>]*>", re.IGNORECASE))
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_CHARSET_PARAM = re.compile(rb'(;\s*charset\*?\s*=\s*)("[^"]*"|[^;\s]*)', re.IGNORECASE)
# Inline style only: mail clients drop <style> blocks and must fetch nothing.
BANNER_STYLE = ("border:2px solid #b45309;background:#fff7e6;color:#1f2937;"
                "padding:10px 12px;margin:0 0 12px 0;font-family:Arial,Helvetica,sans-serif;"
                "font-size:14px;line-height:1.4")


class BannerStatus(enum.StrEnum):
    ADDED = "added"
    PRESENT = "present"  # every main body already starts with this banner: unchanged
    SIGNED = "signed"  # signed or encrypted body: not modified
    NO_TEXT = "no-text"  # nothing that is a main text or HTML body
    MALFORMED = "malformed"  # could not be edited safely: bytes unchanged


@dataclass(frozen=True, slots=True)
class BannerResult:
    """What ``add_banner`` did. ``raw`` is the input unchanged unless ``added``.

    ``parts`` counts the bodies that received the banner; ``problem`` says, for a
    developer, why nothing was added (it never quotes message content).
    """

    raw: bytes
    status: BannerStatus
    parts: int = 0
    problem: str = ""

    @property
    def added(self) -> bool:
        return self.status is BannerStatus.ADDED


class _Malformed(Exception):
    pass


class _Signed(Exception):
    pass


class _Present(Exception):
    pass


@dataclass(slots=True)
class _Entity:
    """One MIME entity inside the message bytes: absolute offsets of its pieces."""

    start: int  # first byte of the header block
    body_start: int
    end: int  # one past the last byte of the body
    header: bytes  # header block, its final line break included
    headers: RawHeaders = field(repr=False)
    top: bool = False  # the message itself (not a part)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def is_attachment(self) -> bool:
        disposition = self.headers.get_content_disposition()
        return disposition == "attachment" or bool(self.headers.get_filename())


def add_banner(raw: bytes, text: str, html: str | None = None) -> BannerResult:
    """Put ``text`` on top of the main text/plain bodies of ``raw`` and ``html`` (by
    default ``text`` escaped, in a small inline-styled block) after the ``<body>`` tag
    of the main text/html bodies. Never raises on bad input."""
    html_block = html if html is not None else banner_html(text)
    try:
        root = _entity(raw, 0, len(raw), top=True)
        targets = list(_targets(raw, root))
        if not targets:
            return BannerResult(raw, BannerStatus.NO_TEXT,
                                problem="no main text or HTML body")
        edits = []
        for entity in targets:
            try:
                edits.append((entity.start, entity.end, _edit(raw, entity, text, html_block)))
            except _Present:
                continue
    except _Signed as exc:
        return BannerResult(raw, BannerStatus.SIGNED, problem=str(exc))
    except _Malformed as exc:
        return BannerResult(raw, BannerStatus.MALFORMED, problem=str(exc))
    except Exception as exc:  # never lose the mail over a corner case of the stdlib parser
        return BannerResult(raw, BannerStatus.MALFORMED,
                            problem=f"unexpected {type(exc).__name__}")
    if not edits:
        return BannerResult(raw, BannerStatus.PRESENT, problem="banner already there")
    pieces: list[bytes | memoryview] = []
    done = 0
    view = memoryview(raw)
    for start, end, replacement in sorted(edits):
        pieces += [view[done:start], replacement]
        done = end
    pieces.append(view[done:])
    out = b"".join(pieces)
    return BannerResult(out, BannerStatus.ADDED, parts=len(edits))


def banner_html(text: str) -> str:
    """The HTML block for a plain-text banner: escaped, line breaks kept, inline style."""
    lines = [html_lib.escape(line.strip(), quote=False) for line in text.strip().splitlines()]
    return f'<div style="{BANNER_STYLE}">\n' + "<br>\n".join(lines) + "\n</div>\n"


# --- walking the tree over the original bytes -------------------------------------------


_LEADING_BREAK = re.compile(rb"\r\n|\n")
_HEADER_END = re.compile(rb"\r\n\r\n|\n\n|\r\n\n|\n\r\n")


def _entity(raw: bytes, start: int, end: int, *, top: bool = False) -> _Entity:
    # searched in place (pos/endpos): a 10 MB attachment is never copied
    m = _LEADING_BREAK.match(raw, start, end)
    if m:  # no header fields at all: the part starts with its blank line
        header, body_start = b"", m.end()
    else:
        sep = _HEADER_END.search(raw, start, end)
        if sep is None:
            if top:
                raise _Malformed("no body (no empty line after the header fields)")
            header, body_start = raw[start:end], end  # a part with header fields only
        else:
            first_break = 2 if raw[sep.start():sep.start() + 2] == b"\r\n" else 1
            header = raw[start:sep.start() + first_break]
            body_start = sep.end()
    headers = BytesHeaderParser(policy=compat32).parsebytes(header)
    return _Entity(start, body_start, end, header, headers, top)


def _targets(raw: bytes, entity: _Entity, depth: int = 0) -> Iterator[_Entity]:
    """The entities that receive the banner, in document order."""
    if depth > MAX_DEPTH:
        raise _Malformed(f"multipart nested deeper than {MAX_DEPTH} levels")
    ctype = entity.content_type
    if ctype in SIGNED_TYPES:  # S/MIME opaque messages come as an "attachment"
        raise _Signed(f"{ctype} body is not modified")
    if entity.is_attachment:
        return
    if ctype in _TEXT_TYPES:
        yield entity
        return
    if not ctype.startswith("multipart/") or ctype == "multipart/digest":
        return
    # all delimiters are checked first; the parts' header fields are read as needed
    children = (_entity(raw, start, end) for start, end in _child_spans(raw, entity))
    if ctype == "multipart/alternative":
        for child in children:
            yield from _targets(raw, child, depth + 1)
        return
    if ctype == "multipart/related":
        yield from _targets(raw, _related_root(entity, list(children)), depth + 1)
        return
    # mixed, and any other multipart: the first body that is shown inline
    for child in children:
        if child.is_attachment:
            continue
        ctype = child.content_type
        if ctype in _TEXT_TYPES or ctype in SIGNED_TYPES or ctype.startswith("multipart/"):
            yield from _targets(raw, child, depth + 1)
            return


def _related_root(entity: _Entity, children: list[_Entity]) -> _Entity:
    """The root of a multipart/related: the part named by ``start``, else the first."""
    param = entity.headers.get_param("start")
    start = _content_id(collapse_rfc2231_value(param)) if param else ""
    if start:
        for child in children:
            if _content_id(str(child.headers.get("content-id") or "")) == start:
                return child
    return children[0]


def _content_id(value: str) -> str:
    return value.strip().strip("<>").strip()


def _child_spans(raw: bytes, entity: _Entity) -> list[tuple[int, int]]:
    """(start, end) of each part of a multipart entity, its delimiters all checked."""
    boundary = entity.headers.get_boundary()
    if not boundary:
        raise _Malformed("multipart without a boundary")
    try:
        delimiter = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        raise _Malformed("boundary is not ASCII") from None
    marks: list[tuple[int, int, bool]] = []  # (line start, line end, is closing)
    pos = entity.body_start
    while (found := raw.find(delimiter, pos, entity.end)) >= 0:
        pos = found + len(delimiter)
        if found != entity.body_start and raw[found - 1] != 0x0A:
            continue  # not at the start of a line
        newline = raw.find(b"\n", pos, entity.end)
        line_end = entity.end if newline < 0 else newline + 1
        rest = raw[pos:line_end].rstrip(b"\r\n")
        closing = rest.startswith(b"--")
        if rest[2 if closing else 0:].strip(b" \t"):
            continue  # "--boundary" followed by more: not a delimiter
        marks.append((found, line_end, closing))
        if closing:
            break
    if not marks or marks[0][2]:
        raise _Malformed("multipart without a part (boundary not found)")
    if not marks[-1][2]:
        raise _Malformed("multipart without its closing boundary")
    spans = []
    for (_, open_end, _), (next_start, _, _) in itertools.pairwise(marks):
        # the line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
        part_end = next_start
        if raw[part_end - 2:part_end] == b"\r\n" and part_end - 2 >= open_end:
            part_end -= 2
        elif raw[part_end - 1:part_end] == b"\n" and part_end - 1 >= open_end:
            part_end -= 1
        spans.append((open_end, part_end))
    return spans


# --- editing one part --------------------------------------------------------------------


def _edit(raw: bytes, entity: _Entity, text: str, html_block: str) -> bytes:
    """The new bytes of ``entity`` (header block, separator and body) with the banner."""
    header = entity.header
    eol = b"\r\n" if (header or raw[entity.start:entity.body_start]).endswith(b"\r\n") \
        else b"\n"
    cte = str(entity.headers.get("content-transfer-encoding") or "7bit").strip().lower()
    if cte not in _KNOWN_CTE:
        raise _Malformed("unknown Content-Transfer-Encoding")
    charset = entity.headers.get_content_charset("us-ascii") or "us-ascii"
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        raise _Malformed("unknown charset") from None
    try:
        "".encode(codec.name)
    except LookupError:  # e.g. "charset=base64": not a text encoding
        raise _Malformed("unknown charset") from None
    body = _decode(raw[entity.body_start:entity.end], cte)
    if entity.content_type == "text/html":
        block = "\n".join(html_block.splitlines()) + ("\n" if html_block.endswith("\n") else "")
        block = block.replace("\n", eol.decode("ascii"))
        body, new_charset = _with_html_banner(body, charset, block)
    else:
        body, new_charset = _with_text_banner(body, charset, text, eol)
    if new_charset != charset:
        header = _set_charset(header, new_charset, eol, entity.content_type, entity.top)
    new_cte = cte
    if cte in ("7bit", "8bit", "binary") and (
            (cte == "7bit" and not body.isascii())
            or any(len(line) > MAX_LINE for line in _LINE_BREAK.split(body))):
        new_cte = "quoted-printable"
        header = _set_field(header, "Content-Transfer-Encoding", new_cte, eol)
    separator = raw[entity.start + len(entity.header):entity.body_start]
    return header + separator + _encode(body, new_cte, eol)


def _decode(body: bytes, cte: str) -> bytes:
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    if cte == "base64":
        try:
            return binascii.a2b_base64(b"".join(body.split()), strict_mode=True)
        except binascii.Error:
            raise _Malformed("undecodable base64 body") from None
    return body


def _encode(body: bytes, cte: str, eol: bytes) -> bytes:
    if cte == "quoted-printable":
        return eol.join(binascii.b2a_qp(line, quotetabs=False, istext=False)
                        .replace(b"=\n", b"=" + eol)
                        for line in _LINE_BREAK.split(body))
    if cte == "base64":
        flat = binascii.b2a_base64(body, newline=False)
        return b"".join(flat[i:i + QP_LINE] + eol for i in range(0, len(flat), QP_LINE))
    return body


def _ascii_compatible(charset: str) -> bool:
    """Whether ASCII text (tags, line breaks) is the same bytes in ``charset``."""
    sample = bytes(range(0x20, 0x7F)).decode("ascii") + "\r\n"
    try:
        return sample.encode(charset) == sample.encode("ascii")
    except UnicodeError:
        return False


def _encodable(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeError:
        return False
    return True


def _with_text_banner(body: bytes, charset: str, text: str, eol: bytes
                      ) -> tuple[bytes, str]:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    banner = "\n".join(lines)
    if _ascii_compatible(charset) and _encodable(banner, charset):
        block = eol.join(line.encode(charset) for line in lines) + eol + eol
        if body.startswith(block):
            raise _Present
        return block + body, charset
    # decode the whole body: a charset that cannot hold the banner switches to UTF-8
    decoded = _decode_text(body, charset)
    nl = eol.decode("ascii")
    if decoded.startswith(nl.join(lines) + nl + nl):
        raise _Present
    new = nl.join(lines) + nl + nl + decoded
    target = charset if _encodable(banner, charset) else "utf-8"
    return new.encode(target), target


def _decode_text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except UnicodeError:
        pass
    if codecs.lookup(charset).name == "ascii":  # 8-bit text under the default charset
        try:
            return body.decode("utf-8")
        except UnicodeError:
            pass
    raise _Malformed("body is not valid in its declared charset")


def _with_html_banner(body: bytes, charset: str, block: str) -> tuple[bytes, str]:
    if _ascii_compatible(charset):
        # characters the part's charset lacks become character references: the
        # charset (and any <meta charset> inside the HTML) stays right
        insert = block.encode(charset, "xmlcharrefreplace")
        if insert in body:
            raise _Present
        return _insert_html(body, insert), charset
    decoded = _decode_text(body, charset)
    if block in decoded:
        raise _Present
    edited = _insert_html(decoded.encode("utf-8"), block.encode("utf-8")).decode("utf-8")
    return edited.encode(charset, "xmlcharrefreplace"), charset


def _insert_html(body: bytes, insert: bytes) -> bytes:
    for anchor in _HTML_ANCHORS:
        m = anchor.search(body)
        if m:
            return body[:m.end()] + insert + body[m.end():]
    return insert + body


# --- header field edits (only the field concerned changes) -----------------------------


def _fields(header: bytes) -> Iterator[tuple[str, int, int]]:
    """(lower-case name, start, end) of each field, continuation lines included."""
    pos = 0
    name: str | None = None
    start = 0
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and name is not None:
            pos += len(line)
            continue
        if name is not None:
            yield name, start, pos
        m = _FIELD_NAME.match(line)
        name = m.group(1).decode("ascii").lower() if m else ""
        start = pos
        pos += len(line)
    if name is not None:
        yield name, start, pos


def _set_field(header: bytes, name: str, value: str, eol: bytes) -> bytes:
    """Replace the first ``name`` field (or add it at the end of the block)."""
    new = f"{name}: {value}".encode("ascii") + eol
    for field_name, start, end in _fields(header):
        if field_name == name.lower():
            return header[:start] + new + header[end:]
    return header + new


def _set_charset(header: bytes, charset: str, eol: bytes, content_type: str, top: bool
                 ) -> bytes:
    for field_name, start, end in _fields(header):
        if field_name != "content-type":
            continue
        value = header[start:end]
        if _CHARSET_PARAM.search(value):
            value = _CHARSET_PARAM.sub(
                lambda m: m.group(1).replace(b"*", b"") + f'"{charset}"'.encode("ascii"),
                value, count=1)
        else:
            stripped = value.rstrip(b"\r\n")
            added = f'; charset="{charset}"'.encode("ascii")
            last_line = stripped.rsplit(b"\n", 1)[-1]
            if len(last_line) + len(added) > QP_LINE:
                added = b";" + eol + f'\tcharset="{charset}"'.encode("ascii")
            value = stripped + added + value[len(stripped):]
        return header[:start] + value + header[end:]
    new = _set_field(header, "Content-Type", f'{content_type}; charset="{charset}"', eol)
    if top and not any(n == "mime-version" for n, _, _ in _fields(header)):
        new = _set_field(new, "MIME-Version", "1.0", eol)
    return new
