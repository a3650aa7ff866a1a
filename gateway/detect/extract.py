"""The one text-extraction pass over a message or a file, shared by every content check.

Pure: a parsed message (or a file's bytes) in, text chunks, notes and attachment
facts out. No asyncio, sockets or files; CPU-bound, so callers run it off the
event loop. Never raises on bad input: a corrupt part becomes a ``Note``.

Formats are told by their bytes, never by name or declared type. Read: PDF
(page text, form field values, embedded files), DOCX/XLSX/PPTX and ODT/ODS/ODP
(their XML parts), RTF, text/CSV/HTML, nested messages (message/rfc822 and .eml
files), ZIP, gzip/bzip2/xz and tar. Noted but not read: images and scanned PDFs
("image_not_inspected"), password protection ("encrypted"), rar/7z and legacy
OLE Office files ("unsupported"). Anything else: an ``AttachmentInfo`` only.

Bounds: every decompression (zip members, gzip/bzip2/xz) is read in pieces of
at most ``_PIECE`` bytes and stopped as soon as a ``Limits`` value is passed,
so a bomb costs bounded memory and time. XML parts of Office/ODF packages are
streamed through expat and refused when they carry a DTD (no entity expansion).
Chunk sources may hold sender-chosen file names: mask them like content.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import io
import logging
import lzma
import re
import struct
import tarfile
import xml.parsers.expat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser

from pypdf import PdfReader
from pypdf.generic import ContentStream
from striprtf import striprtf

_rtf_to_text: Callable[..., str] = striprtf.rtf_to_text  # striprtf's signature is untyped

# pypdf reports damaged PDFs on its loggers, quoting raw bytes of the file (which may be
# patient data): those records must never reach a log. Silenced here, where pypdf is used.
_PYPDF_LOG = logging.getLogger("pypdf")
_PYPDF_LOG.setLevel(logging.CRITICAL + 1)
_PYPDF_LOG.propagate = False

__all__ = [
    "AttachmentInfo",
    "Extraction",
    "Limits",
    "Note",
    "TextChunk",
    "decode_text",
    "extract_file",
    "extract_message",
    "html_to_text",
    "sniff",
]


# --------------------------------------------------------------------------- public model


@dataclass(frozen=True, slots=True)
class TextChunk:
    """Text found somewhere in the message.

    ``source`` is a human path ("subject", "body (text/plain)", "attachment name",
    "bilan.pdf", "dossier.zip/bilan.docx", "fwd.eml/body (text/plain)", and
    "dossier.zip (member names)" for the names inside an archive); it may hold
    file names chosen by the sender, so mask it like any other content before
    logging. ``container`` is the innermost format the text came from.
    """

    source: str
    container: str
    text: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something that could not be (fully) inspected.

    ``kind``: "image_not_inspected" | "encrypted" | "limit" | "unsupported" | "error".
    ``detail`` is short English and never quotes the file's content.
    """

    kind: str
    source: str
    detail: str


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One file met anywhere in the message (attachment, archive member, embedded file)."""

    source: str
    filename: str
    declared_type: str
    format: str
    size: int
    depth: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-message bounds; passing one gives a ``Note("limit", ...)``, never an exception."""

    max_depth: int = 5
    max_files: int = 1000
    max_expanded: int = 200 * 1024 * 1024
    max_ratio: int = 100
    max_text: int = 20 * 1024 * 1024
    max_pdf_pages: int = 500
    # Decoded page-content bytes handed to pypdf per PDF. pypdf's text extraction
    # runs at roughly 1 MB of content per second, so this is what keeps one
    # text-dense PDF near a second; scanned or ordinary PDFs never reach it.
    max_pdf_content: int = 512 * 1024


@dataclass
class Extraction:
    chunks: list[TextChunk] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)

    def text(self) -> str:
        """All chunks joined with newlines (a convenience for whole-text scans)."""
        return "\n".join(chunk.text for chunk in self.chunks)


_DEFAULT_LIMITS = Limits()


def extract_message(msg: EmailMessage, limits: Limits = _DEFAULT_LIMITS) -> Extraction:
    """Subject, text parts, attachment names and attachment contents of ``msg``."""
    run = _Run(limits)
    run.guard("message", "unreadable message", lambda: run.message(msg, "", 0, top=True))
    return run.out


def extract_file(name: str, data: bytes, limits: Limits = _DEFAULT_LIMITS) -> Extraction:
    """Text of one file (a USB key's file, a file dropped for scanning)."""
    run = _Run(limits)
    source = name or "file"

    def body() -> None:
        if name:
            run.chunk("file name", "filename", name)
        if run.take_file(source):
            run.file(source, name, "", data, 0)

    run.guard(source, "unreadable file", body)
    return run.out


# --------------------------------------------------------------------------- format sniffing

IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "tiff", "heic", "bmp", "webp"})
OFFICE_FORMATS = frozenset({"docx", "xlsx", "pptx", "odt", "ods", "odp"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm",
                          b"hevs", b"mif1", b"msf1", b"avif", b"avis"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODF_KINDS = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.text-template": "odt",
    "application/vnd.oasis.opendocument.text-master": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.spreadsheet-template": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/vnd.oasis.opendocument.presentation-template": "odp",
}
_MAIL_HEADERS = frozenset({"from", "to", "cc", "subject", "date", "received", "message-id",
                           "mime-version", "return-path", "content-type", "delivered-to",
                           "reply-to", "sender", "x-mailer", "user-agent"})
_HEADER_LINE = re.compile(rb"^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:")
_HTML_HINT = re.compile(r"<!doctype\s+html|<html[\s>]|<body[\s>]|<head[\s>]", re.IGNORECASE)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def sniff(data: bytes) -> str:
    """The format of ``data`` from its bytes alone (never its name or declared type).

    Zip-based formats come out as "zip" here; ``extract_*`` refine them to
    docx/xlsx/pptx/odt/ods/odp by looking inside. Beyond the documented list
    this also answers "bzip2", "xz" and "tar", which are read.
    """
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if data.startswith(_OLE_MAGIC):
        return "ole"
    if data.startswith(b"{\\rtf"):
        return "rtf"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"BZh") and data[4:10] == b"1AY&SY":
        return "bzip2"
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if data.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if data.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM") and len(data) >= 26 and data[6:10] == b"\x00\x00\x00\x00":
        return "bmp"
    if data[257:262] == b"ustar":
        return "tar"
    return _sniff_text(data)


def _sniff_text(data: bytes) -> str:
    sample = data[:8192]
    if not sample or not _looks_text(sample):
        return "unknown"
    text = decode_text(sample)
    if _HTML_HINT.search(text[:2048]) and text.lstrip("\ufeff \t\r\n").startswith("<"):
        return "html"
    if _looks_mail(sample):
        return "eml"
    if _looks_csv(text):
        return "csv"
    return "txt"


def _looks_text(sample: bytes) -> bool:
    if any(sample.startswith(bom) for bom, _ in _BOMS):
        return True
    if b"\x00" in sample:
        return False
    control = sum(1 for b in sample if (b < 32 and b not in b"\t\n\r\f\x1b") or b == 127)
    return control * 50 <= len(sample)


def _looks_mail(sample: bytes) -> bool:
    lines = sample.splitlines()
    if lines and lines[0].startswith(b"From "):  # mbox separator
        lines = lines[1:]
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    names: set[str] = set()
    for line in lines[:60]:
        if not line.strip():
            break
        m = _HEADER_LINE.match(line)
        if m:
            names.add(m.group(1).decode("ascii").lower())
        elif line[:1] not in (b" ", b"\t"):
            return False
    return len(names & _MAIL_HEADERS) >= 2


def _looks_csv(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 2:
        lines = lines[:-1][:20]  # the last line of a sample may be cut short
    if len(lines) < 2:
        return False
    for sep in (";", ",", "\t", "|"):
        counts = [ln.count(sep) for ln in lines]
        if min(counts) >= 1 and counts.count(counts[0]) * 10 >= len(counts) * 8:
            return True
    return False


# --------------------------------------------------------------------------- text decoding


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Bytes to text: BOM, then the declared charset, then UTF-8, cp1252, Latin-1.

    A declared ASCII or Latin-1 is read as UTF-8/cp1252 first (what mail
    clients really send); an unknown or wrong charset falls through.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break
    order: list[str] = []
    if declared:
        try:
            name = codecs.lookup(declared.strip().strip('"')).name
        except (LookupError, ValueError):
            name = ""
        if name == "ascii":
            order = ["utf-8", "cp1252"]
        elif name in ("latin-1", "iso8859-1"):
            order = ["cp1252"]
        elif name:
            order = [name]
    order += ["utf-8", "cp1252"]
    for codec in order:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "template", "noscript"})
    _BLOCK = frozenset({
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
        "td", "tfoot", "th", "thead", "title", "tr", "ul",
    })
    _CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        if tag in self._CELL:
            self.parts.append("\t")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self._BLOCK and tag not in self._CELL:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.parts.append(data if self.pre else _HTML_SPACE.sub(" ", data))


_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_BLANK_LINES = re.compile(r"[ \t]*\n[ \t\n]*\n")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (script/style dropped, blocks on their own lines)."""
    parser = _HtmlText()
    try:
        parser.feed(html)  # fed whole: chunked feeding is where HTMLParser goes quadratic
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # malformed markup the stdlib parser gives up on: drop tags crudely
        text = _HTML_SPACE.sub(" ", re.sub(r"<[^>]*>", " ", html))
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


# --------------------------------------------------------------------------- XML (OOXML, ODF)

_DTD_MARKERS = tuple(
    marker.encode(codec)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for codec in ("ascii", "utf-16-le", "utf-16-be")
)
_MARKER_TAIL = max(len(m) for m in _DTD_MARKERS)
_NUMBER_E = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")


class _XmlRefused(Exception):
    """An XML part declares a DTD: refused, whatever the encoding."""


class _TextFull(Exception):
    """The per-message text budget is used up."""


@dataclass(frozen=True, slots=True)
class _XmlRules:
    text: frozenset[str]                  # character data kept inside these elements
    line_after: frozenset[str]            # "\n" when these close
    tab_after: frozenset[str] = frozenset()
    line: frozenset[str] = frozenset({"br", "cr", "line-break"})
    tab: frozenset[str] = frozenset({"tab"})
    space: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset({"rPh", "instrText"})
    cell_values: bool = False             # SpreadsheetML <c t=".."><v>..</v></c>
    record_end: frozenset[str] = frozenset()  # "\x00" when these close (shared strings)


_TAB_PARENTS = frozenset({"r", "p", "h", "span", "a"})
_DOCX_RULES = _XmlRules(text=frozenset({"t", "delText"}), line_after=frozenset({"p", "tr"}),
                        tab_after=frozenset({"tc"}))
_PPTX_RULES = _XmlRules(text=frozenset({"t"}), line_after=frozenset({"p", "tr"}),
                        tab_after=frozenset({"tc"}))
_SST_RULES = _XmlRules(text=frozenset({"t"}), line_after=frozenset(),
                       record_end=frozenset({"si"}))
_COMMENTS_RULES = _XmlRules(text=frozenset({"t"}), line_after=frozenset({"comment"}))
_SHEET_RULES = _XmlRules(text=frozenset({"t"}), line_after=frozenset({"row"}),
                         tab_after=frozenset({"c"}), cell_values=True)
_ODF_RULES = _XmlRules(text=frozenset({"p", "h"}), line_after=frozenset({"p", "h", "table-row"}),
                       tab_after=frozenset({"table-cell", "covered-table-cell"}),
                       space=frozenset({"s"}))
_PROPS_RULES = _XmlRules(
    text=frozenset({"title", "subject", "keywords", "keyword", "description", "category"}),
    line_after=frozenset({"title", "subject", "keywords", "keyword", "description",
                          "category"}))


class _TextSink:
    """Collects text up to ``cap`` characters; raises ``_TextFull`` past it."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.parts: list[str] = []
        self.full = False

    def add(self, text: str) -> None:
        if self.size + len(text) > self.cap:
            self.parts.append(text[: self.cap - self.size])
            self.size = self.cap
            self.full = True
            raise _TextFull
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts)


class _XmlText:
    """Streams one XML part through expat, keeping the text the rules ask for."""

    def __init__(self, rules: _XmlRules, sink: _TextSink,
                 shared: list[str] | None = None) -> None:
        self.rules = rules
        self.sink = sink
        self.shared = shared or []
        self.stack: list[tuple[str, bool]] = []  # (local name, counts as a text element)
        self.inside = 0
        self.skipping = 0
        self.cell_type = ""
        self.index: list[str] | None = None      # digits of a shared-string index being read
        parser = xml.parsers.expat.ParserCreate()  # names keep their prefix: "w:t"
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        parser.StartDoctypeDeclHandler = self._refuse
        parser.EntityDeclHandler = self._refuse
        self.parser = parser
        self.tail = b""

    @staticmethod
    def _refuse(*_: object) -> None:
        raise _XmlRefused

    def feed(self, piece: bytes, final: bool = False) -> None:
        window = self.tail + piece
        if any(marker in window for marker in _DTD_MARKERS):
            raise _XmlRefused
        self.tail = window[-_MARKER_TAIL:]
        self.parser.Parse(piece, final)

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name[name.rfind(":") + 1:]
        rules = self.rules
        counted = local in rules.text
        if rules.cell_values:
            if local == "c":
                self.cell_type = attrs.get("t", "")
            elif local == "v":
                if self.cell_type == "s":
                    self.index = []
                elif self.cell_type not in ("b", "e"):
                    counted = True
        if counted:
            self.inside += 1
        stack = self.stack
        stack.append((local, counted))
        if local in rules.skip:
            self.skipping += 1
            return
        if self.skipping:
            return
        if local in rules.line:
            self.sink.add("\n")
        elif local in rules.tab and len(stack) > 1 and stack[-2][0] in _TAB_PARENTS:
            self.sink.add("\t")
        elif local in rules.space and self.inside:
            self.sink.add(" ")

    def _end(self, name: str) -> None:
        if not self.stack:
            return
        local, counted = self.stack.pop()
        if counted:
            self.inside -= 1
        rules = self.rules
        if local in rules.skip:
            self.skipping -= 1
            return
        if self.skipping:
            return
        if self.index is not None and local == "v":
            digits, self.index = "".join(self.index).strip(), None
            if digits.isdigit() and int(digits) < len(self.shared):
                self.sink.add(self.shared[int(digits)])
        elif local in rules.tab_after:
            self.sink.add("\t")
        elif local in rules.line_after:
            # a paragraph inside a table cell: the cell's tab separates, not a new line
            in_cell = bool(self.stack) and self.stack[-1][0] in rules.tab_after
            self.sink.add(" " if in_cell else "\n")
        elif local in rules.record_end:
            self.sink.add("\x00")

    def _chars(self, data: str) -> None:
        if self.index is not None:
            self.index.append(data)
        elif self.inside and not self.skipping:
            if self.rules.cell_values and ("E" in data or "e" in data):
                data = _plain_number(data)
            self.sink.add(data)


def _plain_number(value: str) -> str:
    """Excel writes big numbers as 2.95109912611193E+14: give them back their digits."""
    value = value.strip()
    if _NUMBER_E.fullmatch(value):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        if number == number.to_integral_value() and abs(number) < Decimal(10) ** 30:
            return str(int(number))
    return value


# --------------------------------------------------------------------------- the run

_PIECE = 64 * 1024
_RATIO_GRACE = 1024 * 1024       # the ratio limit applies once a member passed 1 MiB
_XML_RATIO = 10                  # package XML parts may compress 10x better than max_ratio
_MAX_MIME_NESTING = 50
_ODF_MIMETYPE_MAX = 256
_IMAGE_MEMBER = re.compile(r"^(?:word|xl|ppt)/media/|^Pictures/")
_NUMBERED = re.compile(r"(\d+)\.xml$")
_RTF_HEX_RUN = re.compile(r"[0-9a-fA-F\r\n]{512,}")


class _Stop(Exception):
    """Stop reading the current member (the reason is already noted)."""


def _numbered(name: str) -> tuple[int, str]:
    m = _NUMBERED.search(name)
    return (int(m.group(1)) if m else 0, name)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _header(msg: Message, name: str) -> str:
    """A header's decoded value, whatever policy parsed the message; '' when absent."""
    try:
        value = msg.get(name)
    except Exception:  # a malformed header the policy cannot parse
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        with contextlib.suppress(Exception):  # keep the undecoded text
            text = str(make_header(decode_header(text)))
    return text


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        return ""
    if not name:
        return ""
    if "=?" in name:  # an encoded word inside a quoted parameter (Outlook and others)
        with contextlib.suppress(Exception):  # keep the undecoded name
            name = str(make_header(decode_header(name)))
    return name.strip()


class _Run:
    """State of one extraction: the limits and what has been spent against them."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.out = Extraction()
        self.files = 0
        self.expanded = 0
        self.text_left = limits.max_text
        self.noted: set[str] = set()

    # -- bookkeeping ------------------------------------------------------------------

    def note(self, kind: str, source: str, detail: str) -> None:
        self.out.notes.append(Note(kind, source, detail))

    def note_once(self, key: str, kind: str, source: str, detail: str) -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.note(kind, source, detail)

    def guard(self, source: str, what: str, action: Callable[[], None]) -> None:
        """Run ``action``; any exception becomes an "error" note for ``source``."""
        try:
            action()
        except _TextFull:
            self.text_limit(source)
        except _Stop:  # a limit was passed and noted where it happened
            pass
        except Exception as exc:  # bad input must never stop the extraction
            self.note("error", source, f"{what} ({type(exc).__name__})")

    def text_limit(self, source: str) -> None:
        self.note_once("text", "limit", source,
                       f"text limit of {self.limits.max_text} characters reached; "
                       "the rest of the message was not kept")

    def chunk(self, source: str, container: str, text: str) -> None:
        if not text or text.isspace():
            return
        if self.text_left <= 0:
            self.text_limit(source)
            return
        if len(text) > self.text_left:
            text = text[: self.text_left]
            self.text_limit(source)
        self.text_left -= len(text)
        self.out.chunks.append(TextChunk(source, container, text))

    def take_file(self, source: str) -> bool:
        """Count one more file examined; False once ``max_files`` is passed."""
        self.files += 1
        if self.files > self.limits.max_files:
            self.note_once("files", "limit", source,
                           f"more than {self.limits.max_files} files in the message; "
                           "the others were not examined")
            return False
        return True

    def can_open(self, source: str, depth: int) -> bool:
        """May a container at ``depth`` be opened (its content sits one level deeper)?"""
        if depth + 1 > self.limits.max_depth:
            self.note("limit", source, f"nested more than {self.limits.max_depth} levels deep; "
                                       "not opened")
            return False
        return True

    def spend(self, source: str, amount: int) -> None:
        """Count decompressed bytes against ``max_expanded``; raise ``_Stop`` past it."""
        self.expanded += amount
        if self.expanded > self.limits.max_expanded:
            self.note_once("expanded", "limit", source,
                           f"more than {self.limits.max_expanded} bytes decompressed in the "
                           "message; decompression stopped (possible archive bomb)")
            raise _Stop

    def record(self, source: str, filename: str, declared: str, fmt: str, size: int,
               depth: int) -> None:
        self.out.attachments.append(AttachmentInfo(source, filename, declared, fmt, size, depth))

    # -- messages ---------------------------------------------------------------------

    def message(self, msg: Message, prefix: str, depth: int, *, top: bool = False) -> None:
        if top:
            self.chunk("subject", "subject", _header(msg, "subject"))
        else:
            lines = [f"{name}: {value}" for name in ("Subject", "From", "To", "Cc")
                     if (value := _header(msg, name))]
            self.chunk(prefix, "eml", "\n".join(lines))
        self.entity(msg, prefix, depth, 0)

    def entity(self, part: Message, prefix: str, depth: int, nesting: int) -> None:
        if nesting > _MAX_MIME_NESTING:
            self.note("limit", prefix or "message",
                      f"MIME parts nested more than {_MAX_MIME_NESTING} levels; not read")
            return
        ctype = part.get_content_type()
        payload = part.get_payload()
        if isinstance(payload, list):
            subs = [sub for sub in payload if isinstance(sub, Message)]
            if part.get_content_maintype() == "message":
                self.guard(prefix or "message", "unreadable attached message",
                           lambda: self.attached_message(part, subs, prefix, depth))
                return
            for sub in subs:
                self.entity(sub, prefix, depth, nesting + 1)
            return
        self.guard(_join(prefix, f"part ({ctype})"), "unreadable MIME part",
                   lambda: self.leaf(part, prefix, depth))

    def leaf(self, part: Message, prefix: str, depth: int) -> None:
        ctype = part.get_content_type()
        maintype = part.get_content_maintype()
        filename = _filename(part)
        attachment = part.get_content_disposition() == "attachment"
        if maintype == "text" and not filename and not attachment:
            source = _join(prefix, f"body ({ctype})")
            text = _part_text(part)
            if ctype == "text/html":
                self.chunk(source, "html", html_to_text(text))
            else:
                self.chunk(source, "text", text)
            return
        if maintype == "message":  # message/* whose payload is not a parsed message
            data = _part_bytes(part)
            name = filename or "attached message"
            source = _join(prefix, name)
            if filename:
                self.chunk(_join(prefix, "attachment name"), "filename", filename)
            if self.take_file(source):
                self.file(source, filename, ctype, data, depth, force="eml")
            return
        source = _join(prefix, filename or f"attachment ({ctype})")
        if filename:
            self.chunk(_join(prefix, "attachment name"), "filename", filename)
        if self.take_file(source):
            self.file(source, filename, ctype, _part_bytes(part), depth)

    def attached_message(self, part: Message, payload: list[Message], prefix: str,
                         depth: int) -> None:
        ctype = part.get_content_type()
        filename = _filename(part)
        if filename:
            self.chunk(_join(prefix, "attachment name"), "filename", filename)
        if ctype not in ("message/rfc822", "message/global"):
            # delivery-status, disposition-notification: blocks of header fields
            lines = [f"{k}: {v}" for block in payload for k, v in block.items()]
            self.chunk(_join(prefix, f"body ({ctype})"), "text", "\n".join(lines))
            return
        for sub in payload:
            source = _join(prefix, filename or "attached message")
            if not self.take_file(source):
                return
            try:
                size = len(sub.as_bytes())
            except Exception:
                size = 0
            self.record(source, filename, ctype, "eml", size, depth)
            if self.can_open(source, depth):
                self.message(sub, source, depth + 1)

    # -- files ------------------------------------------------------------------------

    def file(self, source: str, filename: str, declared: str, data: bytes, depth: int,
             force: str = "") -> None:
        """Record one file and read what it holds (the caller has counted it)."""
        fmt = force or sniff(data)
        archive: zipfile.ZipFile | None = None
        if fmt == "zip":
            archive, fmt = self.open_zip(source, data)
        self.record(source, filename, declared, fmt, len(data), depth)
        handler = {
            "pdf": self.pdf, "rtf": self.rtf, "txt": self.plain, "csv": self.plain,
            "html": self.html, "eml": self.eml, "ole": self.ole, "tar": self.tar,
            "gzip": self.compressed, "bzip2": self.compressed, "xz": self.compressed,
        }.get(fmt)
        if archive is not None:
            zf = archive
            if fmt in OFFICE_FORMATS:
                self.guard(source, f"unreadable {fmt} document",
                           lambda: self.office(source, zf, fmt, depth))
            else:
                self.guard(source, "unreadable zip archive",
                           lambda: self.zip(source, zf, depth))
        elif handler is not None:
            action = handler
            self.guard(source, f"unreadable {fmt} file",
                       lambda: action(source, data, fmt, depth))
        elif fmt in IMAGE_FORMATS:
            self.note("image_not_inspected", source, f"{fmt} image: text in it is not read")
        elif fmt in ("rar", "7z"):
            self.note("unsupported", source, f"{fmt} archive: its content is not read")

    def plain(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        self.chunk(source, fmt, decode_text(data))

    def html(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        self.chunk(source, "html", html_to_text(decode_text(data)))

    def rtf(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        m = re.search(rb"\\ansicpg(\d{3,5})", data[:4096])
        encoding = "cp1252"
        if m:
            with contextlib.suppress(LookupError):
                encoding = codecs.lookup(f"cp{m.group(1).decode()}").name
        # Embedded pictures and objects are long hex runs: dropped first, they would
        # only slow striprtf down (seconds for a few MB) and hold no readable text.
        text = _RTF_HEX_RUN.sub("", data.decode("latin-1"))
        self.chunk(source, "rtf", _rtf_to_text(text, encoding=encoding, errors="replace"))

    def eml(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        if not self.can_open(source, depth):
            return
        msg = BytesParser(policy=policy.default).parsebytes(data)
        self.message(msg, source, depth + 1)

    def ole(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        if "EncryptedPackage".encode("utf-16-le") in data:
            self.note("encrypted", source, "password-protected Office document")
        else:
            self.note("unsupported", source,
                      "legacy binary Office (OLE) file: its content is not read")

    # -- PDF --------------------------------------------------------------------------

    def pdf(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(""))
            except Exception:
                opened = False
            if not opened:
                self.note("encrypted", source, "PDF protected by a password")
                return
        pages = reader.pages
        count = len(pages)
        limits = self.limits
        texts: list[str] = []
        read = image_pages = failed = content = kept = 0
        for index in range(min(count, limits.max_pdf_pages)):
            if kept >= self.text_left:
                break
            page = pages[index]
            try:
                size = _content_size(page.get_contents())
            except Exception:
                size = 0
            if content + size > limits.max_pdf_content:
                self.note("limit", source,
                          f"only {index} of {count} pages read (page content over "
                          f"{limits.max_pdf_content} bytes)")
                break
            content += size
            try:
                text = page.extract_text()
            except Exception:
                failed += 1
                continue
            read += 1
            if text.strip():
                texts.append(text)
                kept += len(text)
            else:
                try:
                    image_pages += 1 if len(page.images) else 0
                except Exception:
                    image_pages += 1
        else:
            if count > limits.max_pdf_pages:
                self.note("limit", source,
                          f"only the first {limits.max_pdf_pages} of {count} pages read")
        texts.extend(_pdf_form_values(reader))
        self.chunk(source, "pdf", "\n".join(texts))
        if failed:
            self.note("error", source, f"text of {failed} page(s) could not be read")
        if read and not any(t.strip() for t in texts):
            self.note("image_not_inspected", source,
                      "PDF without a text layer (scanned?): its text is not read")
        elif image_pages:
            self.note("image_not_inspected", source,
                      f"{image_pages} page(s) are images without a text layer")
        self.pdf_embedded(source, reader, depth)

    def pdf_embedded(self, source: str, reader: PdfReader, depth: int) -> None:
        try:
            embedded = dict(reader.attachments)
        except Exception:
            self.note("error", source, "embedded files could not be read")
            return
        if not embedded:
            return
        self.chunk(f"{source} (member names)", "filename", "\n".join(embedded))
        if not self.can_open(source, depth):
            return
        for name, contents in embedded.items():
            for blob in contents:
                member = _join(source, name)
                if not self.take_file(member):
                    return
                try:
                    self.spend(source, len(blob))
                except _Stop:
                    return
                self.file(member, name, "", blob, depth + 1)

    # -- ZIP and the formats built on it ----------------------------------------------

    def open_zip(self, source: str, data: bytes) -> tuple[zipfile.ZipFile | None, str]:
        entries = _zip_entry_count(data)
        if entries is not None and entries > 2 * self.limits.max_files:
            self.note("limit", source, f"archive lists {entries} entries; not opened")
            return None, "zip"
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except Exception as exc:
            self.note("error", source, f"corrupt zip archive ({type(exc).__name__})")
            return None, "zip"
        return zf, self.zip_kind(zf)

    def zip_kind(self, zf: zipfile.ZipFile) -> str:
        names = set(zf.namelist())
        if "[Content_Types].xml" in names:
            for prefix, kind in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
                if any(n.startswith(prefix) for n in names):
                    return kind
        if "mimetype" in names and "content.xml" in names:
            try:
                with zf.open("mimetype") as fh:
                    mimetype = fh.read(_ODF_MIMETYPE_MAX).decode("ascii", "replace").strip()
            except Exception:
                mimetype = ""
            return _ODF_KINDS.get(mimetype, "zip")
        return "zip"

    def member_pieces(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str,
                      ratio: int = 0) -> Iterator[bytes]:
        """The member's bytes in bounded pieces; ``_Stop`` once a limit is passed.

        ``ratio`` overrides ``max_ratio`` (package XML compresses far better than files).
        """
        if info.flag_bits & 0x1:
            self.note("encrypted", source, "password-protected archive member")
            raise _Stop
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2/lzma members cannot be decompressed in bounded steps through zipfile
            self.note("unsupported", source,
                      f"archive member compressed with method {info.compress_type}; not read")
            raise _Stop
        done = 0
        ratio = ratio or self.limits.max_ratio
        with zf.open(info) as fh:
            while piece := fh.read(_PIECE):
                done += len(piece)
                self.spend(source, len(piece))
                # The ratio is taken against the compressed bytes consumed so far, so a
                # bomb is caught after a few MB instead of ratio x its compressed size.
                left = getattr(fh, "_compress_left", 0)  # CPython detail; 0 = whole member
                consumed = info.compress_size - (left if isinstance(left, int) else 0)
                if done > _RATIO_GRACE and done > ratio * max(consumed, 1):
                    self.note("limit", source, f"compression ratio over {ratio}:1; "
                                               "not read (possible archive bomb)")
                    raise _Stop
                yield piece

    def read_member(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
        return b"".join(self.member_pieces(zf, info, source))

    def zip(self, source: str, zf: zipfile.ZipFile, depth: int) -> None:
        members = [i for i in zf.infolist() if not i.is_dir()]
        if members:
            self.chunk(f"{source} (member names)", "filename",
                       "\n".join(i.filename for i in members))
        if not members or not self.can_open(source, depth):
            return
        for info in members:
            member = _join(source, info.filename)
            if not self.take_file(member):
                return
            if info.flag_bits & 0x1:
                self.record(member, info.filename, "", "unknown", info.file_size, depth + 1)
                self.note("encrypted", member, "password-protected archive member")
                continue
            try:
                data = self.read_member(zf, info, member)
            except _Stop:
                if self.expanded > self.limits.max_expanded:
                    return
                continue
            except Exception as exc:
                self.note("error", member, f"corrupt archive member ({type(exc).__name__})")
                continue
            self.file(member, info.filename, "", data, depth + 1)

    def office(self, source: str, zf: zipfile.ZipFile, fmt: str, depth: int) -> None:
        names = zf.namelist()
        plan: list[tuple[str, _XmlRules]]
        if fmt in ("odt", "ods", "odp"):
            if "META-INF/manifest.xml" in names:
                manifest = zf.getinfo("META-INF/manifest.xml")
                try:
                    if b"encryption-data" in self.read_member(zf, manifest, source):
                        self.note("encrypted", source, "password-protected OpenDocument file")
                        return
                except _Stop:
                    return
            plan = [(n, _ODF_RULES) for n in ("content.xml", "styles.xml") if n in names]
            plan += [("meta.xml", _PROPS_RULES)] if "meta.xml" in names else []
        elif fmt == "docx":
            parts = [n for n in names if re.fullmatch(
                r"word/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml", n)]
            parts.sort(key=lambda n: (not n.startswith("word/document"), _numbered(n)))
            plan = [(n, _DOCX_RULES) for n in parts]
        elif fmt == "xlsx":
            plan = [(n, _SHEET_RULES) for n in sorted(
                (n for n in names if re.fullmatch(r"xl/worksheets/sheet\d*\.xml", n)),
                key=_numbered)]
            plan += [(n, _COMMENTS_RULES) for n in names
                     if re.fullmatch(r"xl/comments\d*\.xml", n)]
        else:
            slides = sorted((n for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                            key=_numbered)
            notes = sorted((n for n in names
                            if re.fullmatch(r"ppt/notesSlides/notesSlide\d+\.xml", n)),
                           key=_numbered)
            plan = [(n, _PPTX_RULES) for n in slides + notes]
        if fmt in ("docx", "xlsx", "pptx") and "docProps/core.xml" in names:
            plan.append(("docProps/core.xml", _PROPS_RULES))

        sink = _TextSink(max(self.text_left, 0))
        try:
            shared: list[str] = []
            if fmt == "xlsx" and "xl/sharedStrings.xml" in names:
                # read first, so each cell shows its string in place, next to its row
                strings = _TextSink(max(self.text_left, 0))
                try:
                    self.xml_part(zf, zf.getinfo("xl/sharedStrings.xml"), source,
                                  _SST_RULES, strings, final_newline=False)
                except _TextFull:
                    sink.full = True
                shared = strings.text().split("\x00")
            for name, rules in plan:
                if not self.xml_part(zf, zf.getinfo(name), source, rules, sink, shared):
                    break
        except _TextFull:
            pass
        text = sink.text().strip()
        self.chunk(source, fmt, text)
        if sink.full:
            self.text_limit(source)
        if not text.strip() and any(_IMAGE_MEMBER.match(n) for n in names):
            self.note("image_not_inspected", source,
                      "document holds images and no text: text in the images is not read")
        self.office_embedded(source, zf, names, depth)

    def xml_part(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str,
                 rules: _XmlRules, sink: _TextSink, shared: list[str] | None = None, *,
                 final_newline: bool = True) -> bool:
        """Feed one XML part to the sink; False when the document must not be read further."""
        reader = _XmlText(rules, sink, shared)
        mark = len(sink.parts)
        try:
            for piece in self.member_pieces(zf, info, source, _XML_RATIO * self.limits.max_ratio):
                reader.feed(piece)
            reader.feed(b"", final=True)
        except _Stop:
            return False
        except _XmlRefused:
            del sink.parts[mark:]
            sink.size = sum(len(p) for p in sink.parts)
            self.note("error", source, "XML part with a DTD/entity declaration refused")
            return True
        except xml.parsers.expat.ExpatError:
            self.note("error", source, "malformed XML part")
            return True
        if final_newline:
            sink.add("\n")
        return True

    def office_embedded(self, source: str, zf: zipfile.ZipFile, names: list[str],
                        depth: int) -> None:
        """Files embedded in an Office document (an Excel sheet pasted in Word, ...)."""
        embedded = [n for n in names if re.match(r"(?:word|xl|ppt)/embeddings/[^/]+$", n)]
        if not embedded or not self.can_open(source, depth):
            return
        for name in embedded:
            member = _join(source, name)
            if not self.take_file(member):
                return
            try:
                data = self.read_member(zf, zf.getinfo(name), member)
            except _Stop:
                if self.expanded > self.limits.max_expanded:
                    return
                continue
            self.file(member, name.rpartition("/")[2], "", data, depth + 1)

    # -- single-stream compressors and tar --------------------------------------------

    def compressed(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        if not self.can_open(source, depth):
            return
        try:
            inner = self.decompress(source, data, fmt)
        except _Stop:
            return
        if inner is None:
            return
        if sniff(inner) == "tar":
            self.tar_members(source, inner, depth)
            return
        name = re.sub(r"\.(?:gz|tgz|bz2|xz)$", "", source.rpartition("/")[2], flags=re.I)
        if name == source.rpartition("/")[2]:
            name = "(decompressed)"
        member = _join(source, name)
        if self.take_file(member):
            self.file(member, name, "", inner, depth + 1)

    def decompress(self, source: str, data: bytes, fmt: str) -> bytes | None:
        """gzip (all members) / bzip2 / xz, in bounded steps, with the ratio check."""
        out = bytearray()
        ratio_cap = self.limits.max_ratio * max(len(data), 1)
        pending = data
        while pending:
            engine = _Decompressor(fmt)
            chunk = pending
            while True:
                piece = engine.decompress(chunk, _PIECE)
                out += piece
                self.spend(source, len(piece))
                if len(out) > _RATIO_GRACE and len(out) > ratio_cap:
                    self.note("limit", source, f"compression ratio over {self.limits.max_ratio}"
                                               ":1; not read (possible bomb)")
                    raise _Stop
                if engine.eof:
                    break
                if not piece and engine.needs_input:
                    self.note("error", source, f"truncated {fmt} stream")
                    return bytes(out) if out else None
                chunk = b""
            pending = engine.unused_data.lstrip(b"\x00")
            if pending and sniff(pending) != fmt:
                break
        return bytes(out)

    def tar(self, source: str, data: bytes, fmt: str, depth: int) -> None:
        if self.can_open(source, depth):
            self.tar_members(source, data, depth)

    def tar_members(self, source: str, data: bytes, depth: int) -> None:
        names: list[str] = []
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                while (info := tf.next()) is not None:
                    if not info.isfile():
                        continue
                    member = _join(source, info.name)
                    names.append(info.name)
                    if not self.take_file(member):
                        break
                    if info.issparse():
                        self.note("unsupported", member, "sparse tar member; not read")
                        continue
                    fh = tf.extractfile(info)
                    if fh is None:
                        continue
                    blob = fh.read(max(0, len(data) - info.offset_data))
                    self.file(member, info.name, "", blob, depth + 1)
        finally:
            if names:
                self.chunk(f"{source} (member names)", "filename", "\n".join(names))


class _Decompressor:
    """The common face of zlib/bz2/lzma incremental decompressors."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.zobj = zlib.decompressobj(wbits=31) if fmt == "gzip" else None
        self.other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if fmt == "bzip2":
            self.other = bz2.BZ2Decompressor()
        elif fmt == "xz":
            self.other = lzma.LZMADecompressor()

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self.zobj is not None:
            data = self.zobj.unconsumed_tail + data
            return self.zobj.decompress(data, max_length)
        assert self.other is not None
        return self.other.decompress(data, max_length)

    @property
    def eof(self) -> bool:
        if self.zobj is not None:
            return self.zobj.eof
        assert self.other is not None
        return self.other.eof

    @property
    def needs_input(self) -> bool:
        if self.zobj is not None:
            return not self.zobj.unconsumed_tail
        assert self.other is not None
        return self.other.needs_input

    @property
    def unused_data(self) -> bytes:
        if self.zobj is not None:
            return self.zobj.unused_data
        assert self.other is not None
        return self.other.unused_data


def _zip_entry_count(data: bytes) -> int | None:
    """Entries declared by the end-of-central-directory record (zip64 aware).

    None when the record is missing or inconsistent (zipfile then judges the file).
    """
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if eocd < 0 or eocd + 22 > len(data):
        return None
    entries, cd_size = struct.unpack_from("<HI", data, eocd + 10)
    if entries == 0xFFFF:
        locator = eocd - 20
        if locator < 0 or data[locator:locator + 4] != b"PK\x06\x07":
            return None
        (record,) = struct.unpack_from("<Q", data, locator + 8)
        if record + 56 > len(data) or data[record:record + 4] != b"PK\x06\x06":
            return None
        entries, cd_size = struct.unpack_from("<QQ", data, record + 32)
    if cd_size > len(data) or entries * 46 > cd_size:
        return None
    return int(entries)


def _content_size(contents: ContentStream | None) -> int:
    return len(contents.get_data()) if contents is not None else 0


def _pdf_form_values(reader: PdfReader) -> list[str]:
    """Values typed into a PDF form (CERFA and the like): not part of the page text."""
    try:
        fields = reader.get_fields() or {}
    except Exception:
        return []
    values: list[str] = []
    for value in fields.values():
        v = value.get("/V")
        if isinstance(v, str) and v.strip() and not v.startswith("/"):
            values.append(v)
        elif isinstance(v, list):
            values.extend(str(x) for x in v if isinstance(x, str) and x.strip())
    return values


def _part_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    return decode_text(payload, part.get_content_charset())
