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

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.scan import archives, clamav, htmlscan, mailfile, office, pdf, shortcuts
from gateway.scan.filetypes import BannedTypes, FileType, check_name, extension, true_type
from gateway.scan.report import FileFinding, FileReport, ScanConfigError, Verdict, worst
from gateway.scan.walk import Stop, Walk
from gateway.scan.yarascan import RuleSet, compile_rules, match

if TYPE_CHECKING:
    from gateway.config import Config

__all__ = ["FileFinding", "FileReport", "ScanConfigError", "ScanLimits", "Scanner", "Verdict",
           "worst"]

log = logging.getLogger("vigie.scan")

DIRECTIONS = ("inbound", "outbound", "file")
# scan_path reads a file whole up to this size; past it, only what can be read in
# place (the start for its type, YARA on the file, a zip's members) is looked at.
WHOLE_FILE = 128 * 1024 * 1024
# After clamd fails to answer, files are not sent to it for this long (a USB key of a
# thousand files must not wait a thousand connection time-outs).
CLAMD_RETRY = 30.0


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


def _default_rules_dir() -> Path:
    from importlib import resources
    return Path(str(resources.files("gateway.rules_data")))


class Scanner:
    """The engine. Build it once (``from_config``); scan from any thread."""

    def __init__(self, limits: ScanLimits | None = None, *, yara_dir: str = "",
                 clamd: str = "", clamd_timeout: float = 30.0,
                 rules_dir: Path | None = None) -> None:
        self.limits = limits or ScanLimits()
        self.yara_dir = yara_dir
        self.clamd = clamd
        self.clamd_timeout = clamd_timeout
        self.whole_file = WHOLE_FILE
        folder = rules_dir or _default_rules_dir()
        if not (folder / "banned_types.toml").exists():  # a rules folder from before issue 5
            folder = _default_rules_dir()
        self.banned = BannedTypes.load(folder / "banned_types.toml")
        self._lock = threading.Lock()
        self._rules: RuleSet = compile_rules(yara_dir)
        self._clamd_lock = threading.Lock()
        self._clamd_down_until = 0.0
        self._clamd_down = False

    @classmethod
    def from_config(cls, cfg: Config) -> Scanner:
        """The scanner a gateway built from ``cfg`` uses; compiles YARA once."""
        from gateway.policy import rules_dir
        return cls(ScanLimits.from_config(cfg), yara_dir=cfg.scan.yara_dir,
                   clamd=cfg.scan.clamd, clamd_timeout=cfg.scan.clamd_timeout,
                   rules_dir=rules_dir(cfg))

    @property
    def rule_files(self) -> tuple[str, ...]:
        return self._rules.files

    def reload(self) -> None:
        """Recompile the YARA rules; on error raise ScanConfigError, keep the old ones."""
        with self._lock:
            fresh = compile_rules(self.yara_dir)  # raises before anything is replaced
            self._rules = fresh
        log.info("règles YARA rechargées (%d fichiers) / YARA rules reloaded (%d files)",
                 len(fresh.files), len(fresh.files))

    # --- scanning ------------------------------------------------------
    def scan_bytes(self, name: str, data: bytes, *, direction: str = "inbound",
                   deadline: float | None = None) -> FileReport:
        """Scan one file held in memory (an attachment). ``direction``: "inbound",
        "outbound" or "file" (a USB key's file), for the banned-type verdicts;
        ``deadline`` (time.monotonic()) shortens the time limit, for a whole message."""
        start = time.monotonic()
        label = name or "fichier"
        ftype = true_type(data)
        walk = Walk(self.limits, direction if direction in DIRECTIONS else "inbound",
                    len(data), self._child)
        if deadline is not None:
            walk.deadline = min(walk.deadline, deadline)
        try:
            self._scan(walk, label, name, data, 0, ftype)
        except Stop:
            pass
        except Exception as exc:
            # A bug or a library failing on a file: never a pass. The text of the
            # exception may quote the file, so only its type is logged.
            log.error("scan of one file failed: %s", type(exc).__name__)
            walk.add("SCAN_ERROR", Verdict.ERROR, "erreur pendant l'analyse du fichier",
                     "error while scanning the file", label)
        if self.clamd:
            self._clamav(walk, label, data)
        return self._report(walk, name, len(data), ftype, start)

    def scan_path(self, path: Path, *, direction: str = "file") -> FileReport:
        """Scan one file on disk (a USB key's file); a big file is not read whole."""
        path = Path(path)
        size = path.stat().st_size
        if size <= self.whole_file:
            return self.scan_bytes(path.name, path.read_bytes(), direction=direction)
        start = time.monotonic()
        with path.open("rb") as f:
            head = f.read(1024 * 1024)
        ftype = true_type(head)
        walk = Walk(self.limits, direction, size, self._child)
        label = path.name
        try:
            check_name(walk, path.name, ftype, label, self.banned)
            self._banned(walk, label, path.name, ftype)
            self._yara_file(walk, label, path)
            if ftype.kind == "zip":
                with path.open("rb") as f:
                    archives.scan_zip_file(walk, label, f, size, 0)
            elif ftype.kind in _READ_WHOLE:
                walk.limit(label, "fichier trop gros pour être lu en entier (seuls son type, "
                           "son nom et les règles YARA ont été vérifiés)",
                           "file too big to be read whole (only its type, its name and the "
                           "YARA rules were checked)")
            # else a video, a photo, a program…: nothing more is read from those than
            # their type, their name and YARA, which were all checked on the whole file
        except Stop:
            pass
        except Exception as exc:
            log.error("scan of one file failed: %s", type(exc).__name__)
            walk.add("SCAN_ERROR", Verdict.ERROR, "erreur pendant l'analyse du fichier",
                     "error while scanning the file", label)
        return self._report(walk, path.name, size, ftype, start)

    # --- internals -----------------------------------------------------
    def _report(self, walk: Walk, name: str, size: int, ftype: FileType,
                start: float) -> FileReport:
        return FileReport(name=name, size=size, mime=ftype.mime, description=ftype.description,
                          verdict=worst(f.verdict for f in walk.findings),
                          findings=list(walk.findings), children=walk.files,
                          elapsed=time.monotonic() - start)

    def _child(self, walk: Walk, path: str, name: str, data: bytes, depth: int) -> None:
        self._scan(walk, path, name, data, depth, true_type(data))

    def _scan(self, walk: Walk, path: str, name: str, data: bytes, depth: int,
              ftype: FileType) -> None:
        kind = ftype.kind
        if kind == "zip":
            kind = office.zip_kind(archives.zip_names(data) or [])
            ftype = FileType(ftype.mime, ftype.description, kind)
        elif kind in ("text", "data") and extension(name) in _BY_NAME:
            # libmagic knows neither every Internet shortcut nor a message whose first
            # headers are not the usual ones: the name says how it will be opened
            kind = _BY_NAME[extension(name)]
            ftype = FileType(ftype.mime, ftype.description, kind)
        elif kind == "text":
            kind = _text_kind(name, data)
            ftype = FileType(ftype.mime, ftype.description, kind)
        check_name(walk, name, ftype, path, self.banned)
        self._banned(walk, path, name, ftype)
        if kind not in _CONTAINERS:  # their members are matched once expanded
            match(walk, self._rules, path, data)
        if kind == "zip":
            archives.scan_zip(walk, path, data, depth)
        elif kind == "tar":
            archives.scan_tar(walk, path, data, depth)
        elif kind in ("gzip", "bzip2", "xz"):
            archives.scan_stream(walk, path, name, data, depth, kind)
        elif kind == "7z":
            archives.scan_7z(walk, path, data, depth)
        elif kind in ("ooxml", "odf"):
            office.scan_package(walk, path, data, depth, kind)
        elif kind in ("ole", "msi"):
            office.scan_ole(walk, path, data, depth)
        elif kind == "encrypted_office":
            archives.encrypted(walk, path, "document Office", "Office document")
        elif kind == "rtf":
            office.scan_rtf(walk, path, data, depth)
        elif kind == "pdf":
            pdf.scan_pdf(walk, path, data, depth)
        elif kind in ("html", "svg"):
            htmlscan.scan_html(walk, path, data, kind)
        elif kind == "csv":
            office.scan_csv(walk, path, data)
        elif kind == "xml":
            office.scan_xml(walk, path, data)
        elif kind == "url_shortcut":
            shortcuts.scan_url(walk, path, data)
        elif kind == "email":
            mailfile.scan_email(walk, path, data, depth)

    def _banned(self, walk: Walk, path: str, name: str, ftype: FileType) -> None:
        banned = self.banned.match(ftype.kind, name)
        if banned is None:
            return
        verdict = banned.verdicts.get(walk.direction, banned.verdicts["inbound"])
        if verdict is Verdict.CLEAN:
            return
        if verdict is Verdict.NOT_INSPECTED:
            if ftype.kind not in banned.kinds:
                return  # named like a RAR, but a format that was read
            walk.add("SCAN_NOT_INSPECTED", verdict, f"{banned.fr} : contenu non inspecté",
                     f"{banned.en}: contents not inspected", path)
            return
        walk.add("SCAN_BANNED_TYPE", verdict, f"type de fichier interdit : {banned.fr}",
                 f"banned file type: {banned.en}", path)

    def _yara_file(self, walk: Walk, path: str, file: Path) -> None:
        from gateway.scan.yarascan import yara
        try:
            matches = self._rules.rules.match(
                filepath=str(file), timeout=max(1, round(self.limits.yara_timeout)))
        except yara.TimeoutError:
            walk.limit(path, "délai de l'analyse YARA dépassé", "YARA scan timed out")
            return
        for m in matches:
            verdict = (Verdict.SUSPICIOUS if str(m.meta.get("verdict", "")).lower()
                       == "suspicious" else Verdict.MALICIOUS)
            fr = str(m.meta.get("fr") or m.meta.get("description") or m.rule)
            en = str(m.meta.get("en") or m.meta.get("description") or m.rule)
            walk.add("SCAN_YARA", verdict, f"{fr} (règle {m.rule})", f"{en} (rule {m.rule})",
                     path)

    def _clamav(self, walk: Walk, path: str, data: bytes) -> None:
        """ClamAV's opinion. Unreachable, it is a note (a CLEAN finding) and a warning in
        the log: the other engines' verdicts stand, the file is not "not inspected"."""
        with self._clamd_lock:
            skip = time.monotonic() < self._clamd_down_until
        if skip:
            self._clamd_note(walk, path)
            return
        try:
            signature = clamav.scan(self.clamd, data, self.clamd_timeout)
        except clamav.ClamdUnavailable as exc:
            with self._clamd_lock:
                first = not self._clamd_down
                self._clamd_down = True
                self._clamd_down_until = time.monotonic() + CLAMD_RETRY
            if first:
                log.warning("ClamAV injoignable à %s (%s) : les fichiers sont analysés sans "
                            "ClamAV, nouvel essai toutes les %g s / ClamAV not reachable at %s "
                            "(%s): files are scanned without ClamAV, retried every %g s",
                            self.clamd, exc, CLAMD_RETRY, self.clamd, exc, CLAMD_RETRY)
            self._clamd_note(walk, path)
            return
        with self._clamd_lock:
            back = self._clamd_down
            self._clamd_down = False
        if back:
            log.info("ClamAV de nouveau joignable à %s / ClamAV reachable again at %s",
                     self.clamd, self.clamd)
        if signature:
            walk.add("SCAN_CLAMAV", Verdict.MALICIOUS, f"ClamAV : {signature}",
                     f"ClamAV: {signature}", path)


    @staticmethod
    def _clamd_note(walk: Walk, path: str) -> None:
        walk.add("SCAN_CLAMAV_UNAVAILABLE", Verdict.CLEAN,
                 "note : ClamAV injoignable, fichier vérifié sans ClamAV",
                 "note: ClamAV unreachable, file checked without ClamAV", path)


_CONTAINERS = frozenset({"zip", "tar", "gzip", "bzip2", "xz", "7z"})
# Kinds whose contents ``_scan`` reads beyond the type and YARA: too big to be read
# whole, they are "not inspected" (a zip is read in place instead).
_READ_WHOLE = frozenset({"tar", "gzip", "bzip2", "xz", "7z", "ooxml", "odf", "ole", "msi",
                         "encrypted_office", "rtf", "pdf", "text", "html", "svg", "csv", "xml",
                         "email", "url_shortcut"})
_BY_NAME = {"url": "url_shortcut", "eml": "email"}
_CSV_EXT = frozenset({"csv", "tsv", "tab", "slk", "prn", "dif"})


def _text_kind(name: str, data: bytes) -> str:
    """Text files by what they will be opened as: html/svg/xml/csv, else text."""
    ext = extension(name)
    head = data[:4096].lstrip().lower()
    if ext in ("html", "htm", "xhtml", "shtml", "mht", "mhtml") or head.startswith(
            (b"<!doctype html", b"<html")):
        return "html"
    if ext == "svg" or b"<svg" in head:
        return "svg"
    if ext == "xml" or head.startswith(b"<?xml"):
        return "xml"
    if ext in _CSV_EXT:
        return "csv"
    return "text"
