"""PDF active content: JavaScript, automatic actions, Launch, embedded files,
RichMedia, XFA forms, and encryption.

Like pdfid, this reads the PDF's names from its bytes (hex-escaped names such as
``/J#61vaScript`` included) rather than trusting a parser that a crafted file can
stall; object streams, where names hide compressed, are expanded within the
walk's budget. pypdf only answers one question: does an encrypted PDF open
without a password?
"""

from __future__ import annotations

import io
import re
import zlib

from gateway.scan.report import Verdict
from gateway.scan.walk import CHUNK, Walk

_NAMES = ("JS", "JavaScript", "OpenAction", "AA", "Launch", "EmbeddedFile", "EmbeddedFiles",
          "RichMedia", "XFA", "Encrypt", "ObjStm", "SubmitForm", "ImportData", "GoToR",
          "GoToE")


# One pass, anchored on the "/" every name starts with (found at memory speed); names
# written with #xx escapes are rare and decoded one by one.
_PLAIN = re.compile(rb"/(" + b"|".join(n.encode() for n in sorted(_NAMES, key=len, reverse=True))
                    + rb")(?![A-Za-z0-9#])")
_HEX_NAME = re.compile(rb"/[A-Za-z0-9]*#[0-9A-Fa-f]{2}[A-Za-z0-9#]*")
_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm[^>]{0,400}>>\s*stream\r?\n", re.DOTALL)
_OPEN_URI = re.compile(rb"/OpenAction\s*<<[^>]{0,200}/S\s*/URI")


def names_in(data: bytes) -> set[str]:
    """The names of ``_NAMES`` written in ``data``, plainly or with #xx escapes."""
    found = {m.group(1).decode() for m in _PLAIN.finditer(data)}
    if b"#" in data:
        for m in _HEX_NAME.finditer(data):
            name = _HEX.sub(lambda h: bytes([int(h.group(1), 16)]), m.group(0)[1:])
            text = name.decode("latin-1")
            if text in _NAMES:
                found.add(text)
    return found


_STREAM = re.compile(rb">>\s*stream\r?\n")


def outside_streams(data: bytes) -> bytes:
    """``data`` without the bodies of its streams (page contents, images, fonts).

    Names only act in dictionaries; a compressed image is random bytes in which
    "/JS" turns up by chance, one scanned page in a few dozen. Object streams,
    which do hold dictionaries, are expanded separately.
    """
    parts: list[bytes] = []
    pos = 0
    for m in _STREAM.finditer(data):
        if m.start() < pos:
            continue
        parts.append(data[pos:m.end()])
        end = data.find(b"endstream", m.end())
        if end < 0:
            return b"".join(parts)
        pos = end
    parts.append(data[pos:])
    return b"".join(parts)


def _object_streams(walk: Walk, path: str, data: bytes) -> bytes:
    """The expanded contents of the object streams, charged to the walk."""
    out = bytearray()
    for m in _OBJSTM.finditer(data):
        walk.check_time(path)
        start = m.end()
        end = data.find(b"endstream", start)
        if end < 0:
            continue
        d = zlib.decompressobj()
        try:
            piece = d.decompress(data[start:end], walk.room() + 1)
        except zlib.error:
            continue
        walk.ratio(path, len(piece), end - start)
        walk.spent(path, len(piece), None)
        out += piece[:CHUNK * 16]
    return bytes(out)


def _needs_password(data: bytes) -> bool:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError
    try:
        reader = PdfReader(io.BytesIO(data))
        if not reader.is_encrypted:
            return False
        return not reader.decrypt("")
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, NotImplementedError,
            AttributeError, IndexError):
        return True


def scan_pdf(walk: Walk, path: str, data: bytes) -> None:
    names = names_in(outside_streams(data))
    if "ObjStm" in names:
        names |= names_in(_object_streams(walk, path, data))
    if "Encrypt" in names:
        if _needs_password(data):
            walk.add("SCAN_ENCRYPTED", Verdict.SUSPICIOUS,
                     "PDF protégé par mot de passe : impossible à inspecter (un moyen classique "
                     "de faire passer un logiciel malveillant)",
                     "password-protected PDF: cannot be inspected (a classic way to smuggle "
                     "malware)", path)
            return
        if "ObjStm" in names:
            walk.limit(path, "PDF chiffré (sans mot de passe d'ouverture), lu en partie",
                       "encrypted PDF (no password to open), partly read")
    auto = bool(names & {"OpenAction", "AA"})
    if names & {"JS", "JavaScript"}:
        if auto:
            walk.add("SCAN_PDF_JS", Verdict.MALICIOUS,
                     "PDF avec du JavaScript lancé à l'ouverture",
                     "PDF with JavaScript run when opened", path)
        else:
            walk.add("SCAN_PDF_JS", Verdict.SUSPICIOUS, "PDF avec du JavaScript",
                     "PDF with JavaScript", path)
    if "Launch" in names:
        walk.add("SCAN_PDF_LAUNCH", Verdict.MALICIOUS,
                 "PDF qui lance un programme (action Launch)",
                 "PDF that starts a program (Launch action)", path)
    if names & {"EmbeddedFile", "EmbeddedFiles"}:
        walk.add("SCAN_PDF_EMBEDDED", Verdict.SUSPICIOUS, "PDF avec un fichier incorporé",
                 "PDF with an embedded file", path)
    if "RichMedia" in names:
        walk.add("SCAN_PDF_RICHMEDIA", Verdict.SUSPICIOUS,
                 "PDF avec du contenu multimédia actif (RichMedia, Flash)",
                 "PDF with active media content (RichMedia, Flash)", path)
    if "XFA" in names:
        walk.add("SCAN_PDF_XFA", Verdict.SUSPICIOUS, "PDF avec un formulaire XFA (scriptable)",
                 "PDF with an XFA (scriptable) form", path)
    if auto and (names & {"SubmitForm", "ImportData", "GoToR", "GoToE"} or _OPEN_URI.search(
            data)):
        walk.add("SCAN_PDF_ACTION", Verdict.SUSPICIOUS,
                 "PDF qui ouvre une adresse, un autre fichier ou envoie des données tout seul",
                 "PDF that opens an address or another file, or sends data, by itself", path)
