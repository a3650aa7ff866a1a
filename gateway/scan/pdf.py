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


def _escaped(name: str) -> bytes:
    """A regex for ``/name`` where any character may be written #xx."""
    out = b"/"
    for ch in name:
        hx = f"{ord(ch):02x}".encode()
        alts = [re.escape(ch.encode()), b"#" + hx, b"#" + hx.upper()]
        out += b"(?:" + b"|".join(alts) + b")"
    return out + rb"(?![A-Za-z0-9#])"


_PATTERN = re.compile(b"|".join(b"(?P<n%d>%s)" % (i, _escaped(n)) for i, n in enumerate(_NAMES)))
_OBJSTM = re.compile(rb"/Type\s*/ObjStm[^>]{0,400}>>\s*stream\r?\n", re.DOTALL)
_OPEN_URI = re.compile(rb"/OpenAction\s*<<[^>]{0,200}/S\s*/URI")


def names_in(data: bytes) -> set[str]:
    found: set[str] = set()
    for m in _PATTERN.finditer(data):
        found.add(_NAMES[int(str(m.lastgroup)[1:])])
    return found


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
        walk.spent(path, len(piece), None)
        walk.ratio(path, len(piece), end - start)
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
    names = names_in(data)
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
