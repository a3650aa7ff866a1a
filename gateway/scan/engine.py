"""The file scanning engine: one file (or attachment) in, one report out.

Public API, kept stable for `vigie scan`, `vigie usb watch` and the attachment
check:

* ``Verdict``: CLEAN < NOT_INSPECTED < ERROR < SUSPICIOUS < MALICIOUS;
* ``FileFinding``: one thing found (symbol, verdict, French/English reason, the
  path inside archives);
* ``FileReport``: what was found in one file, with its true type;
* ``Scanner``: built once (YARA compiled once), ``scan_bytes`` / ``scan_path`` are
  synchronous, thread-safe and bounded in memory and time (run them off the event
  loop); ``reload()`` recompiles the YARA rules and keeps the old ones on error.

Findings hold file names chosen by the sender, never file contents.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.verdict import Reason

if TYPE_CHECKING:
    from gateway.config import Config


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


def worst(verdicts: Any) -> Verdict:
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
    SCAN_PDF_XFA, SCAN_HTML_SMUGGLING, SCAN_HTML_FORM, SCAN_HTML_REDIRECT, SCAN_YARA,
    SCAN_CLAMAV, SCAN_ERROR.
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


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds for one scan; passing one gives a finding, never an exception."""

    max_depth: int = 5
    max_files: int = 1000
    max_expanded: int = 100 * 1024 * 1024
    max_ratio: int = 200
    timeout: float = 15.0
    yara_timeout: float = 10.0

    @classmethod
    def from_config(cls, cfg: Config) -> ScanLimits:
        s = cfg.scan
        return cls(s.max_depth, s.max_files, s.max_expanded, s.max_ratio, s.timeout,
                   s.yara_timeout)


class Scanner:
    """The engine. Build it once (``from_config``); scan from any thread."""

    def __init__(self, limits: ScanLimits | None = None, *, yara_dir: str = "",
                 clamd: str = "", clamd_timeout: float = 30.0,
                 rules_dir: Path | None = None) -> None:
        self.limits = limits or ScanLimits()
        self.yara_dir = yara_dir
        self.clamd = clamd
        self.clamd_timeout = clamd_timeout
        self.rules_dir = rules_dir
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config) -> Scanner:
        """The scanner a gateway built from ``cfg`` uses; compiles YARA once."""
        from gateway.policy import rules_dir
        return cls(ScanLimits.from_config(cfg), yara_dir=cfg.scan.yara_dir,
                   clamd=cfg.scan.clamd, clamd_timeout=cfg.scan.clamd_timeout,
                   rules_dir=rules_dir(cfg))

    def reload(self) -> None:
        """Recompile the YARA rules; on error raise ScanConfigError, keep the old ones."""

    def scan_bytes(self, name: str, data: bytes) -> FileReport:
        """Scan one file held in memory (an attachment)."""
        from gateway.scan.filetypes import check_name, true_type
        start = time.monotonic()
        ftype = true_type(data)
        findings = check_name(name, ftype, name or "file")
        return FileReport(name=name, size=len(data), mime=ftype.mime,
                          description=ftype.description,
                          verdict=worst(f.verdict for f in findings), findings=findings,
                          elapsed=time.monotonic() - start)

    def scan_path(self, path: Path) -> FileReport:
        """Scan one file on disk (a USB key's file)."""
        return self.scan_bytes(path.name, Path(path).read_bytes())
