"""Message hygiene: header presence and uniqueness, sizes, 8-bit and line-ending abuse.

Pure: takes bytes and envelope flags, returns hits. Evidence never quotes
header values (they may hold patient names): only names and counts.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from email.utils import getaddresses, parsedate_to_datetime

from gateway.model import split_header_body
from gateway.verdict import Reason

MAX_LINE = 998
MAX_HEADER_FIELDS = 1000
SINGLE_FIELDS = ("sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "references")

# End-of-data look-alikes with a non-canonical line ending (SMTP smuggling).
# "\r\n.\r\n" itself is legitimate content once dot-unstuffing is done.
_SMUGGLING = re.compile(rb"(?:(?<!\r)\n|\r(?!\n))\.(?:\r\n|\n|\r)|\r\n\.(?:(?<!\r)\n|\r(?!\n))")
# Fast paths for the usual well-formed values; anything else gets the full parse.
_PLAIN_FROM = re.compile(rb'(?:[^<>@,;:"\\]*<[^<>@\s,;:"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}>'
                         rb'|[^<>@\s,;:"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})\s*$')
_PLAIN_DATE = re.compile(rb"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(?:[0-2]?\d|3[01]) "
                         rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                         rb"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)? [+-]\d{4}(?: \(\w+\))?\s*$")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_LINE_END = re.compile(rb"\r\n|\n")


@dataclass(frozen=True, slots=True)
class Hit:
    symbol: str
    reason: Reason
    evidence: tuple[str, ...] = ()


def header_lines(header: bytes) -> list[bytes]:
    """The lines of a header block, without their CRLF or LF."""
    return _LINE_END.split(header)


def header_fields(header: bytes, lines: list[bytes] | None = None
                  ) -> tuple[list[tuple[str, bytes]], list[bytes]]:
    """Unfold a header block into (lower-case name, raw value) pairs and stray lines."""
    fields: list[tuple[str, bytes]] = []
    stray: list[bytes] = []
    for line in header_lines(header) if lines is None else lines:
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
            continue
        m = _FIELD.match(line)
        if m:
            fields.append((m.group(1).decode("ascii").lower(), line[m.end():].strip()))
        else:
            stray.append(line)
    return fields, stray


def inspect(raw: bytes, *, declared_8bitmime: bool, smtputf8: bool,
            max_header_size: int = 64 * 1024) -> list[Hit]:
    hits: list[Hit] = []
    header, body = split_header_body(raw)
    lines = header_lines(header)
    fields, stray = header_fields(header, lines)
    if not raw.strip() or not fields or (stray and stray[0] == header.split(b"\n", 1)[0]
                                         .rstrip(b"\r")):
        hits.append(Hit("HYG_NOT_A_MESSAGE", Reason(
            "le contenu envoyé n'est pas un message électronique valide (pas d'en-têtes)",
            "the data sent is not a valid e-mail message (no header fields)")))
        return hits
    if b"\x00" in raw:
        hits.append(Hit("HYG_NUL_BYTE", Reason(
            "le message contient un octet nul, interdit dans un e-mail",
            "the message contains a NUL byte, which mail does not allow")))
    # cheap C-level pre-checks first: the regexes only run where they can match
    smuggled = _SMUGGLING.findall(raw) if (b"\n." in raw or b"\r." in raw) else []
    if smuggled:
        hits.append(Hit("HYG_SMUGGLING", Reason(
            "le message contient une fin de message déguisée (tentative de « SMTP smuggling »)",
            "the message contains a disguised end-of-data sequence (SMTP smuggling attempt)"),
            (f"{len(smuggled)} occurrence(s)",)))
    crlf = raw.count(b"\r\n")
    bare = (raw.count(b"\n") - crlf) + (raw.count(b"\r") - crlf)
    if bare and not smuggled:
        hits.append(Hit("HYG_BARE_LF", Reason(
            "fins de ligne non conformes (LF ou CR seul)",
            "non-standard line endings (bare LF or CR)"), (f"{bare} line(s)",)))
    if len(header) > max_header_size:
        hits.append(Hit("HYG_HEADER_TOO_BIG", Reason(
            f"les en-têtes du message sont trop gros ({len(header)} octets, maximum "
            f"{max_header_size})",
            f"the message header is too big ({len(header)} bytes, limit {max_header_size})"),
            (f"{len(header)} bytes",)))
    if len(fields) > MAX_HEADER_FIELDS:
        hits.append(Hit("HYG_TOO_MANY_HEADERS", Reason(
            f"le message a trop d'en-têtes ({len(fields)})",
            f"the message has too many header fields ({len(fields)})"), (str(len(fields)),)))
    long_lines = [ln for ln in lines if len(ln) > MAX_LINE] if len(header) > MAX_LINE else []
    if long_lines:
        hits.append(Hit("HYG_HEADER_LINE_TOO_LONG", Reason(
            "une ligne d'en-tête dépasse 998 caractères",
            "a header line is longer than 998 characters"), (f"{len(long_lines)} line(s)",)))

    counts = Counter(name for name, _ in fields)
    values = {name: value for name, value in reversed(fields)}  # first occurrence wins

    if counts["from"] == 0:
        hits.append(Hit("HYG_NO_FROM", Reason(
            "le message n'indique pas d'expéditeur (en-tête From absent)",
            "the message has no sender (missing From header)")))
    elif counts["from"] > 1:
        hits.append(Hit("HYG_MULTI_FROM", Reason(
            "le message indique plusieurs expéditeurs (en-tête From répété)",
            "the message has several From headers"), (f"From x{counts['from']}",)))
    elif not _PLAIN_FROM.match(values["from"]):  # the common forms, without a full parse
        text = values["from"].decode("utf-8", "replace")
        addrs = [a for _, a in getaddresses([text]) if a]
        if not addrs or not all("@" in a and not a.startswith("@") and not a.endswith("@")
                                for a in addrs):
            hits.append(Hit("HYG_FROM_INVALID", Reason(
                "l'adresse de l'expéditeur (From) est illisible",
                "the sender address (From) cannot be parsed")))

    if counts["date"] == 0:
        hits.append(Hit("HYG_NO_DATE", Reason(
            "le message n'a pas de date (en-tête Date absent)",
            "the message has no Date header")))
    elif counts["date"] > 1:
        hits.append(Hit("HYG_MULTI_DATE", Reason(
            "le message a plusieurs dates (en-tête Date répété)",
            "the message has several Date headers"), (f"Date x{counts['date']}",)))
    elif not _PLAIN_DATE.match(values["date"]):
        try:
            parsedate_to_datetime(values["date"].decode("ascii", "replace"))
        except (TypeError, ValueError, IndexError, OverflowError):
            hits.append(Hit("HYG_DATE_INVALID", Reason(
                "la date du message est illisible", "the message Date cannot be parsed")))

    if counts["message-id"] == 0:
        hits.append(Hit("HYG_NO_MESSAGE_ID", Reason(
            "le message n'a pas d'identifiant (en-tête Message-ID absent)",
            "the message has no Message-ID header")))
    elif counts["message-id"] > 1:
        hits.append(Hit("HYG_MULTI_MESSAGE_ID", Reason(
            "le message a plusieurs identifiants (Message-ID répété)",
            "the message has several Message-ID headers"),
            (f"Message-ID x{counts['message-id']}",)))
    if counts["subject"] > 1:
        hits.append(Hit("HYG_MULTI_SUBJECT", Reason(
            "le message a plusieurs objets (Subject répété)",
            "the message has several Subject headers"), (f"Subject x{counts['subject']}",)))
    repeated = [n for n in SINGLE_FIELDS if counts[n] > 1]
    if repeated:
        hits.append(Hit("HYG_MULTI_SINGLE_HEADER", Reason(
            "des en-têtes qui doivent être uniques sont répétés",
            "header fields that must appear once are repeated"),
            tuple(f"{n} x{counts[n]}" for n in repeated)))

    if not smtputf8 and not header.isascii():
        hits.append(Hit("HYG_8BIT_HEADER", Reason(
            "des caractères non codés figurent dans les en-têtes (8 bits sans SMTPUTF8)",
            "raw 8-bit characters in the header without SMTPUTF8")))
    if not (declared_8bitmime or smtputf8) and not body.isascii():
        hits.append(Hit("HYG_8BIT_UNDECLARED", Reason(
            "le corps contient des caractères 8 bits non déclarés (BODY=8BITMIME absent)",
            "the body has 8-bit characters but BODY=8BITMIME was not declared")))
    return hits
