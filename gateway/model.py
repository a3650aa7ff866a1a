"""The message model: envelope facts plus the original bytes, parsed once.

The original bytes are never re-serialised for relaying; the parsed form is
only read by checks.
"""

from __future__ import annotations

import asyncio
import email.header
import email.policy
import enum
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from gateway.detect.extract import Extraction


T = TypeVar("T")


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


@dataclass(slots=True)
class Envelope:
    """What the SMTP conversation told us about the message."""

    mail_from: str
    rcpt_tos: list[str]
    direction: Direction = Direction.OUTBOUND
    mail_options: list[str] = field(default_factory=list)
    client_ip: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    tls: bool = False
    queue_id: str = ""
    # Inbound behind trusted relays: how many of them the origin was found behind.
    relay_hops: int = 0

    @property
    def declared_8bitmime(self) -> bool:
        return any(o.upper() == "BODY=8BITMIME" for o in self.mail_options)

    @property
    def smtputf8(self) -> bool:
        return any(o.upper() == "SMTPUTF8" for o in self.mail_options)

    @property
    def rcpt_domains(self) -> list[str]:
        return sorted({domain_of(r) for r in self.rcpt_tos})


def domain_of(address: str) -> str:
    """The lower-cased domain part of an address ('' when there is none)."""
    _, at, domain = address.rpartition("@")
    return domain.strip().strip(">").lower() if at else ""


def split_header_body(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw bytes at the first empty line (CRLF or bare LF tolerated)."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    candidates = [(i, 4) for i in (crlf,) if i >= 0] + [(i, 2) for i in (lf,) if i >= 0]
    if not candidates:
        return raw, b""
    pos, width = min(candidates)
    return raw[: pos + width // 2], raw[pos + width :]


# Below this size CPU work runs on the event loop: it takes well under a
# millisecond, less than handing it to a thread.
INLINE_LIMIT = 128 * 1024


class Message:
    """A message under examination: original bytes, envelope, lazily parsed MIME tree.

    The text extraction is done once, off the event loop, and shared by checks.
    """

    def __init__(self, raw: bytes, envelope: Envelope) -> None:
        self.raw = raw
        self.envelope = envelope
        self._extraction: asyncio.Future[Extraction] | None = None
        self._shared: dict[str, asyncio.Future[Any]] = {}
        # What checks leave for the relay step (e.g. the Authentication-Results value).
        self.notes: dict[str, Any] = {}

    async def once(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` run once per message and shared by every check that asks (the
        sender authentication that several checks read)."""
        future = self._shared.get(key)
        if future is None:
            future = asyncio.ensure_future(work())
            self._shared[key] = future
        # shield: a check that times out must not cancel the work others wait on
        result: T = await asyncio.shield(future)
        return result

    async def extraction(self) -> Extraction:
        """The shared extraction (computed in a thread the first time it is asked for)."""
        if self._extraction is None:
            from gateway.detect.extract import extract_message

            if len(self.raw) < INLINE_LIMIT:  # a thread hand-off costs more than the work
                done: asyncio.Future[Extraction] = asyncio.get_running_loop().create_future()
                done.set_result(extract_message(self.parsed))
                self._extraction = done
            else:
                self._extraction = asyncio.ensure_future(
                    asyncio.to_thread(lambda: extract_message(self.parsed)))
        # shield: a check that times out must not cancel the work others wait on
        return await asyncio.shield(self._extraction)

    @cached_property
    def header_bytes(self) -> bytes:
        return split_header_body(self.raw)[0]

    @cached_property
    def header_fields(self) -> list[tuple[str, bytes]]:
        """The unfolded header fields, (lower-case name, raw value), parsed once for the
        checks and the handler that read them."""
        from gateway.detect.hygiene import header_fields

        return header_fields(self.header_bytes)[0]

    @cached_property
    def body_bytes(self) -> bytes:
        return split_header_body(self.raw)[1]

    @cached_property
    def parsed(self) -> EmailMessage:
        """The stdlib parse with ``policy.default`` (done once, shared by checks)."""
        msg = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def size(self) -> int:
        return len(self.raw)


_SUBJECT_LINE = re.compile(rb"^subject[ \t]*:[ \t]*", re.IGNORECASE)


def prepend_header(raw: bytes, name: str, value: str) -> bytes:
    """Add one header field on top, leaving every original byte as it was."""
    return f"{name}: {value}\r\n".encode() + raw


def encode_word(text: str) -> str:
    """RFC 2047 form of ``text`` when it is not plain ASCII."""
    if text.isascii():
        return text
    return email.header.Header(text, "utf-8").encode(maxlinelen=998)


def prefix_subject(raw: bytes, prefix: str) -> bytes:
    """Put ``prefix`` in front of the first Subject (or add one), touching nothing else."""
    header, _ = split_header_body(raw)
    enc = encode_word(prefix.rstrip())
    spaced = enc + " "
    offset = 0
    for line in header.splitlines(keepends=True):
        m = _SUBJECT_LINE.match(line)
        if m:
            at = offset + m.end()
            if raw[at:].startswith(spaced.encode("ascii")):
                return raw
            if not prefix.isascii() and raw[at:at + 2] == b"=?":
                # white space between two encoded words is not displayed: carry the
                # separating space inside the prefix's own encoded word
                spaced = encode_word(prefix.rstrip() + " ") + " "
            return raw[:at] + spaced.encode("ascii") + raw[at:]
        offset += len(line)
    return prepend_header(raw, "Subject", enc)


def _subject_span(raw: bytes) -> tuple[int, int] | None:
    """Byte span of the first Subject field, continuation lines included."""
    header, _ = split_header_body(raw)
    offset = 0
    lines = header.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if _SUBJECT_LINE.match(line):
            end = offset + len(line)
            for nxt in lines[i + 1:]:
                if nxt[:1] in (b" ", b"\t"):
                    end += len(nxt)
                else:
                    break
            return offset, end
        offset += len(line)
    return None


_ACCENTED = {"a": "aàâäá", "e": "eéèêë", "i": "iîïí", "o": "oôöó", "u": "uùûüú", "c": "cç"}


def loose_pattern(text: str) -> re.Pattern[str]:
    """A case- and accent-insensitive regex for ``text`` («sécurisé» = «securise»)."""
    out = []
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        if unicodedata.combining(ch):
            continue
        out.append(f"[{_ACCENTED[ch]}]" if ch in _ACCENTED else re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE)


def remove_from_subject(raw: bytes, marker: str, decoded_subject: str) -> bytes:
    """Take ``marker`` out of the Subject, literally when it is there in clear, else by
    re-encoding that one field. Every other byte stays as it was."""
    span = _subject_span(raw)
    if span is None or not marker:
        return raw
    start, end = span
    field_bytes = raw[start:end]
    pattern = re.compile(rb"[ \t]?" + re.escape(marker.encode("utf-8")), re.IGNORECASE)
    if pattern.search(field_bytes):
        new_field = pattern.sub(b"", field_bytes, count=1)
        new_field = re.sub(rb"^(subject[ \t]*:)[ \t]+", rb"\1 ", new_field, flags=re.IGNORECASE)
        return raw[:start] + new_field + raw[end:]
    loose = loose_pattern(marker)
    if not loose.search(decoded_subject):
        return raw
    cleaned = re.sub(r"\s*" + loose.pattern, "", decoded_subject, count=1,
                     flags=re.IGNORECASE)
    cleaned = cleaned.strip()
    newline = b"\r\n" if field_bytes.endswith(b"\r\n") else b"\n"
    encoded = cleaned if cleaned.isascii() else email.header.Header(cleaned, "utf-8").encode(
        maxlinelen=76, linesep=newline.decode("ascii"))
    return raw[:start] + f"Subject: {encoded}".encode("ascii") + newline + raw[end:]
