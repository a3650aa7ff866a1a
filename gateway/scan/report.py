"""The scan engine's vocabulary: verdicts, findings, reports, rule errors.

Re-exported by ``gateway.scan.engine``, the public entry point; the format
modules import it from here to stay free of the engine itself.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.verdict import Reason


class Verdict(enum.StrEnum):
    """How bad a file (or one finding) is; compare with ``severity``."""

    CLEAN = "CLEAN"
    NOT_INSPECTED = "NOT_INSPECTED"
    ERROR = "ERROR"
    SUSPICIOUS = "SUSPICIOUS"
    MALICIOUS = "MALICIOUS"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def fr(self) -> str:
        return _VERDICT_FR[self]


_SEVERITY = {Verdict.CLEAN: 0, Verdict.NOT_INSPECTED: 1, Verdict.ERROR: 2,
             Verdict.SUSPICIOUS: 3, Verdict.MALICIOUS: 4}
_VERDICT_FR = {Verdict.CLEAN: "sain", Verdict.NOT_INSPECTED: "non inspecté",
               Verdict.ERROR: "erreur d'analyse", Verdict.SUSPICIOUS: "suspect",
               Verdict.MALICIOUS: "malveillant"}


# Control characters, and those that change the direction or hide in text: a file
# name holding U+202E shows "facture\u202efdp.exe" as "factureexe.pdf" in a reply.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f"
                     "\ufeff]")


def printable(text: str) -> str:
    """``text`` with control and direction characters written as ``\\uNNNN``."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe of ``verdicts`` (CLEAN when empty)."""
    out = Verdict.CLEAN
    for v in verdicts:
        if v.severity > out.severity:
            out = v
    return out


@dataclass(frozen=True, slots=True)
class FileFinding:
    """One thing found in a file.

    ``symbol``: SCAN_BANNED_TYPE, SCAN_TYPE_MISMATCH, SCAN_DOUBLE_EXT, SCAN_RTLO,
    SCAN_NAME_SPACES, SCAN_BOMB, SCAN_LIMIT, SCAN_ENCRYPTED, SCAN_NOT_INSPECTED,
    SCAN_VBA_MACRO, SCAN_XLM_MACRO, SCAN_DDE, SCAN_REMOTE_TEMPLATE, SCAN_OLE_OBJECT,
    SCAN_PDF_JS, SCAN_PDF_ACTION, SCAN_PDF_LAUNCH, SCAN_PDF_EMBEDDED, SCAN_PDF_RICHMEDIA,
    SCAN_PDF_XFA, SCAN_HTML_SMUGGLING, SCAN_HTML_FORM, SCAN_HTML_REDIRECT,
    SCAN_HTML_SCRIPT, SCAN_SHORTCUT, SCAN_YARA, SCAN_CLAMAV, SCAN_ERROR; and
    SCAN_CLAMAV_UNAVAILABLE, a note whose verdict is CLEAN (the others stand).
    ``path``: "facture.zip/dossier/x.exe" for a member of an archive.
    """

    symbol: str
    verdict: Verdict
    reason: Reason
    path: str

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "verdict": self.verdict.value,
                "reason": self.reason.to_json(), "path": self.path}


@dataclass
class FileReport:
    """What the engine found in one file. ``children``: files looked at inside it."""

    name: str
    size: int
    mime: str
    description: str
    verdict: Verdict
    findings: list[FileFinding] = field(default_factory=list)
    children: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mime": self.mime,
                "description": self.description, "verdict": self.verdict.value,
                "findings": [f.to_json() for f in self.findings], "children": self.children,
                "elapsed": round(self.elapsed, 4)}


class ScanConfigError(Exception):
    """A rule set that does not compile: the file and the line, French then English."""

    def __init__(self, fr: str, en: str, *, file: str | None = None,
                 line: int | None = None) -> None:
        self.fr, self.en, self.file, self.line = fr, en, file, line
        where_fr = f"{file}, ligne {line} : " if file and line else (f"{file} : " if file else "")
        where_en = f"{file}, line {line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where_fr}{fr}\n{where_en}{en}")
