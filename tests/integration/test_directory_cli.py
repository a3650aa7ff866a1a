"""`vigie directory import|stats|lookup` as a separate process, as a provider runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.unit.test_directory import ROWS, VCARDS, ans_text

VIGIE = [sys.executable, "-m", "gateway"]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    env.pop("VIGIE_CONFIG", None)
    return subprocess.run([*VIGIE, "directory", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_import_stats_lookup(tmp_path: Path) -> None:
    archive = tmp_path / "extraction.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Extraction_Correspondance_MSSante.txt", ans_text(ROWS).encode("latin-1"))
    done = run(tmp_path, "import", str(archive))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Import terminé : annuaire MSSanté (ANS)" in out
    assert "codage / encoding : Latin-1 (Windows-1252)" in out
    assert "lignes lues / rows read : 6" in out
    assert "entrées gardées / entries kept : 3" in out
    assert "ignorées / skipped : 1 — doublons (même adresse, même nom) / duplicates" in out
    assert "sans adresse / no address (lignes / lines 6…)" in out
    assert (tmp_path / "xdg" / "vigie" / "directory.sqlite3").is_file()

    vcf = tmp_path / "contacts.vcf"
    vcf.write_text(VCARDS, encoding="utf-8")
    done = run(tmp_path, "import", str(vcf))
    assert done.returncode == 0, done.stderr
    assert "contacts du cabinet" in done.stdout
    assert "total de l'annuaire / directory total : 8 entrées" in done.stdout

    stats = run(tmp_path, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "ans : 3 entrées / entries" in stats.stdout
    assert "contacts : 5 entrées / entries" in stats.stdout
    assert "70 Masseur-Kinésithérapeute : 1" in stats.stdout

    found = run(tmp_path, "lookup", "Dr LEFEVRE Eloise")
    assert found.returncode == 0
    assert ("Éloïse LEFÈVRE <eloise.lefevre@masseur-kinesitherapeute.mssante.fr> — "
            "Masseur-Kinésithérapeute [PER] (ans)") in found.stdout
    assert "andre.leon@gmail.com" in run(tmp_path, "lookup", "André Léon").stdout
    missing = run(tmp_path, "lookup", "nobody@example.org")
    assert missing.returncode == 1
    assert "aucune entrée" in missing.stdout


def test_bad_file_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    good = tmp_path / "c.csv"
    good.write_text("nom;email\nA B;a@b.fr\n", encoding="utf-8")
    assert run(tmp_path, "import", str(good)).returncode == 0
    bad = tmp_path / "export.vcf"
    bad.write_text("BEGIN:VCARD\nFN:X\nEMAIL:x@y.fr\n", encoding="utf-8")
    done = run(tmp_path, "import", str(bad))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{bad}, ligne 1 : vCard non terminée" in done.stderr
    assert f"{bad}, line 1: vCard not closed" in done.stderr
    assert "l'annuaire n'a pas été modifié / the directory was not changed" in done.stderr
    assert "a@b.fr" in run(tmp_path, "lookup", "a@b.fr").stdout
    done = run(tmp_path, "import", str(tmp_path / "absent.csv"))
    assert done.returncode == 2
    assert "lecture impossible" in done.stderr and "Traceback" not in done.stderr


def test_empty_directory_stats(tmp_path: Path) -> None:
    done = run(tmp_path, "stats")
    assert done.returncode == 0
    assert "annuaire vide / empty directory" in done.stdout


def test_killed_import_leaves_the_old_directory(tmp_path: Path) -> None:
    import signal
    import time

    from tests.unit.test_directory import ans_line

    good = tmp_path / "c.csv"
    good.write_text("nom;email\nA B;a@b.fr\n", encoding="utf-8")
    assert run(tmp_path, "import", str(good)).returncode == 0
    big = tmp_path / "extraction.txt"
    big.write_text(ans_text([ans_line(f"p{i}@medecin.mssante.fr", f"NOM{i}", "Jean")
                             for i in range(300_000)]), encoding="utf-8")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    proc = subprocess.Popen([*VIGIE, "directory", "import", str(big)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "xdg" / "vigie"
    deadline = time.monotonic() + 60
    while not list(folder.glob(".directory.sqlite3.*.tmp")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == -signal.SIGKILL:
        stats = run(tmp_path, "stats").stdout
        assert "contacts : 1 entrées" in stats and "ans :" not in stats
    # the next import clears what the killed one left
    assert run(tmp_path, "import", str(good)).returncode == 0
    assert not list(folder.glob(".directory.sqlite3.*.tmp"))
