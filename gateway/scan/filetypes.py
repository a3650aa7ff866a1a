"""True file types (libmagic, never the name or the declared type) and file-name tricks."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import magic

from gateway.scan.engine import FileFinding, Verdict
from gateway.verdict import Reason

_local = threading.local()


@dataclass(frozen=True, slots=True)
class FileType:
    mime: str
    description: str


def _magic(mime: bool) -> magic.Magic:
    key = "mime" if mime else "desc"
    m = getattr(_local, key, None)
    if m is None:  # libmagic handles are not thread-safe: one per thread
        m = magic.Magic(mime=mime)
        setattr(_local, key, m)
    return m


def true_type(data: bytes) -> FileType:
    """The MIME type and description libmagic gives the first bytes of ``data``."""
    head = data[: 1024 * 1024]
    try:
        return FileType(_magic(True).from_buffer(head), _magic(False).from_buffer(head))
    except magic.MagicException:
        return FileType("application/octet-stream", "data")


_RTL = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_SPACES = re.compile(r"[ \u00a0\u2000-\u200b\u3000_]{8,}")


def check_name(name: str, ftype: FileType, path: str) -> list[FileFinding]:
    """Findings for tricks in a file name: RTL override, long runs of spaces."""
    out: list[FileFinding] = []
    if _RTL.search(name):
        out.append(FileFinding("SCAN_RTLO", Verdict.MALICIOUS, Reason(
            "nom de fichier avec un caractère d'inversion du sens d'écriture (il cache sa "
            "vraie extension)",
            "file name with a right-to-left override character (it hides its real "
            "extension)"), path))
    if _SPACES.search(name):
        out.append(FileFinding("SCAN_NAME_SPACES", Verdict.SUSPICIOUS, Reason(
            "nom de fichier avec une longue suite d'espaces (cache l'extension)",
            "file name with a long run of spaces (hides the extension)"), path))
    return out
