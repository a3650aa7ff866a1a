"""``vigie scan PATH…`` (the station blanche) and ``vigie usb watch``: parsers, progress
bar, French summary; the work itself is in ``station`` and ``usb``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from gateway import logs
from gateway.config import Config, load
from gateway.scan.engine import ScanConfigError, Scanner
from gateway.scan.station import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    VERDICT_FR,
    Entry,
    FileResult,
    QuarantineFolder,
    ScanRun,
    WalkHooks,
    run_scan,
    safe_text,
)
from gateway.scan.station_report import (
    COUNT_ROWS,
    human_duration,
    human_size,
    json_dumps,
    write_reports,
)

# Where the service's configuration lives (deploy/INSTALL.md). Like every vigie command,
# `vigie scan` reads only --config or VIGIE_CONFIG; it says so when this file exists.
SYSTEM_CONFIG = Path("/etc/vigie/vigie.toml")
LIST_LIMIT = 50  # lines per list in the terminal summary; the reports have them all


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _err(text: str) -> None:
    print(f"vigie: {text}", file=sys.stderr)


def _scanner(cfg: Config) -> Scanner | None:
    """The engine built from the configuration (YARA compiled once); None, said on
    stderr, when the rules do not compile."""
    try:
        return Scanner.from_config(cfg)
    except ScanConfigError as exc:
        _err(f"règles d'analyse inutilisables / unusable scan rules:\n{exc}")
        return None


# --- progress ---------------------------------------------------------------

class BarProgress:
    """rich progress bar on stderr: files done / found, bytes, speed, ETA."""

    def __init__(self, console: Console) -> None:
        # One task drives the bar by bytes (hence the ETA); the file count shows beside.
        self._bar = RichProgress(
            TextColumn("analyse / scanning"), BarColumn(), TextColumn("{task.fields[files]}"),
            DownloadColumn(binary_units=False), TransferSpeedColumn(), TimeRemainingColumn(),
            console=console, transient=True)
        self._task: TaskID | None = None
        self._files_total = self._files_done = 0

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def found(self, files: int, size: int) -> None:
        self._files_total = files
        self._task = self._bar.add_task("scan", total=max(size, 1),
                                        files=f"0/{files} fichiers")

    def done(self, entry: Entry) -> None:
        if self._task is None:
            return
        self._files_done += 1
        self._bar.update(self._task, advance=entry.size,
                         files=f"{self._files_done}/{self._files_total} fichiers")


# --- summary ----------------------------------------------------------------

def _why(r: FileResult) -> str:
    """The findings' reasons, grouped by where they were found: ``dans
    photos.zip/logiciel/setup.exe : …`` for a member of an archive (or a part of a
    document), so that one knows what to look for in it."""
    own = safe_text(os.path.basename(r.entry.path))
    groups: dict[str, list[str]] = {}
    for f in r.report.findings:
        where = safe_text(f.path) if f.path else own
        reasons = groups.setdefault(where, [])
        if f.reason.fr not in reasons:
            reasons.append(f.reason.fr)
    return " ; ".join("; ".join(reasons) if where == own else
                      f"dans {where} : {'; '.join(reasons)}"
                      for where, reasons in groups.items())


def print_summary(run: ScanRun, out: TextIO) -> None:
    """The French summary table, the lists of what needs a look, then one English line."""
    console = Console(file=out, highlight=False, soft_wrap=True)
    counts = run.counts()
    kept = run.left_in_place
    table = Table(title="vigie — analyse / scan", show_header=False, title_justify="left")
    table.add_column("quoi", style="bold")
    table.add_column("combien", justify="right")
    for key, fr, _en in COUNT_ROWS:
        value = human_size(counts[key]) if key == "bytes" else str(counts[key])
        table.add_row(fr, value)
    table.add_row("Durée", human_duration(run.duration))
    if run.quarantine_dir:
        table.add_row("Mis de côté", str(counts["quarantined"]))
        if kept:
            table.add_row(Text("dont originaux restés en place", style="bold red"),
                          Text(str(len(kept)), style="bold red"))
    console.print(table)
    if run.quarantine_dir and counts["quarantined"]:
        console.print(Text(f"Dossier de quarantaine / quarantine folder : "
                           f"{safe_text(run.quarantine_dir)}"))
    if kept:
        console.print(Text(
            f"Attention : {len(kept)} fichier(s) signalé(s) copié(s) dans la quarantaine mais "
            f"NON supprimé(s) de leur emplacement (support en lecture seule ?) : ils y sont "
            f"toujours, ne les ouvrez pas. / Warning: {len(kept)} flagged file(s) copied "
            f"into the quarantine but NOT removed: they are still in place.",
            style="bold red"))

    def lines(title: str, items: list[Text]) -> None:
        if not items:
            return
        console.print(Text(title, style="bold"))
        for t in items[:LIST_LIMIT]:
            console.print(Text("  ") + t)
        if len(items) > LIST_LIMIT:
            console.print(Text(f"  … et {len(items) - LIST_LIMIT} autres / and "
                               f"{len(items) - LIST_LIMIT} more (--json, --html)"))

    flagged: list[Text] = []
    for r in run.results:
        if r.verdict.value in ("SUSPICIOUS", "MALICIOUS", "NOT_INSPECTED", "ERROR"):
            style = "bold red" if r.verdict.value == "MALICIOUS" else "yellow"
            shown = VERDICT_FR[r.verdict.value]
            why = _why(r) or shown
            t = Text(f"{shown.upper()} ", style=style)
            t.append(safe_text(r.entry.path))
            t.append(f" — {why}")
            q = r.quarantine
            if q:
                stored = safe_text(os.path.join(run.quarantine_dir, q.stored))
                if q.removed:
                    t.append(f" → déplacé dans {stored}")
                else:
                    t.append(f" → copié dans {stored}, mais l'original est RESTÉ EN PLACE "
                             f"({q.why_kept})", style="bold red")
            elif r.quarantine_error:
                t.append(f" ({r.quarantine_error})")
            flagged.append(t)
    lines("Fichiers signalés / flagged files :", flagged)
    lines("Erreurs / errors :", [
        Text(f"{safe_text(p.path)} : {p.fr}" + (f" ({safe_text(p.detail)})" if p.detail else ""))
        for p in run.errors])
    lines("Ignorés / skipped :", [
        Text(f"{safe_text(p.path)} : {p.fr}" + (f" → {safe_text(p.detail)}" if p.detail else ""))
        for p in run.skipped])
    lines("Remarques / notes :", [
        Text(f"{safe_text(p.path)} : {p.fr}" + (f" → {safe_text(p.detail)}" if p.detail else ""))
        for p in run.notes])
    if run.interrupted:
        console.print(Text("Analyse interrompue / scan interrupted", style="bold red"))
    moved = ""
    if run.quarantine_dir:
        moved = f", {counts['quarantined']} quarantined"
        if kept:
            moved += f" ({len(kept)} original(s) left in place)"
    console.print(Text(
        f"Scanned {counts['files']} files ({counts['bytes']} bytes) in {run.duration:.1f} s: "
        f"{counts['clean']} clean, {counts['suspicious']} suspicious, {counts['malicious']} "
        f"malicious, {counts['not_inspected']} not inspected, {counts['errors']} errors, "
        f"{counts['skipped']} skipped{moved}."))


# --- vigie scan -------------------------------------------------------------

def cmd_scan(args: argparse.Namespace, hooks: WalkHooks | None = None) -> int:
    if args.jobs < 1:
        _err("--jobs doit valoir au moins 1\n--jobs must be at least 1")
        return EXIT_ERROR
    quarantine = None
    if args.quarantine:
        qdir = Path(args.quarantine).expanduser().absolute()
        # Compared by real paths: a link on either side must not hide the overlap.
        qreal = os.path.realpath(qdir)
        for root in args.paths:  # moving files into the tree being walked would loop
            real = os.path.realpath(root)
            if os.path.isdir(real) and (qreal + "/").startswith(real.rstrip("/") + "/"):
                _err(f"le dossier de quarantaine {qdir} est dans le dossier analysé {root}\n"
                     f"the quarantine folder {qdir} is inside the scanned folder {root}")
                return EXIT_ERROR
        quarantine = QuarantineFolder(qdir)
    if args.html:
        parent = Path(args.html).expanduser().absolute().parent
        if not parent.is_dir():  # a typo must not create folders nor cost a whole scan
            _err(f"rapport HTML : le dossier {parent} n'existe pas\nHTML report: the folder "
                 f"{parent} does not exist")
            return EXIT_ERROR
    if args.config is None and SYSTEM_CONFIG.is_file():
        _err(f"attention : sans --config, {SYSTEM_CONFIG} n'est pas lu (règles YARA, ClamAV "
             f"et limites par défaut) ; ajoutez --config {SYSTEM_CONFIG}\nwarning: without "
             f"--config, {SYSTEM_CONFIG} is not read (default YARA rules, ClamAV and limits)")
    logging.basicConfig(level=logging.WARNING)
    scanner = _scanner(load(args.config))
    if scanner is None:
        return EXIT_ERROR
    show_bar = not args.no_progress and sys.stderr.isatty()
    if show_bar:
        with BarProgress(Console(file=sys.stderr)) as bar:
            run = run_scan(scanner, args.paths, jobs=args.jobs, quarantine=quarantine,
                           cross_filesystems=args.cross_filesystems, progress=bar,
                           hooks=hooks)
    else:
        run = run_scan(scanner, args.paths, jobs=args.jobs, quarantine=quarantine,
                       cross_filesystems=args.cross_filesystems, hooks=hooks)
    report = run.to_json(kind="scan")
    if args.html:
        try:
            write_reports(report, html_path=Path(args.html))
        except OSError as exc:
            _err(f"rapport HTML non écrit : {args.html} : {exc.strerror}\nHTML report not "
                 f"written: {args.html}: {exc.strerror}")
            return EXIT_ERROR
    if args.json:
        sys.stdout.write(json_dumps(report))
        sys.stdout.flush()
        print_summary(run, sys.stderr)
    else:
        print_summary(run, sys.stdout)
    return run.exit_code()


# --- vigie usb watch --------------------------------------------------------

def cmd_usb(args: argparse.Namespace) -> int:
    from gateway.scan.usb import UsbWatcher, media_removable

    cfg = load(args.config)
    logs.setup(cfg)
    scanner = _scanner(cfg)
    if scanner is None:
        return EXIT_ERROR
    reports = Path(args.reports_dir).expanduser() if args.reports_dir else (
        cfg.data_dir / "usb-reports")
    quarantine: Path | None = None
    if not args.no_quarantine:
        quarantine = Path(args.quarantine).expanduser() if args.quarantine else (
            cfg.data_dir / "usb-quarantine")
    prefixes = tuple(args.removable_under or ())
    watcher = UsbWatcher(
        scanner, reports_dir=reports, quarantine_dir=quarantine,
        mountinfo=Path(args.mountinfo),
        is_removable=media_removable(extra_prefixes=prefixes), jobs=args.jobs,
        interval=args.interval)
    usb_log = logging.getLogger("vigie.usb")
    if args.once:
        done = watcher.poll_once()
        if watcher.mount_table_error:  # already said, with the path, in the log
            return EXIT_ERROR
        if not done:
            usb_log.info("aucun support amovible monté / no removable medium mounted")
        codes = [r.exit_code for r in done]
        # 130 (interrupted) first, then 1 (found), then 2 (error), else 0
        for code in (EXIT_INTERRUPTED, EXIT_FINDINGS, EXIT_ERROR):
            if code in codes:
                return code
        return EXIT_CLEAN
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            # Only a flag here (a log call inside a signal handler could re-enter the
            # handler's lock); the watcher logs as soon as its loop sees it.
            watcher.stop_reason = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    watcher.run(stop)
    return 0


# --- parsers ----------------------------------------------------------------

def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``scan`` and ``usb`` to the ``vigie`` command (called from gateway.cli)."""
    s = sub.add_parser(
        "scan", parents=[common],
        help="analyser des fichiers ou dossiers (station blanche) / scan files or folders",
        description="Analyse récursive (les liens symboliques trouvés dans les dossiers ne "
        "sont jamais suivis ; un lien donné en argument l'est, et le rapport le dit). Sans "
        "--config ni VIGIE_CONFIG, la configuration par défaut (pas celle de "
        "/etc/vigie/vigie.toml). Code de sortie : 0 rien trouvé, 1 fichier(s) signalé(s) "
        "(suspect, dangereux ou non inspecté), 2 erreur, 130 interrompu. / Recursive scan "
        "(symbolic links found in folders never followed; a link given as an argument is, "
        "and the report says so). Without --config or VIGIE_CONFIG, the default settings. "
        "Exit code: 0 nothing found, 1 flagged file(s), 2 error, 130 interrupted.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="fichier ou dossier / file or folder")
    s.add_argument("--json", action="store_true",
                   help="rapport JSON sur la sortie standard (le résumé passe sur la sortie "
                   "d'erreur) / JSON report on stdout (summary on stderr)")
    s.add_argument("--html", metavar="FILE", help="rapport HTML autonome / self-contained "
                   "HTML report")
    s.add_argument("--quarantine", metavar="DIR",
                   help="déplacer les fichiers suspects ou dangereux dans DIR (avec "
                   "manifest.json) / move suspicious or malicious files into DIR")
    s.add_argument("--jobs", "-j", type=int, default=default_jobs(), metavar="N",
                   help=f"fichiers analysés en parallèle / files scanned at once "
                   f"(défaut / default {default_jobs()})")
    s.add_argument("--no-progress", action="store_true",
                   help="pas de barre de progression / no progress bar")
    s.add_argument("--cross-filesystems", action="store_true",
                   help="entrer dans les autres systèmes de fichiers montés dans l'arborescence"
                   " / descend into other file systems mounted in the tree")
    s.set_defaults(func=cmd_scan)

    u = sub.add_parser("usb", parents=[common], help="clés USB / USB keys")
    usub = u.add_subparsers(dest="usb_cmd", required=True)
    w = usub.add_parser(
        "watch", parents=[common],
        help="analyser chaque support amovible monté / scan each removable medium mounted",
        description="Surveille la table des montages ; chaque support amovible monté est "
        "analysé, le rapport écrit dans DATA_DIR/usb-reports/. / Watches the mount table; "
        "each removable medium mounted is scanned, the report written to "
        "DATA_DIR/usb-reports/.")
    w.add_argument("--once", action="store_true",
                   help="analyser les supports montés maintenant, puis s'arrêter / scan the "
                   "media mounted now, then exit")
    w.add_argument("--reports-dir", metavar="DIR",
                   help="dossier des rapports / reports folder (défaut DATA_DIR/usb-reports)")
    q = w.add_mutually_exclusive_group()
    q.add_argument("--quarantine", metavar="DIR", help="dossier où mettre de côté les "
                   "fichiers signalés / quarantine folder (défaut DATA_DIR/usb-quarantine)")
    q.add_argument("--no-quarantine", action="store_true",
                   help="ne rien déplacer, seulement signaler / report only, move nothing")
    w.add_argument("--removable-under", metavar="DIR", action="append",
                   help="tout montage sous DIR compte comme amovible (en plus de /media et "
                   "/run/media et des disques amovibles) / any mount under DIR counts as "
                   "removable")
    w.add_argument("--mountinfo", default="/proc/self/mountinfo", help=argparse.SUPPRESS)
    w.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="relire la table des montages toutes les S secondes au plus / "
                   "re-read the mount table at least every S seconds")
    w.add_argument("--jobs", "-j", type=int, default=default_jobs(), metavar="N")
    u.set_defaults(func=cmd_usb)
