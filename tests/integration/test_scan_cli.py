"""``vigie scan`` and ``vigie usb watch --once`` as a user runs them: the real engine,
real files of real formats made at test time, the CLI as a subprocess and through
``gateway.cli.main``."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.scan.station import QUARANTINE_SUFFIX
from tests.samples_builder import make_docx, make_pdf, make_png

VIGIE = [sys.executable, "-m", "gateway"]
ROOT = Path(__file__).resolve().parent.parent.parent

# Made at test time, never stored: the EICAR anti-virus test file.
EICAR = base64.b64decode(
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=")
# A minimal PE: "MZ", e_lfanew at 0x3c pointing at "PE\0\0" and a COFF header.
PE = (b"MZ\x90\x00" + b"\x00" * 56 + (64).to_bytes(4, "little") + b"PE\x00\x00"
      + b"\x4c\x01\x01\x00" + b"\x00" * 12 + b"\xe0\x00\x02\x01" + b"\x00" * 400)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIE, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT)


def practice_files(root: Path) -> None:
    """What a practice's key holds: PDFs, an image, a letter, a CSV, an agenda."""
    (root / "Ordonnances").mkdir(parents=True)
    (root / "Ordonnances" / "ordonnance.pdf").write_bytes(
        make_pdf(["Ordonnance", "10 séances de rééducation"]))
    (root / "photo.png").write_bytes(make_png(16, 16))
    (root / "courrier.docx").write_bytes(make_docx(["Cher confrère,", "Bien à vous."]))
    (root / "rdv.csv").write_text("date;heure\n2026-12-01;09:00\n", encoding="utf-8")
    (root / "agenda.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Séance\r\n"
        "DTSTART:20261201T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", encoding="utf-8")


def zip_with(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Documents/lisez-moi.txt", "à lire\n")
        z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    root = tmp_path / "CLE"
    practice_files(root)
    (root / "eicar.com.txt").write_bytes(EICAR)
    (root / "Ordonnances" / "scan_ordonnance.pdf").write_bytes(PE)  # a program named .pdf
    (root / "photos.zip").write_bytes(zip_with("Documents/photos.exe", PE))
    (root / "facture\u202efdp.exe").write_bytes(b"rien")  # the name hides ".exe"
    outside = tmp_path / "ailleurs"
    outside.mkdir()
    (outside / "patients.csv").write_text("nom;prenom\n")
    os.symlink(outside / "patients.csv", root / "patients.csv")
    os.symlink("/", root / "racine")
    return root


FLAGGED = {"eicar.com.txt", "Ordonnances/scan_ordonnance.pdf", "photos.zip",
           "facture\\u202efdp.exe"}
CLEAN = {"Ordonnances/ordonnance.pdf", "photo.png", "courrier.docx", "rdv.csv",
         "agenda.ics"}


def by_rel(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["relative"]: f for f in report["files"]}


def test_scan_a_key_subprocess_json_html_quarantine(tmp_path: Path, key: Path) -> None:
    html = tmp_path / "rapport.html"
    qdir = tmp_path / "quarantaine"
    p = run("scan", str(key), "--json", "--html", str(html), "--quarantine", str(qdir))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    report = json.loads(p.stdout)
    files = by_rel(report)
    assert set(files) == FLAGGED | CLEAN
    for rel in CLEAN:
        assert files[rel]["verdict"] == "CLEAN", (rel, files[rel])
    for rel in FLAGGED:
        assert files[rel]["verdict"] in ("SUSPICIOUS", "MALICIOUS"), (rel, files[rel])
        assert files[rel]["findings"], rel
        assert files[rel]["quarantine"]["original_removed"] is True
    c = report["counts"]
    assert (c["files"], c["clean"], c["suspicious"] + c["malicious"], c["errors"],
            c["skipped"], c["quarantined"]) == (9, 5, 4, 0, 2, 4)
    kinds = {Path(p["path"]).name: p["kind"] for p in report["problems"]}
    assert kinds == {"patients.csv": "link_outside", "racine": "link_outside"}

    # summary on stderr with --json: French table, then English line
    assert "Fichiers analysés" in p.stderr and "Dangereux" in p.stderr
    assert re.search(r"│ Ignorés +│ +2 │", p.stderr)  # the French table has every count
    assert "Scanned 9 files" in p.stderr
    # which member of the archive is the problem, and where each file went (absolute)
    assert "photos.zip — dans photos.zip/Documents/photos.exe : " in p.stderr
    assert f"→ déplacé dans {qdir}/CLE/eicar.com.txt{QUARANTINE_SUFFIX}" in p.stderr
    # quarantine: moved, non-executable names, manifest
    assert not (key / "eicar.com.txt").exists() and not (key / "photos.zip").exists()
    assert (key / "photo.png").exists()
    stored = qdir / "CLE" / ("eicar.com.txt" + QUARANTINE_SUFFIX)
    assert stored.read_bytes() == EICAR and stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(qdir.stat().st_mode) == 0o700
    manifest = json.loads((qdir / "manifest.json").read_text())
    assert len(manifest["entries"]) == 4
    (e,) = [e for e in manifest["entries"] if e["stored"].startswith("CLE/eicar")]
    assert e["sha256"] == hashlib.sha256(EICAR).hexdigest() and e["size"] == len(EICAR)
    assert e["original_path"] == str(key / "eicar.com.txt") and e["findings"]
    # the HTML page: French, escaped, self-contained
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'lang="fr"' in page
    assert "\u202e" not in page and "facture\\u202efdp.exe" in page
    assert "<script" not in page and "src=" not in page


def test_scan_through_main_clean_tree_and_exit_codes(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    clean = tmp_path / "propre"
    practice_files(clean)
    assert main(["scan", str(clean), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Fichiers analysés" in out and "│                 5 │" not in out
    assert "Scanned 5 files" in out and "0 malicious" in out
    assert "Traceback" not in out

    (clean / "scan\u202efdp.exe").write_bytes(b"x")
    assert main(["scan", str(clean), "--no-progress", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 1 and report["counts"]["malicious"] == 1
    assert report["quarantine_dir"] is None

    assert main(["scan", str(tmp_path / "absent"), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert "chemin à analyser introuvable" in out and "Erreurs" in out

    assert main(["scan", str(clean), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert main(["scan", str(clean), "--quarantine", str(clean / "q")]) == 2
    assert "est dans le dossier analysé" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2


def _drop_file_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from
    the bounding set, so root's vigie obeys file modes like anyone else's."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_files_are_error_lines(tmp_path: Path) -> None:
    """chmod 000: root reads anything, so as root vigie runs without the capability."""
    tree = tmp_path / "cle"
    tree.mkdir()
    (tree / "lisible.txt").write_text("ok\n")
    (tree / "secret.txt").write_text("fermé\n")
    (tree / "dossier").mkdir()
    (tree / "dossier" / "dedans.txt").write_text("x\n")
    (tree / "secret.txt").chmod(0)
    (tree / "dossier").chmod(0)
    try:
        p = subprocess.run(
            [*VIGIE, "scan", str(tree), "--json", "--no-progress"], capture_output=True,
            text=True, timeout=120, check=False, cwd=ROOT,
            preexec_fn=_drop_file_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    finally:
        (tree / "dossier").chmod(0o755)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    report = json.loads(p.stdout)
    assert [f["relative"] for f in report["files"]] == ["lisible.txt"]
    errors = {Path(e["path"]).name: e["kind"] for e in report["problems"] if e["error"]}
    assert errors == {"secret.txt": "unreadable", "dossier": "unreadable"}
    assert "illisible" in p.stderr


def test_read_only_originals_are_said_to_stay(tmp_path: Path) -> None:
    """A read-only key (here a 0555 folder, vigie without CAP_DAC_OVERRIDE when root):
    the flagged file is copied into the quarantine and the terminal says that the
    original is still there, not only «mis de côté»."""
    tree = tmp_path / "ro"
    tree.mkdir()
    (tree / "eicar.com").write_bytes(EICAR)
    (tree / "lettre.txt").write_text("Bonjour\n")
    tree.chmod(0o555)
    qdir = tmp_path / "q"
    try:
        p = subprocess.run(
            [*VIGIE, "scan", str(tree), "--quarantine", str(qdir), "--no-progress"],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
            preexec_fn=_drop_file_override if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    finally:
        tree.chmod(0o755)
    assert p.returncode == 1, p.stderr
    assert (tree / "eicar.com").read_bytes() == EICAR
    stored = qdir / "ro" / ("eicar.com" + QUARANTINE_SUFFIX)
    assert stored.read_bytes() == EICAR
    out = p.stdout
    assert "dont originaux restés en place" in out
    assert f"→ copié dans {stored}, mais l'original est RESTÉ EN PLACE" in out
    assert "NON supprimé(s)" in out and "1 quarantined (1 original(s) left in place)" in out


def test_paths_checked_before_the_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    """--html into a folder that does not exist, a quarantine inside the scanned tree
    reached through a link: refused (exit 2) before anything is scanned or created."""
    tree = tmp_path / "cle"
    practice_files(tree)
    missing = tmp_path / "absent" / "sous"
    assert main(["scan", str(tree), "--html", str(missing / "r.html"), "--no-progress"]) == 2
    assert "n'existe pas" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()

    (tmp_path / "lien").symlink_to(tree)
    assert main(["scan", str(tree), "--quarantine", str(tmp_path / "lien" / "q"),
                 "--no-progress"]) == 2
    assert "est dans le dossier analysé" in capsys.readouterr().err
    assert not (tree / "q").exists()


def test_scan_says_when_the_system_config_is_not_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    import gateway.scan.cli as scan_cli

    tree = tmp_path / "cle"
    practice_files(tree)
    system = tmp_path / "etc-vigie.toml"
    system.write_text("[scan]\n")
    monkeypatch.setattr(scan_cli, "SYSTEM_CONFIG", system)
    monkeypatch.delenv("VIGIE_CONFIG", raising=False)
    assert main(["scan", str(tree), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"sans --config, {system} n'est pas lu" in err and "--config" in err
    assert main(["scan", str(tree), "--no-progress", "--config", str(system)]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("VIGIE_CONFIG", str(system))
    assert main(["scan", str(tree), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_interrupted_scan_json_says_130(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C in the middle: the process exits 130 and its JSON report says the same."""
    from gateway.cli import build_parser
    from gateway.scan.cli import cmd_scan
    from gateway.scan.station import WalkHooks

    tree = tmp_path / "cle"
    practice_files(tree)

    def ctrl_c(path: str) -> None:
        if path.endswith("photo.png"):
            raise KeyboardInterrupt

    args = build_parser().parse_args(["scan", str(tree), "--json", "--no-progress"])
    args.config = None
    assert cmd_scan(args, hooks=WalkHooks(before_scan=ctrl_c)) == 130
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["interrupted"] is True and report["exit_code"] == 130
    assert "Analyse interrompue" in captured.err


MOUNTINFO = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
             "23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n")


def test_usb_watch_once_writes_reports_beside_the_data(tmp_path: Path, key: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO + f"300 22 8:17 / {key} rw,nosuid shared:300 - vfat "
                         "/dev/sdz1 rw\n")
    data = tmp_path / "data"
    config = tmp_path / "vigie.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n')
    p = run("usb", "watch", "--once", "--config", str(config), "--mountinfo", str(mountinfo),
            "--removable-under", str(tmp_path))
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    (json_path,) = (data / "usb-reports").glob("*-CLE.json")
    assert json_path.with_suffix(".html").exists()
    report = json.loads(json_path.read_text())
    assert report["kind"] == "usb" and report["mount"]["mount_point"] == str(key)
    assert report["mount"]["device"] == "/dev/sdz1"
    assert report["counts"]["files"] == 9 and report["counts"]["quarantined"] == 4
    assert Path(report["quarantine_dir"]).parent == data / "usb-quarantine"
    # the notification line (French first), without any file name
    assert "clé USB « CLE » : 4 fichier(s) à risque" in p.stderr
    assert "eicar" not in p.stderr and "ordonnance" not in p.stderr.lower()

    # nothing removable mounted: nothing to do
    mountinfo.write_text(MOUNTINFO)
    p = run("usb", "watch", "--once", "--config", str(config), "--mountinfo", str(mountinfo),
            "--removable-under", str(tmp_path))
    assert p.returncode == 0 and len(list((data / "usb-reports").glob("*.json"))) == 1
    assert "aucun support amovible monté" in p.stderr

    # the mount table cannot be read: an error, not "nothing mounted"
    p = run("usb", "watch", "--once", "--config", str(config), "--mountinfo",
            str(tmp_path / "absent"))
    assert p.returncode == 2 and "table des montages illisible" in p.stderr
    assert "aucun support amovible monté" not in p.stderr


def test_usb_watch_once_report_not_written(tmp_path: Path, key: Path) -> None:
    """The reports folder cannot be created: the findings are still in the log line
    and the exit code is 1 (the reviewer's /proc/nope)."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO + f"300 22 8:17 / {key} rw,nosuid shared:300 - vfat "
                         "/dev/sdz1 rw\n")
    config = tmp_path / "vigie.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    p = run("usb", "watch", "--once", "--config", str(config), "--mountinfo", str(mountinfo),
            "--removable-under", str(tmp_path), "--reports-dir", "/proc/nope",
            "--no-quarantine")
    assert p.returncode == 1, p.stderr
    assert "clé USB « CLE » : 4 fichier(s) à risque" in p.stderr
    assert "rapport NON écrit dans /proc/nope" in p.stderr and "Traceback" not in p.stderr


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """stderr a terminal: the rich bar (files, bytes, ETA) is drawn; a pipe: never."""
    import pty
    tree = tmp_path / "propre"
    practice_files(tree)
    master, slave = pty.openpty()
    try:
        p = subprocess.run([*VIGIE, "scan", str(tree)], stdout=subprocess.PIPE, stderr=slave,
                           text=True, timeout=120, check=False, cwd=ROOT,
                           env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
        os.close(slave)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert p.returncode == 0
    assert b"fichiers" in drawn and b"analyse / scanning" in drawn
    assert "analyse / scanning" not in p.stdout and "Fichiers analysés" in p.stdout
    quiet = run("scan", str(tree))  # stderr is a pipe here
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_single_file_root_and_unusable_rules(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "eicar.txt").write_bytes(EICAR)
    qdir = tmp_path / "q"
    assert main(["scan", str(tmp_path / "eicar.txt"), "--quarantine", str(qdir),
                 "--no-progress"]) == 1
    assert (qdir / ("eicar.txt" + QUARANTINE_SUFFIX)).read_bytes() == EICAR
    capsys.readouterr()

    rules = tmp_path / "regles"
    rules.mkdir()
    (rules / "local.yar").write_text("rule broken { condition: nonsense }\n")
    config = tmp_path / "vigie.toml"
    config.write_text(f'[scan]\nyara_dir = "{rules}"\n')
    assert main(["scan", str(tmp_path), "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "règles d'analyse inutilisables" in err and "local.yar" in err


def test_other_file_systems_are_not_entered_unless_asked(tmp_path: Path) -> None:
    """A real tmpfs mounted inside the tree (needs CAP_SYS_ADMIN: skipped elsewhere)."""
    tree = tmp_path / "cle"
    practice_files(tree)
    inner = tree / "montage"
    inner.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "vigie",
                                            str(inner)], capture_output=True,
                                           check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        (inner / "dedans.txt").write_text("autre système de fichiers\n")
        p = run("scan", str(tree), "--json", "--no-progress")
        report = json.loads(p.stdout)
        assert p.returncode == 0 and "montage/dedans.txt" not in by_rel(report)
        assert [(Path(x["path"]).name, x["kind"]) for x in report["problems"]] == [
            ("montage", "other_fs")]
        p = run("scan", str(tree), "--json", "--no-progress", "--cross-filesystems")
        assert "montage/dedans.txt" in by_rel(json.loads(p.stdout))
    finally:
        subprocess.run(["umount", str(inner)], check=False)


def test_usb_watch_service_until_sigterm(tmp_path: Path, key: Path) -> None:
    """The long-running watcher as systemd runs it: a key appears in the mount table,
    its report is written, SIGTERM ends the process cleanly."""
    import signal
    import time

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    data = tmp_path / "data"
    config = tmp_path / "vigie.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n')
    proc = subprocess.Popen(
        [*VIGIE, "usb", "watch", "--config", str(config), "--mountinfo", str(mountinfo),
         "--removable-under", str(tmp_path), "--interval", "0.2", "--no-quarantine"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(1.0)
        with mountinfo.open("a") as fh:
            fh.write(f"300 22 8:17 / {key} rw,nosuid shared:300 - vfat /dev/sdz1 rw\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(data.glob("usb-reports/*.html")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert list(data.glob("usb-reports/*-CLE.json"))
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "surveillance des supports amovibles" in err
    assert "clé USB « CLE » détectée" in err and "4 fichier(s) à risque" in err
    assert "arrêt demandé (SIGTERM)" in err and "stop requested (SIGTERM)" in err
    assert "surveillance des supports amovibles arrêtée" in err
    assert "Traceback" not in err
    assert (key / "eicar.com.txt").exists()  # --no-quarantine: report only
