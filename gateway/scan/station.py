"""The station blanche: walk folders (a USB key, a download folder), scan every file with
the engine, move what is flagged aside with a manifest, and describe the run.

The walk never follows a symbolic link, does not cross into another file system unless
asked, and turns unreadable or vanished files into error lines: it never stops on them.
File names are attacker-controlled: ``safe_text`` makes them printable and harmless.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway import __version__
from gateway.quarantine.folder import durable_write_file, ensure_private_dir
from gateway.scan.engine import FileReport, Verdict

REPORT_FORMAT = "vigie-scan-report"
MANIFEST_FORMAT = "vigie-quarantine-manifest"
FORMAT_VERSION = 1
QUARANTINE_SUFFIX = ".vigie-quarantaine"
FLAGGED = (Verdict.SUSPICIOUS, Verdict.MALICIOUS)
# The station's words, matching its summary table («dangereux», not «malveillant»).
VERDICT_FR = {"CLEAN": "sain", "NOT_INSPECTED": "non inspecté", "ERROR": "erreur d'analyse",
              "SUSPICIOUS": "suspect", "MALICIOUS": "dangereux"}

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: the shell's 128 + SIGINT


class FileScanner(Protocol):
    """What the station needs of the engine (``gateway.scan.engine.Scanner``)."""

    def scan_path(self, path: Path) -> FileReport: ...


# --- attacker-controlled names ----------------------------------------------

# C0/C1 controls, DEL, and the bidirectional overrides that disguise an extension
# ("facture\u202efdp.exe" shows as "facture exe.pdf").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\u2028\u2029\ufeff]")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(name: str | bytes) -> str:
    """A file name as printable text: bytes that are not UTF-8 as ``\\xNN``, control and
    direction-changing characters as ``\\xNN`` / ``\\uNNNN``. For terminals, logs,
    JSON and HTML alike (HTML still needs escaping)."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    text = raw.decode("utf-8", "backslashreplace")
    return _UNSAFE.sub(_escape_char, text)


def _raw_b64(name: str) -> str | None:
    """base64 of the name's bytes when ``safe_text`` had to change it (so a manifest
    can give back the exact original name), else None."""
    raw = os.fsencode(name)
    if safe_text(name) == raw.decode("utf-8", "replace"):
        return None
    return base64.b64encode(raw).decode("ascii")


# --- the walk ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Entry:
    """A regular file found by the walk."""

    path: str       # as the OS knows it (may hold surrogate escapes)
    rel: str        # relative to the root it was found under, for reports and quarantine
    root: str       # that root, as given
    size: int
    dev: int
    ino: int


# kind: what went wrong or why it was left out. ``error`` kinds count as errors
# (exit code 2 when nothing was found); ``note`` kinds are only said (nothing was left
# out); the others are skipped on purpose.
ERROR_KINDS = frozenset({"unreadable", "vanished", "changed", "io", "scan_error",
                         "bad_root"})
NOTE_KINDS = frozenset({"root_link"})

_PROBLEM_TEXT: dict[str, tuple[str, str]] = {
    "unreadable": ("illisible (droits insuffisants)", "unreadable (permission denied)"),
    "vanished": ("disparu pendant l'analyse", "vanished during the scan"),
    "changed": ("remplacé pendant l'analyse (non analysé)",
                "replaced during the scan (not scanned)"),
    "io": ("erreur de lecture", "read error"),
    "scan_error": ("erreur du moteur d'analyse", "scan engine error"),
    "bad_root": ("chemin à analyser introuvable ou illisible",
                 "path to scan missing or unreadable"),
    "link_outside": ("lien symbolique vers l'extérieur du dossier analysé : non suivi",
                     "symbolic link pointing outside the scanned tree: not followed"),
    "link_inside": ("lien symbolique vers l'intérieur du dossier analysé : ignoré, sa cible "
                    "est analysée à son emplacement",
                    "symbolic link pointing inside the scanned tree: skipped, its target is "
                    "scanned where it lies"),
    "link_broken": ("lien symbolique cassé : ignoré", "broken symbolic link: skipped"),
    "other_fs": ("autre système de fichiers (point de montage) : non parcouru "
                 "(--cross-filesystems pour l'inclure)",
                 "another file system (mount point): not walked (--cross-filesystems to "
                 "include it)"),
    "special": ("fichier spécial (tube, socket, périphérique) : ignoré",
                "special file (pipe, socket, device): skipped"),
    "root_link": ("lien symbolique donné à analyser : suivi, sa cible est analysée",
                  "symbolic link given to scan: followed, its target is scanned"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """A path the run could not scan, or left out on purpose; ``detail`` is the OS's
    own words (``strerror``) or a link's target, shown after the fixed text."""

    path: str
    kind: str
    detail: str = ""

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    @property
    def is_note(self) -> bool:
        return self.kind in NOTE_KINDS

    @property
    def fr(self) -> str:
        return _PROBLEM_TEXT[self.kind][0]

    @property
    def en(self) -> str:
        return _PROBLEM_TEXT[self.kind][1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": safe_text(self.path), "kind": self.kind,
                               "error": self.is_error, "fr": self.fr, "en": self.en}
        if self.is_note:
            out["note"] = True
        if self.detail:
            out["detail"] = safe_text(self.detail)
        return out


def _problem_from_os(path: str, exc: OSError) -> Problem:
    import errno
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Problem(path, "unreadable", exc.strerror or "")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return Problem(path, "vanished", exc.strerror or "")
    return Problem(path, "io", exc.strerror or str(exc))


def _inside(path: str, root_real: str) -> bool:
    return path == root_real or path.startswith(root_real.rstrip("/") + "/")


@dataclass
class WalkHooks:
    """Test seams: ``on_entry(path)`` runs before each directory entry is looked at;
    ``before_scan(path)`` before each file is scanned."""

    on_entry: Callable[[str], None] | None = None
    before_scan: Callable[[str], None] | None = None


def walk(root: str, *, cross_filesystems: bool = False,
         hooks: WalkHooks | None = None) -> Iterator[Entry | Problem]:
    """Every regular file under ``root`` (or ``root`` itself when it is a file), and a
    ``Problem`` for each path left out. A root given as a symbolic link is followed
    (the user named it; a ``root_link`` note says so), file or folder alike; no link
    below it is. A file root followed so is scanned, and moved, at its real path: the
    link itself is not what is dangerous."""
    on_entry = hooks.on_entry if hooks else None
    try:
        st = os.stat(root)
        root_real = os.path.realpath(root)
    except OSError as exc:
        yield Problem(root, "bad_root", exc.strerror or str(exc))
        return
    if os.path.islink(root):
        yield Problem(root, "root_link", root_real)
    if stat.S_ISREG(st.st_mode):
        path = root_real if os.path.islink(root) else root
        yield Entry(path, os.path.basename(root_real) or root, root, st.st_size, st.st_dev,
                    st.st_ino)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield Problem(root, "special")
        return
    root_dev = st.st_dev
    stack: list[tuple[str, str]] = [(root, "")]  # (path, relative path)
    while stack:
        dir_path, dir_rel = stack.pop()
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problem = _problem_from_os(dir_path, exc)
            yield Problem(dir_path, "bad_root", problem.detail) if not dir_rel else problem
            continue
        subdirs: list[tuple[str, str]] = []
        for e in entries:
            rel = f"{dir_rel}/{e.name}" if dir_rel else e.name
            try:
                if on_entry is not None:
                    on_entry(e.path)
                est = e.stat(follow_symlinks=False)
            except OSError as exc:
                yield _problem_from_os(e.path, exc)
                continue
            mode = est.st_mode
            if stat.S_ISLNK(mode):
                yield _link_problem(e.path, root_real)
            elif stat.S_ISDIR(mode):
                if est.st_dev != root_dev and not cross_filesystems:
                    yield Problem(e.path, "other_fs")
                else:
                    subdirs.append((e.path, rel))
            elif stat.S_ISREG(mode):
                if est.st_dev != root_dev and not cross_filesystems:
                    yield Problem(e.path, "other_fs")  # a file bind-mounted in the tree
                else:
                    yield Entry(e.path, rel, root, est.st_size, est.st_dev, est.st_ino)
            else:
                yield Problem(e.path, "special")
        stack.extend(reversed(subdirs))  # depth first, in name order


def _link_problem(path: str, root_real: str) -> Problem:
    try:
        target = os.readlink(path)
    except OSError as exc:
        return _problem_from_os(path, exc)
    resolved = os.path.realpath(path)
    if not os.path.lexists(resolved) or not os.path.exists(path):
        return Problem(path, "link_broken", target)
    kind = "link_inside" if _inside(resolved, root_real) else "link_outside"
    return Problem(path, kind, target)


# --- results ----------------------------------------------------------------

@dataclass
class QuarantineRecord:
    """Where a flagged file went."""

    stored: str                 # relative to the quarantine folder
    sha256: str
    removed: bool               # False: copied, but the original could not be removed
    detail: str = ""
    why_kept: str = ""          # the OS's words when the original could not be removed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stored": safe_text(self.stored), "sha256": self.sha256,
                               "original_removed": self.removed}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class FileResult:
    entry: Entry
    report: FileReport
    quarantine: QuarantineRecord | None = None
    quarantine_error: str = ""

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    def to_json(self) -> dict[str, Any]:
        r = self.report
        out: dict[str, Any] = {
            "path": safe_text(self.entry.path), "relative": safe_text(self.entry.rel),
            "size": self.entry.size, "mime": r.mime, "description": r.description,
            "verdict": r.verdict.value, "verdict_fr": VERDICT_FR[r.verdict.value],
            "findings": [{**f.to_json(), "path": safe_text(f.path)} for f in r.findings],
            "children": r.children, "elapsed": round(r.elapsed, 4),
        }
        raw = _raw_b64(self.entry.path)
        if raw:
            out["path_b64"] = raw
        if self.quarantine:
            out["quarantine"] = self.quarantine.to_json()
        if self.quarantine_error:
            out["quarantine_error"] = self.quarantine_error
        return out


COUNT_KEYS = ("files", "bytes", "clean", "suspicious", "malicious", "not_inspected",
              "errors", "skipped", "quarantined")


@dataclass
class ScanRun:
    """One run of the station over its roots: what was scanned, found, left out."""

    roots: list[str]
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    results: list[FileResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    interrupted: bool = False
    quarantine_dir: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, (self.finished or time.time()) - self.started)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error and not p.is_note]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.is_note]

    @property
    def flagged(self) -> list[FileResult]:
        return [r for r in self.results if r.verdict in FLAGGED]

    @property
    def left_in_place(self) -> list[FileResult]:
        """Flagged files copied into the quarantine whose original is still where it
        was (a read-only key): "mis de côté" must not let anyone think it is gone."""
        return [r for r in self.results if r.quarantine and not r.quarantine.removed]

    def counts(self) -> dict[str, int]:
        by = {v: 0 for v in Verdict}
        for r in self.results:
            by[r.verdict] += 1
        return {
            "files": len(self.results),
            "bytes": sum(r.entry.size for r in self.results),
            "clean": by[Verdict.CLEAN],
            "suspicious": by[Verdict.SUSPICIOUS],
            "malicious": by[Verdict.MALICIOUS],
            "not_inspected": by[Verdict.NOT_INSPECTED],
            # files the engine could not scan, and paths the walk could not read
            "errors": by[Verdict.ERROR] + len(self.errors),
            "skipped": len(self.skipped),
            "quarantined": sum(1 for r in self.results if r.quarantine),
        }

    def exit_code(self) -> int:
        """130 when the run was interrupted (what the process exits with, and what its
        JSON report says), else 1 when something was found (suspicious, malicious, or a
        file that could not be inspected: nobody can say it is clean), else 2 on an
        error, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        c = self.counts()
        if c["suspicious"] or c["malicious"] or c["not_inspected"]:
            return EXIT_FINDINGS
        if c["errors"]:
            return EXIT_ERROR
        return EXIT_CLEAN

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """The machine report: self-describing (format, version), every file with its
        verdict and findings, every path left out and why."""
        out: dict[str, Any] = {
            "format": REPORT_FORMAT, "version": FORMAT_VERSION,
            "generator": f"vigie {__version__}", "host": socket.gethostname(),
            "roots": [safe_text(r) for r in self.roots],
            "started": _iso(self.started), "finished": _iso(self.finished or time.time()),
            "duration": round(self.duration, 3), "interrupted": self.interrupted,
            "exit_code": self.exit_code(), "counts": self.counts(),
        }
        out.update(extra)
        out["quarantine_dir"] = safe_text(self.quarantine_dir) if self.quarantine_dir else None
        out["files"] = [r.to_json() for r in self.results]
        out["problems"] = [p.to_json() for p in self.problems]
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- quarantine -------------------------------------------------------------

class QuarantineFolder:
    """Flagged files moved aside into one private folder, never overwriting, with a
    ``manifest.json`` that lists each one (original path, sha256, size, verdict,
    findings, time). A move across file systems is copy + fsync + remove."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def prepare(self) -> None:
        ensure_private_dir(self.root)

    def _target(self, entry: Entry) -> Path:
        """``DIR/<root folder's name>/<path below it>.vigie-quarantaine`` (a file given
        as a root: ``DIR/<its name>.vigie-quarantaine``). ".." cannot appear (names come
        from scandir); the suffix and the mode take away the executable look and bit."""
        if entry.path in (entry.root, os.path.realpath(entry.root)):  # a file root
            return self.root / (os.path.basename(entry.rel) + QUARANTINE_SUFFIX)
        base = os.path.basename(os.path.realpath(entry.root).rstrip("/")) or "racine"
        return self.root / base / (entry.rel + QUARANTINE_SUFFIX)

    def _create_exclusive(self, target: Path) -> tuple[Path, int]:
        """Open a new file at ``target`` (or ``target.1``, ``.2``…): never overwrite."""
        for n in range(10_000):
            candidate = target if n == 0 else target.with_name(f"{target.name}.{n}")
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            return candidate, fd
        raise FileExistsError(f"too many files named {target}")

    def copy_in(self, entry: Entry) -> QuarantineRecord:
        """Copy one file in (fsynced), the original still in place; raises OSError when
        it could not be copied (nothing is left behind then)."""
        target = self._target(entry)
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in [parent, *parent.parents]:
            if d == self.root or self.root not in d.parents:
                break
            os.chmod(d, 0o700)
        src_fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(src_fd)
            if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
                raise FileNotFoundError(0, "replaced since it was scanned", entry.path)
            stored, dst_fd = self._create_exclusive(target)
            digest = hashlib.sha256()
            try:
                with os.fdopen(dst_fd, "wb") as dst:
                    while chunk := os.read(src_fd, 1024 * 1024):
                        digest.update(chunk)
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
            except BaseException:
                stored.unlink(missing_ok=True)
                raise
        finally:
            os.close(src_fd)
        _fsync_dir(stored.parent)
        return QuarantineRecord(str(stored.relative_to(self.root)), digest.hexdigest(), False)

    @staticmethod
    def remove_original(entry: Entry, record: QuarantineRecord) -> None:
        """Remove the original once its copy is recorded; a refusal (a read-only key)
        is kept in the record, the copy stays."""
        try:
            os.unlink(entry.path)
            _fsync_dir(Path(entry.path).parent)
            record.removed = True
        except OSError as exc:
            record.why_kept = exc.strerror or str(exc)
            record.detail = (
                f"copié, mais l'original n'a pas pu être supprimé ({exc.strerror}) / copied, "
                f"but the original could not be removed ({exc.strerror})")

    def record(self, results: Sequence[FileResult], when: float) -> None:
        """Add (or update, by stored name) the quarantined files in ``manifest.json``
        (atomic replace, under a lock shared with other runs writing the same folder)."""
        moved = [r for r in results if r.quarantine]
        if not moved:
            return
        with self._lock, open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest: dict[str, Any] = {"format": MANIFEST_FORMAT,
                                        "version": FORMAT_VERSION, "entries": []}
            with contextlib.suppress(FileNotFoundError):
                loaded = json.loads(self.manifest.read_text(encoding="utf-8"))
                if isinstance(loaded, dict) and isinstance(loaded.get("entries"), list):
                    manifest = loaded
            for r in moved:
                q = r.quarantine
                assert q is not None
                item: dict[str, Any] = {
                    "original_path": safe_text(os.path.abspath(r.entry.path)),
                    "stored": safe_text(q.stored), "sha256": q.sha256,
                    "size": r.entry.size, "verdict": r.verdict.value,
                    "findings": [{**f.to_json(), "path": safe_text(f.path)}
                                 for f in r.report.findings],
                    "time": _iso(when), "original_removed": q.removed,
                }
                raw = _raw_b64(os.path.abspath(r.entry.path))
                if raw:
                    item["original_path_b64"] = raw
                if q.detail:
                    item["detail"] = q.detail
                same = [i for i, e in enumerate(manifest["entries"])
                        if isinstance(e, dict) and e.get("stored") == item["stored"]]
                if same:
                    manifest["entries"][same[0]] = item
                else:
                    manifest["entries"].append(item)
            data = json.dumps(manifest, ensure_ascii=False, indent=2).encode() + b"\n"
            durable_write_file(self.manifest, data)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems (vfat on a key) refuse it
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- the run ----------------------------------------------------------------

class Progress(Protocol):
    """Told about the walk and each scanned file (the CLI's rich progress bar)."""

    def found(self, files: int, size: int) -> None: ...

    def done(self, entry: Entry) -> None: ...


def _scan_one(scanner: FileScanner, entry: Entry,
              before_scan: Callable[[str], None] | None) -> FileReport | Problem:
    """Scan one file off the main thread; OS errors become a Problem, never a raise."""
    try:
        if before_scan is not None:
            before_scan(entry.path)
        st = os.stat(entry.path, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            return Problem(entry.path, "changed")  # e.g. swapped for a link since the walk
        # The engine opens the path by name (its extension checks need the name); the
        # check above leaves only a swap within this instant, on a tree being changed.
        return scanner.scan_path(Path(entry.path))
    except OSError as exc:
        return _problem_from_os(entry.path, exc)
    except Exception as exc:  # an engine bug must not stop the run: one error line
        return Problem(entry.path, "scan_error", type(exc).__name__)


def run_scan(scanner: FileScanner, roots: Iterable[str], *, jobs: int = 2,
             quarantine: QuarantineFolder | None = None, cross_filesystems: bool = False,
             progress: Progress | None = None, hooks: WalkHooks | None = None,
             stop: threading.Event | None = None) -> ScanRun:
    """Walk every root first (so the progress bar knows the total), then scan the files
    in a pool of ``jobs`` threads (the engine releases the GIL in libmagic and YARA),
    then move flagged files into ``quarantine``. ``stop`` set (or Ctrl-C) ends the run
    early with ``interrupted``."""
    roots = list(roots)
    run = ScanRun(roots=roots)
    entries: list[Entry] = []
    seen: set[tuple[int, int]] = set()
    for root in roots:
        for item in walk(root, cross_filesystems=cross_filesystems, hooks=hooks):
            if isinstance(item, Problem):
                run.problems.append(item)
            elif (item.dev, item.ino) not in seen:  # the same file named twice (hard links)
                seen.add((item.dev, item.ino))
                entries.append(item)
    if progress is not None:
        progress.found(len(entries), sum(e.size for e in entries))
    before_scan = hooks.before_scan if hooks else None
    pending: dict[Future[FileReport | Problem], Entry] = {}
    todo = iter(entries)
    window = max(1, jobs) * 4
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="vigie-scan")
    try:
        while True:
            while len(pending) < window and not (stop and stop.is_set()):
                entry = next(todo, None)
                if entry is None:
                    break
                pending[pool.submit(_scan_one, scanner, entry, before_scan)] = entry
            if not pending:
                break
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                entry = pending.pop(fut)
                outcome = fut.result()
                if isinstance(outcome, Problem):
                    run.problems.append(outcome)
                else:
                    run.results.append(FileResult(entry, outcome))
                if progress is not None:
                    progress.done(entry)
            if stop and stop.is_set() and not done:
                break
    except KeyboardInterrupt:  # Ctrl-C: stop, and still report what was done
        run.interrupted = True
    finally:
        if stop and stop.is_set():
            run.interrupted = True
        pool.shutdown(wait=True, cancel_futures=True)
        run.results.sort(key=lambda r: (r.entry.root, r.entry.rel))
        if quarantine is not None and not run.interrupted:
            _quarantine(run, quarantine)
        run.finished = time.time()
    return run


def _quarantine(run: ScanRun, folder: QuarantineFolder) -> None:
    """Copy every flagged file in, record the copies in the manifest, and only then
    remove the originals (and record that): a failure at any step leaves each file
    either in place or in the quarantine with its record, never neither."""
    flagged = run.flagged
    run.quarantine_dir = str(folder.root)
    if not flagged:
        return
    try:
        folder.prepare()
    except OSError as exc:
        for r in flagged:
            r.quarantine_error = (f"non déplacé : dossier de quarantaine inutilisable "
                                  f"({exc.strerror or exc}) / not moved: unusable quarantine "
                                  f"folder")
        return
    for r in flagged:
        try:
            r.quarantine = folder.copy_in(r.entry)
        except OSError as exc:
            r.quarantine_error = (f"non déplacé : {exc.strerror or exc} / not moved: "
                                  f"{exc.strerror or exc}")
    when = time.time()
    try:
        folder.record(run.results, when)
    except OSError as exc:
        for r in flagged:
            if r.quarantine is not None:
                with contextlib.suppress(OSError):
                    (folder.root / r.quarantine.stored).unlink()
                r.quarantine = None
                r.quarantine_error = (f"non déplacé : manifest.json non écrit "
                                      f"({exc.strerror or exc}), fichier laissé en place / not "
                                      f"moved: manifest.json not written, file left in place")
        return
    for r in flagged:
        if r.quarantine is not None:
            folder.remove_original(r.entry, r.quarantine)
    with contextlib.suppress(OSError):  # the copies are recorded; this adds "removed"
        folder.record(run.results, when)
