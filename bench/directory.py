"""Directory of confrères benchmark: import of a synthetic ANS extraction, look-ups, look-alikes.

Generates a synthetic «Extraction Correspondance MSSanté» (31 ``|`` columns, 500 000
rows by default, realistic French names, professions and thousands of ``*.mssante.fr``
structure domains, some duplicate lines), then, each in its own child process so
that peak RSS (VmHWM) is that of the work alone:

1. ``import_file`` of the extraction (wall time, rows/s, peak RSS), against a plain
   ``csv.reader`` pass over the same file that builds nothing (the baseline);
2. a process that opens the directory and does 10 000 mixed look-ups
   (``by_address``, ``by_name``, ``is_directory_domain``, look-alike checks and whole
   ``assess_sender`` calls): latency percentiles and RSS, against a process that only
   imports the same modules (the baseline RSS);
3. look-alike checks against 10 / 1 000 / 20 000 protected registered domains
   (``LookalikeIndex``) against a naive loop computing the edit distance to each.

Figures and ratios are printed, nothing is asserted. Run from the repository root:
``python bench/directory.py [--quick] [--rows N] [--json FILE] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.directory import ANS_COLUMNS  # noqa: E402


def _names(text: str) -> list[str]:
    return text.split(", ")


FIRST = _names(
    "Jean, Marie, Pierre, Anne, Michel, Isabelle, Philippe, Catherine, Nicolas, "
    "Sophie, Christophe, Nathalie, François, Valérie, Laurent, Sandrine, Éric, "
    "Céline, Frédéric, Stéphanie, Olivier, Émilie, Thomas, Julie, Julien, Aurélie, "
    "Sébastien, Camille, Guillaume, Élodie, Antoine, Claire, Mathieu, Hélène, "
    "Alexandre, Léa, Benoît, Chloé, Jérôme, Manon, Cédric, Inès, Damien, Océane, "
    "Jean-Pierre, Marie-Christine, Jean-François, Anne-Sophie, Pierre-Yves, "
    "Marie-Hélène, Loïc, Gaëlle, Noémie, Hervé, Agnès, Thierry, Béatrice, Grégoire, "
    "Maëlle, Zoé, Raphaël, Joël")
LAST = _names(
    "MARTIN, BERNARD, THOMAS, PETIT, ROBERT, RICHARD, DURAND, DUBOIS, MOREAU, "
    "LAURENT, SIMON, MICHEL, LEFÈVRE, LEROY, ROUX, DAVID, BERTRAND, MOREL, FOURNIER, "
    "GIRARD, BONNET, DUPONT, LAMBERT, FONTAINE, ROUSSEAU, VINCENT, MULLER, LEFEBVRE, "
    "FAURE, ANDRÉ, MERCIER, BLANC, GUÉRIN, BOYER, GARNIER, CHEVALIER, FRANÇOIS, "
    "LEGRAND, GAUTHIER, GARCIA, PERRIN, ROBIN, CLÉMENT, MORIN, NICOLAS, HENRY, "
    "ROUSSEL, MATHIEU, GAUTIER, MASSON, MARCHAND, DUVAL, DENIS, DUMONT, MARIE, "
    "LEMAIRE, NOËL, MEYER, DUFOUR, MEUNIER, BRUN, BLANCHARD, GIRAUD, JOLY, RIVIÈRE, "
    "LUCAS, BRUNET, GAILLARD, BARBIER, ARNAUD, MARTINEZ, GÉRARD, ROCHE, RENARD, "
    "SCHMITT, ROY, LEROUX, COLIN, VIDAL, CARON, PICARD, ROGER, FABRE, AUBERT, "
    "LEMOINE, RENAUD, DUMAS, LACROIX, OLIVIER, PHILIPPE, BOURGEOIS, PIERRE, BENOÎT, "
    "REY, LECLERC, PAYET, ROLLAND, LECLERCQ, GUILLAUME, LECOMTE, LOPEZ, JEAN, DUPUY, "
    "LE GALL, KERBRAT, N'DIAYE, DA SILVA, SAINT-MARTIN")
PROFESSIONS = (  # code, label, personal BAL domain, share
    ("10", "Médecin", "medecin.mssante.fr", 40),
    ("60", "Infirmier", "infirmier.mssante.fr", 22),
    ("70", "Masseur-Kinésithérapeute", "masseur-kinesitherapeute.mssante.fr", 12),
    ("21", "Pharmacien", "pharmacien.mssante.fr", 9),
    ("40", "Chirurgien-Dentiste", "chirurgien-dentiste.mssante.fr", 6),
    ("50", "Sage-Femme", "sage-femme.mssante.fr", 4),
    ("91", "Orthophoniste", "orthophoniste.mssante.fr", 4),
    ("80", "Pédicure-Podologue", "pedicure-podologue.mssante.fr", 3),
)
TOWNS = _names(
    "paris, lyon, marseille, toulouse, nice, nantes, montpellier, strasbourg, "
    "bordeaux, lille, rennes, reims, toulon, grenoble, dijon, angers, nimes, "
    "villeurbanne, clermont, aix, brest, tours, amiens, limoges, annecy, perpignan, "
    "metz, besancon, orleans, rouen, mulhouse, caen, nancy, argenteuil, roubaix, "
    "tourcoing, avignon, poitiers, pau, calais")
KINDS = ("ch", "chu", "clinique", "ehpad", "cms", "msp", "cds", "ght", "hopital", "centre")


def synthetic_rows(count: int, seed: int) -> Any:
    """Yield ``count`` ANS lines (without the header), about 4 % repeated."""
    rnd = random.Random(seed)
    weights = [p[3] for p in PROFESSIONS]
    structures = [f"{rnd.choice(KINDS)}-{town}{'-' + str(i) if i else ''}.mssante.fr"
                  for i in range(max(1, count // 1000)) for town in TOWNS]
    previous: list[str] = []
    seen: set[str] = set()
    for n in range(count):
        if previous and rnd.random() < 0.04:
            yield rnd.choice(previous)  # the same BAL on another line (several workplaces)
            continue
        code, label, domain, _ = rnd.choices(PROFESSIONS, weights)[0]
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        cells = [""] * len(ANS_COLUMNS)
        local = (f"{first}.{last}".lower().replace(" ", "-").replace("'", "")
                 .translate(str.maketrans("éèêëàâîïôöûüçœ", "eeeeaaiioouuco")))
        if rnd.random() < 0.12:  # an organisational BAL of a structure
            structure = rnd.choice(structures)
            cells[0] = "ORG"
            cells[1] = f"{rnd.choice(('secretariat', 'accueil', 'radiologie', 'urgences'))}" \
                       f"{n}@{structure}"
            cells[18] = structure.split(".")[0].replace("-", " ").upper()
            cells[7] = rnd.choice(("Secrétariat médical", "Service de radiologie", ""))
        else:
            cells[0] = "PER"
            where = domain if rnd.random() < 0.8 else rnd.choice(structures)
            address = f"{local}@{where}"
            if address in seen:  # namesakes get a number, as operators do
                address = f"{local}{n}@{where}"
            seen.add(address)
            cells[1] = address
            cells[2], cells[3] = "8", f"10{rnd.randrange(10**8, 10**9)}"
            cells[4] = "8" + cells[3]
            cells[8] = rnd.choice(("M", "MME", "DR", ""))
            cells[9], cells[10] = last, first
            cells[11], cells[12] = "C", "Civil"
        cells[13], cells[14] = code, label
        cells[17] = "O"
        cells[22], cells[25] = str(rnd.randrange(1, 200)), "RUE DE LA REPUBLIQUE"
        town = rnd.choice(TOWNS)
        cells[27] = f"{rnd.randrange(10000, 95999)} {town.upper()}"
        cells[28], cells[29], cells[30] = cells[27][:5], cells[27][:2], "FRANCE"
        line = "|".join(cells) + "|"
        if len(previous) < 5000:
            previous.append(line)
        else:
            previous[rnd.randrange(5000)] = line
        yield line


def write_extraction(folder: Path, count: int, seed: int, zipped: bool) -> Path:
    text = folder / "Extraction_Correspondance_MSSante.txt"
    with text.open("w", encoding="utf-8", newline="\n") as out:
        out.write("|".join(ANS_COLUMNS) + "|\n")
        for line in synthetic_rows(count, seed):
            out.write(line + "\n")
    if not zipped:
        return text
    archive = folder / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(text, text.name)
    text.unlink()
    return archive


# --- child processes ---------------------------------------------------------------

def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    """VmHWM: this process image's peak RSS (``getrusage``'s ru_maxrss would carry
    the parent's peak over fork + exec on Linux)."""
    return _status_mb("VmHWM")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def child_import(db: str, src: str) -> dict[str, Any]:
    from gateway.directory import import_file

    before = _peak_rss_mb()
    start = time.perf_counter()
    report = import_file(Path(db), Path(src), "ans")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": report.rows_read, "kept": report.kept,
            "skipped": report.skipped, "peak_rss_mb": _peak_rss_mb(),
            "rss_before_mb": before, "db_mb": Path(db).stat().st_size / 1e6}


def child_csv_baseline(src: str) -> dict[str, Any]:
    import csv
    import io

    before = _peak_rss_mb()
    start = time.perf_counter()
    rows = 0
    path = Path(src)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z, z.open(z.namelist()[0]) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter="|")
            for _ in reader:
                rows += 1
    else:
        with path.open(encoding="utf-8", newline="") as f:
            for _ in csv.reader(f, delimiter="|"):
                rows += 1
    return {"seconds": time.perf_counter() - start, "rows": rows - 1,
            "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": before}


def _modules() -> None:
    import gateway.detect.impersonation
    import gateway.directory
    import gateway.policy  # noqa: F401


def child_baseline_rss() -> dict[str, Any]:
    _modules()
    return {"rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb()}


def child_lookups(db: str, count: int, seed: int) -> dict[str, Any]:
    _modules()
    from gateway.detect.impersonation import assess_sender
    from gateway.directory import Directory, load_skeleton
    from gateway.policy import rules_dir

    rnd = random.Random(seed)
    webmail = frozenset(
        line.split("#", 1)[0].strip() for line in
        (rules_dir() / "webmail_domains.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0].strip())
    start = time.perf_counter()
    directory = Directory(Path(db), load_skeleton(rules_dir()), webmail=webmail,
                          protected=["cabinet-kine-lyon.fr"])
    open_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    protected = len(directory.lookalikes())
    index_ms = (time.perf_counter() - start) * 1000
    rss_open = _rss_mb()
    # addresses and names that exist, from the file itself
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as sample_db:
        sample = sample_db.execute(
            "SELECT address, display_name, domain FROM entries WHERE rowid % 97 = 0 "
            "LIMIT 2000").fetchall()
    senders = [
        *(f'"{n}" <{a}>' for a, n, _ in sample[:500]),  # real confrères
        *(f'"Dr {n}" <{a.split("@")[0]}@gmail.com>' for a, n, _ in sample[500:700]),
        *(f"x{i}@{d}" for i, d in enumerate(("rnssante.fr", "mssante-fr.com", "mssante.com",
                                              "secure-mssante.fr", "msante.fr")) for _ in
          range(20)),
        *(f'"Client {i}" <client{i}@{rnd.choice(("gmail.com", "orange.fr", "free.fr"))}>'
          for i in range(200)),
        *(f"news@{d}" for d in ("doctolib.fr", "ameli.fr", "laposte.fr", "edf.fr") for _ in
          range(25)),
    ]
    timings: dict[str, list[float]] = {"by_address": [], "by_name": [], "domain": [],
                                       "lookalike": [], "assess_sender": []}
    ops = list(timings)
    for i in range(count):
        op = ops[i % len(ops)]
        address, name, domain = rnd.choice(sample)
        if rnd.random() < 0.3:  # misses too
            address, name, domain = f"nobody{i}@example.org", f"Inconnu Nom{i}", "example.org"
        t = time.perf_counter()
        if op == "by_address":
            directory.by_address(address)
        elif op == "by_name":
            directory.by_name(name)
        elif op == "domain":
            directory.is_directory_domain(domain)
        elif op == "lookalike":
            directory.lookalikes().check(rnd.choice(senders).rsplit("@", 1)[1].rstrip(">"))
        else:
            assess_sender(rnd.choice(senders), rnd.choice((None, "other@gmail.com")), directory,
                          rnd.choice((True, False, None)), webmail)
        timings[op].append((time.perf_counter() - t) * 1e6)
    result: dict[str, Any] = {"open_ms": open_ms, "index_ms": index_ms,
                              "protected_domains": protected, "rss_open_mb": rss_open,
                              "rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb()}
    for op, values in timings.items():
        values.sort()
        result[op] = {"p50_us": values[len(values) // 2],
                      "p99_us": values[int(len(values) * 0.99)],
                      "mean_us": statistics.fmean(values)}
    return result


def child_lookalike_scaling(sizes: list[int], checks: int, seed: int) -> dict[str, Any]:
    from gateway.detect.impersonation import LookalikeIndex, damerau, max_distance
    from gateway.directory import load_skeleton
    from gateway.policy import rules_dir

    skeleton = load_skeleton(rules_dir())
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    result: dict[str, Any] = {}
    for size in sizes:
        domains = ["mssante.fr"] + [
            "".join(rnd.choice(letters) for _ in range(rnd.randrange(5, 16)))
            + rnd.choice((".fr", ".com", ".org")) for _ in range(size - 1)]
        t = time.perf_counter()
        index = LookalikeIndex.build(domains, skeleton)
        build_ms = (time.perf_counter() - t) * 1000
        probes = [rnd.choice(domains).replace("a", "4", 1) if i % 3 == 0 else
                  "".join(rnd.choice(letters) for _ in range(9)) + ".fr"
                  for i in range(checks)]
        t = time.perf_counter()
        hits = sum(index.check(p) is not None for p in probes)
        indexed_us = (time.perf_counter() - t) / checks * 1e6
        cores = [d.rsplit(".", 1)[0] for d in domains]
        naive_probes = probes[: max(10, checks // max(1, size // 20))]
        t = time.perf_counter()
        for p in naive_probes:
            core = skeleton(p.rsplit(".", 1)[0])
            for c in cores:
                limit = max_distance(len(c))
                damerau(core, skeleton(c), limit)
        naive_us = (time.perf_counter() - t) / len(naive_probes) * 1e6
        result[str(size)] = {"build_ms": build_ms, "indexed_us": indexed_us,
                             "naive_us": naive_us, "hits": hits, "checks": checks}
    return result


def in_child(function: str, *args: Any) -> dict[str, Any]:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.directory import {function}; "
            f"print(json.dumps({function}(*json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True,
                          text=True, check=False, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{function} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="50 000 rows, 2 000 look-ups")
    parser.add_argument("--zip", action="store_true", help="import the extraction as a .zip")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.lookups = 50_000, 2_000
    folder = Path(tempfile.mkdtemp(prefix="vigie-bench-directory-"))
    report: dict[str, Any] = {"rows": args.rows, "python": platform.python_version(),
                              "loadavg": os.getloadavg()}
    print(f"vigie directory bench: {args.rows} rows, {args.lookups} look-ups, "
          f"load average {report['loadavg'][0]:.2f}, folder {folder}")
    t = time.perf_counter()
    src = write_extraction(folder, args.rows, args.seed, args.zip)
    report["generate_s"] = time.perf_counter() - t
    report["file_mb"] = src.stat().st_size / 1e6
    print(f"synthetic extraction: {src.name}, {report['file_mb']:.1f} MB, "
          f"generated in {report['generate_s']:.1f} s")
    db = folder / "directory.sqlite3"

    base = in_child("child_csv_baseline", str(src))
    imp = in_child("child_import", str(db), str(src))
    report["csv_baseline"], report["import"] = base, imp
    print("\n1. import (child processes)")
    print(f"   {'':28}{'time s':>9}{'rows/s':>11}{'peak RSS MB':>13}")
    print(f"   {'csv.reader pass (baseline)':28}{base['seconds']:9.2f}"
          f"{base['rows'] / base['seconds']:11.0f}{base['peak_rss_mb']:13.1f}")
    print(f"   {'vigie directory import':28}{imp['seconds']:9.2f}"
          f"{imp['rows'] / imp['seconds']:11.0f}{imp['peak_rss_mb']:13.1f}")
    print(f"   ratio import/baseline: time x{imp['seconds'] / base['seconds']:.2f}, "
          f"peak RSS x{imp['peak_rss_mb'] / base['peak_rss_mb']:.2f}; "
          f"{imp['kept']} entries kept, skipped {imp['skipped']}, "
          f"SQLite file {imp['db_mb']:.0f} MB")

    floor = in_child("child_baseline_rss")
    look = in_child("child_lookups", str(db), args.lookups, args.seed)
    report["baseline_rss"], report["lookups"] = floor, look
    print(f"\n2. a process with the directory open, {args.lookups} mixed look-ups")
    print(f"   open {look['open_ms']:.1f} ms, look-alike index of "
          f"{look['protected_domains']} protected registered domains built in "
          f"{look['index_ms']:.1f} ms")
    print(f"   {'operation':18}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    for op in ("by_address", "by_name", "domain", "lookalike", "assess_sender"):
        o = look[op]
        print(f"   {op:18}{o['p50_us']:10.1f}{o['p99_us']:10.1f}{o['mean_us']:10.1f}")
    print(f"   RSS: same modules only (baseline) {floor['rss_mb']:.1f} MB; directory open "
          f"{look['rss_open_mb']:.1f} MB; after the look-ups {look['rss_mb']:.1f} MB "
          f"(peak {look['peak_rss_mb']:.1f}); added "
          f"{look['rss_mb'] - floor['rss_mb']:.1f} MB, ratio "
          f"x{look['rss_mb'] / floor['rss_mb']:.2f}")

    sizes = [10, 1000, 20000]
    scaling = in_child("child_lookalike_scaling", sizes, 2000, args.seed)
    report["lookalike_scaling"] = scaling
    print("\n3. look-alike check per domain against N protected registered domains")
    print(f"   {'N':>7}{'build ms':>10}{'indexed µs':>12}{'naive µs':>12}{'naive/indexed':>15}")
    for size in sizes:
        s = scaling[str(size)]
        print(f"   {size:7}{s['build_ms']:10.1f}{s['indexed_us']:12.1f}{s['naive_us']:12.1f}"
              f"{s['naive_us'] / s['indexed_us']:15.1f}")
    print("\ntargets (not asserted): import of 500k rows < 60 s with peak RSS < 100 MB; "
          "assess_sender p99 < 1 ms; directory process RSS growth < 30 MB")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if not args.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
