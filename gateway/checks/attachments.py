"""Attachment check: every attached file through the scan engine, off the event loop.

Glue only: walks the message's MIME parts, hands each attachment to
``gateway.scan.engine.Scanner`` in a worker thread, and turns its findings into
one finding per verdict level (ATT_MALICIOUS, ATT_SUSPICIOUS, ATT_NOT_INSPECTED,
ATT_ERROR). The policy decides: by default inbound malicious is held, suspicious
tagged; outbound malicious is refused with the reasons in French and English.
File names are shown with long numbers masked (a NIR can be written there).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence

from gateway.config import Config, ConfigError
from gateway.detect.nir import mask_numbers
from gateway.model import Direction, Message
from gateway.scan.engine import FileFinding, FileReport, ScanConfigError, Scanner, Verdict
from gateway.scan.mailfile import attachments
from gateway.scan.report import printable
from gateway.verdict import Finding, Outcome, Reason

log = logging.getLogger("vigie.scan")

SYMBOLS = {Verdict.MALICIOUS: "ATT_MALICIOUS", Verdict.SUSPICIOUS: "ATT_SUSPICIOUS",
           Verdict.NOT_INSPECTED: "ATT_NOT_INSPECTED", Verdict.ERROR: "ATT_ERROR"}
SHOWN = 5  # reasons listed per level, then "(+N)": a refusal must stay readable


_TEXT_TYPE = re.compile(rb"^\s*text/(?:plain|html)\s*(?:;|$)", re.IGNORECASE)


def _plain_text_only(fields: list[tuple[str, bytes]]) -> bool:
    """A single text/plain or text/html body with no file name and no attachment
    disposition (most mail): nothing to scan, told from the header alone."""
    kinds = [v for n, v in fields if n == "content-type"]
    if len(kinds) > 1 or (kinds and not _TEXT_TYPE.match(kinds[0])):
        return False
    if kinds and re.search(rb"\bname\*?\s*=", kinds[0], re.IGNORECASE):
        return False
    return not any(n == "content-disposition" for n, _ in fields)


class AttachmentCheck:
    name = "attachments"
    description = ("Attachments: true type, banned types, archives and bombs, macros, DDE, "
                   "PDF and HTML active content, YARA (and ClamAV when configured).")

    def __init__(self, scanner: Scanner, *, timeout: float = 15.0) -> None:
        self.scanner = scanner
        self.timeout = timeout

    @classmethod
    def from_config(cls, cfg: Config) -> AttachmentCheck:
        """The check with its scanner; a rule that does not compile (YARA, banned types)
        stops start-up and `vigie config check` with its file and line."""
        try:
            scanner = Scanner.from_config(cfg)
        except ScanConfigError as exc:
            raise ConfigError(exc.fr, exc.en, file=exc.file, line=exc.line) from None
        return cls(scanner, timeout=cfg.scan.timeout)

    def reload(self) -> None:
        """Recompile YARA (SIGHUP); on error the old rules stay and the error is logged."""
        try:
            self.scanner.reload()
        except ScanConfigError as exc:
            log.error("règles YARA NON rechargées, les précédentes restent en service / YARA "
                      "rules NOT reloaded, the previous ones stay in force: %s",
                      str(exc).replace("\n", " / "))

    def idle(self, message: Message) -> bool:
        """One text part and nothing attached, told from the header: nothing to scan
        (the pipeline then does not even schedule the check)."""
        return _plain_text_only(message.header_fields)

    async def run(self, message: Message) -> list[Finding]:
        if self.idle(message):
            return []
        files = list(attachments(message.parsed))
        if not files:
            return []
        direction = message.envelope.direction.value
        # A little more than the engine's own limit: the engine gives up first and says
        # what it could not inspect; this only guards against a stuck library.
        async with asyncio.timeout(self.timeout + 5):
            reports = await asyncio.to_thread(self._scan_all, files, direction)
        return self.findings(reports, message.envelope.direction)

    def _scan_all(self, files: list[tuple[str, bytes]], direction: str) -> list[FileReport]:
        deadline = time.monotonic() + self.timeout
        reports: list[FileReport] = []
        for name, data in files:
            if time.monotonic() >= deadline:  # the message's time is spent: say so
                reports.append(FileReport(name, len(data), "", "", Verdict.NOT_INSPECTED, [
                    FileFinding("SCAN_LIMIT", Verdict.NOT_INSPECTED, Reason(
                        f"non inspecté : délai de {self.timeout:g} s dépassé pour le message",
                        f"not inspected: the message's {self.timeout:g} s time limit was "
                        "reached"), name)]))
                continue
            reports.append(self.scanner.scan_bytes(name, data, direction=direction,
                                                   deadline=deadline))
        return reports

    def findings(self, reports: list[FileReport], direction: Direction) -> list[Finding]:
        by_level: dict[Verdict, list[FileFinding]] = {}
        for report in reports:
            for f in report.findings:
                by_level.setdefault(f.verdict, []).append(f)
        out: list[Finding] = []
        for verdict in (Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.ERROR,
                        Verdict.NOT_INSPECTED):
            found = by_level.get(verdict)
            if not found:
                continue
            # a reason may quote libmagic's description of the file (a shortcut's URL)
            reasons = [Reason(f"« {_shown(f.path)} » : {printable(f.reason.fr)}",
                              f"'{_shown(f.path)}': {printable(f.reason.en)}") for f in found]
            reasons = list(dict.fromkeys(reasons))
            if len(reasons) > SHOWN:
                more = len(reasons) - SHOWN
                reasons = [*reasons[:SHOWN], Reason(f"(+{more} autres)", f"(+{more} more)")]
            if verdict is Verdict.MALICIOUS and direction is Direction.OUTBOUND:
                reasons.append(Reason(
                    "retirez cette pièce jointe ; si vous pensez qu'elle est saine, faites-la "
                    "vérifier par la personne qui s'occupe de l'informatique du cabinet",
                    "remove this attachment; if you believe it is safe, have it checked by "
                    "whoever looks after the practice's computers"))
            outcome = Outcome.ERROR if verdict is Verdict.ERROR else Outcome.HIT
            out.append(Finding(self.name, SYMBOLS[verdict], outcome, tuple(reasons),
                               tuple(sorted({f.symbol for f in found})),
                               {"files": [_summary(r) for r in reports
                                          if any(f.verdict is verdict for f in r.findings)]}))
        return out


def _shown(name: str) -> str:
    """A file name for a reply, a log or the console: long numbers masked (a NIR can be
    written there), direction and control characters written out (U+202E as \\u202e)."""
    return printable(mask_numbers(name))


def _summary(report: FileReport) -> dict[str, object]:
    """One scanned attachment for the record (held mail, console): names masked."""
    return {"name": _shown(report.name), "size": report.size, "mime": report.mime,
            "verdict": report.verdict.value,
            "findings": [{"symbol": f.symbol, "verdict": f.verdict.value,
                          "path": _shown(f.path),
                          "reason": {"fr": mask_numbers(f.reason.fr),
                                     "en": mask_numbers(f.reason.en)}}
                         for f in report.findings]}


def reload_on_sighup(loop: asyncio.AbstractEventLoop, checks: Sequence[object]) -> None:
    """Install the SIGHUP handler: recompile the attachment check's YARA rules off the loop."""
    import signal

    targets = [c for c in checks if isinstance(c, AttachmentCheck)]
    if not targets:
        return
    pending: set[asyncio.Future[None]] = set()

    def reload() -> None:
        log.info("SIGHUP : rechargement des règles YARA / SIGHUP: reloading YARA rules")
        for check in targets:
            future = loop.run_in_executor(None, check.reload)
            pending.add(future)
            future.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
