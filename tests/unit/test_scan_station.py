"""The station blanche's walk, run, quarantine and reports, over real trees in tmp_path.

A small scripted scanner stands in for the engine where a test needs a given verdict
(a crash, a file that cannot be inspected); the CLI tests use the real engine.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from gateway.scan.engine import FileFinding, FileReport, Verdict
from gateway.scan.station import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    QUARANTINE_SUFFIX,
    Entry,
    Problem,
    QuarantineFolder,
    WalkHooks,
    run_scan,
    safe_text,
    walk,
)
from gateway.scan.station_report import render_html
from gateway.verdict import Reason


class ScriptedScanner:
    """Verdict by file name: 'bad*' malicious, 'odd*' suspicious, 'locked*' not
    inspected, 'crash*' raises; everything else clean."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def scan_path(self, path: Path) -> FileReport:
        with self._lock:
            self.seen.append(str(path))
            self.threads.add(threading.current_thread().name)
        name = path.name
        data = path.read_bytes()
        if name.startswith("crash"):
            raise RuntimeError("engine bug")
        verdict = (Verdict.MALICIOUS if name.startswith("bad") else
                   Verdict.SUSPICIOUS if name.startswith("odd") else
                   Verdict.NOT_INSPECTED if name.startswith("locked") else Verdict.CLEAN)
        findings = [] if verdict is Verdict.CLEAN else [FileFinding(
            "SCAN_TEST", verdict, Reason("trouvé <b>", "found <b>"), name)]
        return FileReport(name, len(data), "application/octet-stream", "data", verdict,
                          findings)


def make_tree(root: Path) -> Path:
    (root / "tree" / "sub" / "deeper").mkdir(parents=True)
    t = root / "tree"
    (t / "a.txt").write_text("bonjour\n")
    (t / "sub" / "b.txt").write_text("ordonnance\n")
    (t / "sub" / "deeper" / "c.txt").write_text("x" * 1000)
    return t


def files_of(items: list[Entry | Problem]) -> list[str]:
    return [i.rel for i in items if isinstance(i, Entry)]


def problems_of(items: list[Entry | Problem]) -> dict[str, str]:
    return {os.path.basename(i.path): i.kind for i in items if isinstance(i, Problem)}


# --- names ------------------------------------------------------------------

@pytest.mark.parametrize(("name", "shown"), [
    ("facture.pdf", "facture.pdf"),
    ("compte rendu é.pdf", "compte rendu é.pdf"),
    ("a\nb", "a\\x0ab"),
    ("\x1b[31mrouge", "\\x1b[31mrouge"),
    ("facture\u202efdp.exe", "facture\\u202efdp.exe"),
    (os.fsdecode(b"latin1-\xe9.txt"), "latin1-\\xe9.txt"),
])
def test_safe_text_makes_names_printable(name: str, shown: str) -> None:
    assert safe_text(name) == shown


# --- walk -------------------------------------------------------------------

def test_walk_finds_every_file_in_order(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    items = list(walk(str(t)))
    assert files_of(items) == ["a.txt", "sub/b.txt", "sub/deeper/c.txt"]
    assert all(isinstance(i, Entry) for i in items)
    c = [i for i in items if isinstance(i, Entry)][-1]
    assert c.size == 1000 and c.root == str(t)


def test_walk_never_follows_links_and_says_which(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "patients.csv").write_text("nom;nir\n")
    os.symlink(outside, t / "to_outside_dir")
    os.symlink(outside / "patients.csv", t / "to_outside_file")
    os.symlink("/etc/passwd", t / "to_etc")
    os.symlink("sub/b.txt", t / "to_inside")
    os.symlink("..", t / "sub" / "loop")  # a cycle
    os.symlink("nowhere", t / "broken")
    items = list(walk(str(t)))
    assert files_of(items) == ["a.txt", "sub/b.txt", "sub/deeper/c.txt"]
    assert problems_of(items) == {
        "to_outside_dir": "link_outside", "to_outside_file": "link_outside",
        "to_etc": "link_outside", "to_inside": "link_inside", "loop": "link_inside",
        "broken": "link_broken"}
    detail = {os.path.basename(i.path): i.detail for i in items if isinstance(i, Problem)}
    assert detail["to_etc"] == "/etc/passwd"  # the target, as written in the link
    assert not any(i.is_error for i in items if isinstance(i, Problem))


def test_walk_root_given_as_link_is_followed(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    os.symlink(t, tmp_path / "key")
    assert files_of(list(walk(str(tmp_path / "key")))) == [
        "a.txt", "sub/b.txt", "sub/deeper/c.txt"]


def test_root_file_given_as_link_is_followed_like_a_folder(tmp_path: Path) -> None:
    """A link named on the command line is followed, file or folder alike, and a note
    says so; the file is scanned (and would be moved) at its real path, not the link."""
    t = make_tree(tmp_path)
    os.symlink(t / "sub" / "b.txt", tmp_path / "lien.txt")
    os.symlink(t, tmp_path / "key")
    items = list(walk(str(tmp_path / "lien.txt")))
    (note,) = [i for i in items if isinstance(i, Problem)]
    (entry,) = [i for i in items if isinstance(i, Entry)]
    assert (note.kind, note.is_note, note.is_error) == ("root_link", True, False)
    assert note.detail == str(t / "sub" / "b.txt") and "suivi" in note.fr
    assert entry.path == str(t / "sub" / "b.txt") and entry.rel == "b.txt"
    run = run_scan(ScriptedScanner(), [str(tmp_path / "lien.txt"), str(tmp_path / "key")])
    assert run.counts()["files"] == 3 and run.counts()["errors"] == 0  # not "changed"
    assert run.counts()["skipped"] == 0 and len(run.notes) == 2
    assert run.exit_code() == EXIT_CLEAN
    problems = run.to_json()["problems"]
    assert [p["kind"] for p in problems] == ["root_link", "root_link"]
    assert all(p["note"] and not p["error"] for p in problems)
    page = render_html(run.to_json())
    assert "<h2>Remarques" in page and "<h2>Ignorés" not in page


def test_root_link_to_a_flagged_file_quarantines_the_target(tmp_path: Path) -> None:
    t = tmp_path / "tree"
    t.mkdir()
    (t / "bad.exe").write_bytes(b"MZ")
    os.symlink(t / "bad.exe", tmp_path / "lien")
    run = run_scan(ScriptedScanner(), [str(tmp_path / "lien")],
                   quarantine=QuarantineFolder(tmp_path / "q"))
    (r,) = run.flagged
    assert r.quarantine is not None and r.quarantine.removed
    assert not (t / "bad.exe").exists()  # the file itself went, not only the link
    assert (tmp_path / "q" / ("bad.exe" + QUARANTINE_SUFFIX)).read_bytes() == b"MZ"


def test_walk_single_file_root_and_missing_root(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    assert files_of(list(walk(str(t / "a.txt")))) == ["a.txt"]
    items = list(walk(str(tmp_path / "absent")))
    assert len(items) == 1 and isinstance(items[0], Problem)
    assert items[0].kind == "bad_root" and items[0].is_error


def test_walk_skips_special_files(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    os.mkfifo(t / "pipe")  # opening it would block the walk forever
    assert problems_of(list(walk(str(t)))) == {"pipe": "special"}


def test_walk_survives_files_that_vanish(tmp_path: Path) -> None:
    t = make_tree(tmp_path)

    def vanish(path: str) -> None:
        if path.endswith("b.txt"):
            os.unlink(path)
        if path.endswith("deeper"):
            (Path(path) / "c.txt").unlink()
            os.rmdir(path)

    items = list(walk(str(t), hooks=WalkHooks(on_entry=vanish)))
    assert files_of(items) == ["a.txt"]
    assert problems_of(items) == {"b.txt": "vanished", "deeper": "vanished"}
    assert all(i.is_error for i in items if isinstance(i, Problem))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: the CLI test drops "
                    "privileges instead (test_scan_cli.py)")
def test_walk_unreadable_folder_is_an_error_line(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    (t / "sub").chmod(0)
    try:
        items = list(walk(str(t)))
    finally:
        (t / "sub").chmod(0o755)
    assert files_of(items) == ["a.txt"]
    assert problems_of(items) == {"sub": "unreadable"}


# --- run --------------------------------------------------------------------

def test_run_counts_verdicts_and_exit_codes(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    scanner = ScriptedScanner()
    run = run_scan(scanner, [str(t)], jobs=2)
    assert run.exit_code() == EXIT_CLEAN
    assert run.counts()["files"] == 3 and run.counts()["bytes"] == 8 + 11 + 1000
    assert all(name.startswith("vigie-scan") for name in scanner.threads)  # off main thread

    (t / "odd.js").write_text("x")
    assert run_scan(scanner, [str(t)]).exit_code() == EXIT_FINDINGS
    (t / "odd.js").unlink()
    (t / "locked.zip").write_text("x")
    run = run_scan(scanner, [str(t)])
    assert run.counts()["not_inspected"] == 1 and run.exit_code() == EXIT_FINDINGS
    (t / "locked.zip").unlink()
    (t / "crash.bin").write_text("x")
    run = run_scan(scanner, [str(t)])
    assert run.counts()["errors"] == 1 and run.exit_code() == EXIT_ERROR
    assert [p.kind for p in run.errors] == ["scan_error"]


def test_run_file_vanishing_before_its_scan(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    hooks = WalkHooks(before_scan=lambda p: os.unlink(p) if p.endswith("b.txt") else None)
    run = run_scan(ScriptedScanner(), [str(t)], hooks=hooks)
    assert run.counts()["files"] == 2
    assert [(os.path.basename(p.path), p.kind) for p in run.errors] == [("b.txt", "vanished")]
    assert run.exit_code() == EXIT_ERROR


def test_run_file_swapped_for_a_link_is_not_scanned(tmp_path: Path) -> None:
    t = make_tree(tmp_path)

    def swap(path: str) -> None:
        if path.endswith("b.txt"):
            os.unlink(path)
            os.symlink("/etc/passwd", path)

    scanner = ScriptedScanner()
    run = run_scan(scanner, [str(t)], hooks=WalkHooks(before_scan=swap))
    assert not any(s.endswith("b.txt") for s in scanner.seen)
    assert [p.kind for p in run.errors] == ["changed"]


def test_run_same_file_twice_is_scanned_once(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    os.link(t / "a.txt", t / "hardlink.txt")
    run = run_scan(ScriptedScanner(), [str(t), str(t / "sub")])
    assert run.counts()["files"] == 3


def test_run_stops_when_asked(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    stop = threading.Event()
    stop.set()
    run = run_scan(ScriptedScanner(), [str(t)], stop=stop)
    # the JSON report says what the process exits with (the shell's 130), not 1 or 2
    assert run.interrupted and run.exit_code() == EXIT_INTERRUPTED == 130
    assert run.to_json()["exit_code"] == 130


# --- quarantine -------------------------------------------------------------

def test_quarantine_moves_flagged_files_with_a_manifest(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    (t / "sub" / "bad.exe").write_bytes(b"MZ" + b"\0" * 100)
    (t / "odd.pdf").write_bytes(b"%PDF-1.4 odd")
    (t / "locked.zip").write_bytes(b"PK")
    qdir = tmp_path / "quarantaine"
    run = run_scan(ScriptedScanner(), [str(t)], quarantine=QuarantineFolder(qdir))
    assert run.counts()["quarantined"] == 2
    assert not (t / "sub" / "bad.exe").exists() and not (t / "odd.pdf").exists()
    assert (t / "locked.zip").exists()  # not inspected: reported, left in place
    moved = qdir / "tree" / "sub" / ("bad.exe" + QUARANTINE_SUFFIX)
    assert moved.read_bytes() == b"MZ" + b"\0" * 100
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600
    assert stat.S_IMODE(qdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(moved.parent.stat().st_mode) == 0o700
    manifest = json.loads((qdir / "manifest.json").read_text())
    assert manifest["format"] == "vigie-quarantine-manifest"
    by_name = {Path(e["original_path"]).name: e for e in manifest["entries"]}
    bad = by_name["bad.exe"]
    assert bad["original_path"] == str(t / "sub" / "bad.exe")
    assert bad["stored"] == "tree/sub/bad.exe" + QUARANTINE_SUFFIX
    assert bad["sha256"] == hashlib.sha256(b"MZ" + b"\0" * 100).hexdigest()
    assert bad["size"] == 102 and bad["verdict"] == "MALICIOUS"
    assert bad["findings"][0]["symbol"] == "SCAN_TEST" and bad["time"].endswith("Z")
    assert by_name["odd.pdf"]["verdict"] == "SUSPICIOUS"


def test_quarantine_never_overwrites_and_appends_to_the_manifest(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    for n in range(3):
        t = tmp_path / f"run{n}" / "tree"
        t.mkdir(parents=True)
        (t / "bad.exe").write_bytes(b"MZ%d" % n)
        run_scan(ScriptedScanner(), [str(t)], quarantine=QuarantineFolder(qdir))
    names = sorted(p.name for p in (qdir / "tree").iterdir())
    assert names == ["bad.exe" + QUARANTINE_SUFFIX, f"bad.exe{QUARANTINE_SUFFIX}.1",
                     f"bad.exe{QUARANTINE_SUFFIX}.2"]
    assert (qdir / "tree" / ("bad.exe" + QUARANTINE_SUFFIX)).read_bytes() == b"MZ0"
    entries = json.loads((qdir / "manifest.json").read_text())["entries"]
    assert [e["stored"].rsplit("/", 1)[1] for e in entries] == names


def test_quarantine_keeps_a_copy_when_the_original_cannot_go(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """A key mounted read-only: the copy is kept and the report says the original stays."""
    t = tmp_path / "tree"
    t.mkdir()
    (t / "bad.exe").write_bytes(b"MZ")
    real_unlink = os.unlink

    def refuse(path: str, *a: object, **k: object) -> None:
        if str(path).endswith("bad.exe"):
            raise OSError(30, "Read-only file system", path)
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", refuse)
    run = run_scan(ScriptedScanner(), [str(t)], quarantine=QuarantineFolder(tmp_path / "q"))
    monkeypatch.undo()
    (r,) = run.flagged
    assert r.quarantine is not None and not r.quarantine.removed
    assert "Read-only" in r.quarantine.detail and (t / "bad.exe").exists()
    assert r.quarantine.why_kept == "Read-only file system" and run.left_in_place == [r]
    page = render_html(run.to_json())
    assert "dont 1 copié(s) seulement : l'original est resté en place" in page
    assert (tmp_path / "q" / "tree" / ("bad.exe" + QUARANTINE_SUFFIX)).exists()


# --- reports ----------------------------------------------------------------

class _Collect(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_json_and_html_reports_escape_hostile_names(tmp_path: Path) -> None:
    t = tmp_path / "tree"
    t.mkdir()
    hostile = "bad<script>alert(1)<img src=x onerror=alert(2)>\x1b[2J\u202eexe.pdf"
    (t / hostile).write_bytes(b"MZ")
    (t / os.fsdecode(b"bad-latin1-\xe9.txt")).write_bytes(b"MZ")
    (t / "clean & <i>fine.txt").write_text("ok")
    run = run_scan(ScriptedScanner(), [str(t)])
    report = run.to_json(kind="scan")
    json.dumps(report).encode("utf-8")  # no lone surrogates, nothing unencodable
    page = render_html(report)
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert "\x1b" not in page
    assert "\u202e" not in page
    assert "&lt;script&gt;" in page and "trouvé &lt;b&gt;" in page
    parser = _Collect()
    parser.feed(page)
    assert not {"script", "img", "i", "b"} & set(parser.tags)
    text = "".join(parser.text)
    assert "bad<script>alert(1)<img src=x onerror=alert(2)>\\x1b[2J\\u202eexe.pdf" in text
    assert "bad-latin1-\\xe9.txt" in text
    (latin1,) = [f for f in report["files"] if "latin1" in f["path"]]
    assert os.fsencode(t) + b"/bad-latin1-\xe9.txt" == base64.b64decode(latin1["path_b64"])
    assert "Fichiers analysés" in text and "dangereux" in text
    assert "http" not in page.replace("http-equiv", "")  # self-contained: no external asset


def test_quarantine_manifest_not_written_leaves_files_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full when the manifest is written: no file leaves the key unrecorded."""
    import gateway.scan.station as station

    t = tmp_path / "tree"
    t.mkdir()
    (t / "bad.exe").write_bytes(b"MZ")

    def full(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(station, "durable_write_file", full)
    qdir = tmp_path / "q"
    run = run_scan(ScriptedScanner(), [str(t)], quarantine=QuarantineFolder(qdir))
    (r,) = run.flagged
    assert r.quarantine is None and "manifest.json non écrit" in r.quarantine_error
    assert (t / "bad.exe").read_bytes() == b"MZ"
    assert not any(p.is_file() and p.name != ".lock" for p in qdir.rglob("*"))
    assert "manifest.json non écrit" in render_html(run.to_json())


def test_quarantine_folder_unusable(tmp_path: Path) -> None:
    t = tmp_path / "tree"
    t.mkdir()
    (t / "bad.exe").write_bytes(b"MZ")
    (tmp_path / "q").write_text("a file where the folder should be")
    run = run_scan(ScriptedScanner(), [str(t)], quarantine=QuarantineFolder(tmp_path / "q"))
    (r,) = run.flagged
    assert r.quarantine is None and "dossier de quarantaine inutilisable" in r.quarantine_error
    assert (t / "bad.exe").exists() and run.exit_code() == EXIT_FINDINGS
