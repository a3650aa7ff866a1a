"""PDF active content: JavaScript, automatic actions, Launch, embedded files,
RichMedia, XFA forms, and encryption.

Like pdfid, this reads the PDF's names from its bytes (hex-escaped names such as
``/J#61vaScript`` included) rather than trusting a parser that a crafted file can
stall; object streams, where names hide compressed, are expanded within the
walk's budget. pypdf only answers one question: does an encrypted PDF open
without a password?

What a script does depends on what starts it, so the objects are then parsed
(``pdfobjects``) to tell scripts run when the document opens (the catalog's
/OpenAction, the document-level /Names /JavaScript, a page's /AA /O, an
annotation's /AA /PO or /PV) from the field scripts every Cerfa form has
(/AA /K, /F, /V, /C: formatting an amount as the user types). Embedded files
(Factur-X invoices carry their XML so) are taken out and scanned as files.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import Any

from gateway.scan.pdfobjects import Document, PdfScript, decode_stream
from gateway.scan.report import Verdict
from gateway.scan.walk import CHUNK, Stop, Walk

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


def _object_streams(walk: Walk, path: str, data: bytes) -> list[tuple[bytes, bytes]]:
    """(dictionary, expanded contents) of each object stream, charged to the walk."""
    out: list[tuple[bytes, bytes]] = []
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
        out.append((m.group(0), piece[:CHUNK * 16]))
    return out


def _decrypted_object_streams(walk: Walk, path: str, data: bytes
                              ) -> list[tuple[bytes, bytes]] | None:
    """The object streams of an encrypted PDF that opens without a password, decrypted
    and expanded by pypdf (which bounds each stream), charged to the walk."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        out: list[tuple[bytes, bytes]] = []
        for num in sorted({where[0] for where in reader.xref_objStm.values()}):
            walk.check_time(path)
            stream = reader.get_object(num)
            content = stream.get_data()  # type: ignore[union-attr]
            walk.spent(path, len(content), None)
            header = b"<< /Type /ObjStm /N %d /First %d >>" % (
                int(stream["/N"]), int(stream["/First"]))  # type: ignore[index]
            out.append((header, content[:CHUNK * 16]))
        return out
    except Stop:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, NotImplementedError,
            AttributeError, IndexError, zlib.error):
        return None


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


# Obfuscation and the reader's known weak points: what exploit PDFs call, and what
# Acrobat's formatting helpers never do.
_HOSTILE = re.compile(
    rb"eval\s*\(|unescape\s*\(|fromcharcode|util\.printf|collab\.(?:collectemailinfo|geticon)"
    rb"|\.getannots\s*\(|spell\.customdictionaryopen|media\.newplayer|exportdataobject"
    rb"|(?:%u[0-9a-f]{4}){16}|(?:\\x[0-9a-f]{2}){64}")
# What a script run at opening should not do by itself either.
_AT_OPEN_ONLY = re.compile(rb"launchurl|app\.opendoc|submitform|\.geturl\s*\(|importdataobject")


def _hostile(script: PdfScript, at_open: bool) -> bool:
    text = script.text.lower()
    return bool(_HOSTILE.search(text) or (at_open and _AT_OPEN_ONLY.search(text)))


def scan_pdf(walk: Walk, path: str, data: bytes, depth: int = 0) -> None:
    bare = outside_streams(data)
    names = names_in(bare)
    streams = _object_streams(walk, path, data) if "ObjStm" in names else []
    for _dict, content in streams:
        names |= names_in(content)
    if "Encrypt" in names:
        if _needs_password(data):
            walk.add("SCAN_ENCRYPTED", Verdict.SUSPICIOUS,
                     "PDF protégé par mot de passe : impossible à inspecter (un moyen classique "
                     "de faire passer un logiciel malveillant)",
                     "password-protected PDF: cannot be inspected (a classic way to smuggle "
                     "malware)", path)
            return
        if "ObjStm" in names:
            # a "secured" PDF (restrictions, no password to open): its object streams
            # are encrypted; pypdf opens them with the empty password
            decrypted = _decrypted_object_streams(walk, path, data)
            if decrypted is None:
                walk.limit(path, "PDF chiffré (sans mot de passe d'ouverture), lu en partie",
                           "encrypted PDF (no password to open), partly read")
            else:
                streams = decrypted
                for _dict, content in streams:
                    names |= names_in(content)
    def decode(info: dict[str, Any], raw: bytes) -> bytes | None:
        walk.check_time(path)
        got = decode_stream(info, raw, walk.room())
        if got is None:
            return None
        content, consumed = got
        walk.ratio(path, len(content), consumed)
        walk.spent(path, len(content), None)
        return content

    # the objects are parsed only for a PDF that has something to judge by its structure
    structural = {"JS", "JavaScript", "EmbeddedFile", "EmbeddedFiles", "OpenAction", "AA"}
    doc = (Document.parse(data, streams, decode=decode,
                          check_time=lambda: walk.check_time(path))
           if names & structural else Document())
    encrypted = "Encrypt" in names  # strings and streams unreadable: triggers only
    if names & {"JS", "JavaScript"}:
        _javascript(walk, path, doc, encrypted)
    if "Launch" in names:
        walk.add("SCAN_PDF_LAUNCH", Verdict.MALICIOUS,
                 "PDF qui lance un programme (action Launch)",
                 "PDF that starts a program (Launch action)", path)
    if names & {"EmbeddedFile", "EmbeddedFiles"}:
        _embedded(walk, path, doc, depth, encrypted)
    if "RichMedia" in names:
        walk.add("SCAN_PDF_RICHMEDIA", Verdict.SUSPICIOUS,
                 "PDF avec du contenu multimédia actif (RichMedia, Flash)",
                 "PDF with active media content (RichMedia, Flash)", path)
    if "XFA" in names:
        walk.add("SCAN_PDF_XFA", Verdict.SUSPICIOUS, "PDF avec un formulaire XFA (scriptable)",
                 "PDF with an XFA (scriptable) form", path)
    if doc.open_action_types & {"SubmitForm", "ImportData", "GoToR", "GoToE", "URI"} or (
            _OPEN_URI.search(data)):
        walk.add("SCAN_PDF_ACTION", Verdict.SUSPICIOUS,
                 "PDF qui ouvre une adresse, un autre fichier ou envoie des données tout seul",
                 "PDF that opens an address or another file, or sends data, by itself", path)


def _javascript(walk: Walk, path: str, doc: Document, encrypted: bool) -> None:
    at_open = doc.open_scripts
    if at_open:
        if any(_hostile(s, True) for s in at_open):
            walk.add("SCAN_PDF_JS", Verdict.MALICIOUS,
                     "PDF avec du JavaScript lancé à l'ouverture, dissimulé ou qui vise les "
                     "failles du lecteur", "PDF with JavaScript run when opened, obfuscated "
                     "or aimed at the reader's weaknesses", path)
        else:
            walk.add("SCAN_PDF_JS", Verdict.SUSPICIOUS,
                     "PDF avec du JavaScript lancé à l'ouverture",
                     "PDF with JavaScript run when opened", path)
    elif doc.user_scripts:
        # field and button scripts (Cerfa forms) run only when the user acts: fine
        # unless they hide something
        if any(_hostile(s, False) for s in doc.user_scripts):
            walk.add("SCAN_PDF_JS", Verdict.SUSPICIOUS,
                     "PDF dont les champs de formulaire contiennent du JavaScript dissimulé",
                     "PDF whose form fields hold obfuscated JavaScript", path)
    elif not encrypted or not doc.objects:
        # a script found by name that no trigger of the parsed objects starts
        walk.add("SCAN_PDF_JS", Verdict.SUSPICIOUS, "PDF avec du JavaScript",
                 "PDF with JavaScript", path)


def _embedded(walk: Walk, path: str, doc: Document, depth: int, encrypted: bool) -> None:
    files = [] if encrypted else doc.embedded_files()
    if not files:
        walk.add("SCAN_PDF_EMBEDDED", Verdict.SUSPICIOUS,
                 "PDF avec un fichier incorporé illisible",
                 "PDF with an unreadable embedded file", path)
        return
    for name, content in files:
        if content is None:
            walk.add("SCAN_PDF_EMBEDDED", Verdict.SUSPICIOUS,
                     "PDF avec un fichier incorporé illisible",
                     "PDF with an unreadable embedded file", f"{path}/{name}")
            continue
        walk.child(f"{path}/{name}", name, content, depth + 1)
