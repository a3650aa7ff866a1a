"""Station blanche benchmark: scan throughput against Debian's ``yara``, and an archive bomb.

In one run, over one generated corpus (a practice's ordinary files — scanned
prescriptions as PDFs, text PDFs, JPEG and PNG photos, DOCX letters with a picture,
CSV exports, ICS agendas — plus a few malicious samples): (a) Debian's ``yara``
command with the project's rules compiled by ``yarac``, (b) vigie's YARA stage alone
(the engine's ``yarascan`` over the same files, as the engine feeds it), (c) the whole
engine through ``vigie scan``'s own walk and pool. Then a zip expanding to 10 GiB
scanned in a child process: peak RSS and time to give up. Figures and ratios are
printed beside their targets, never asserted. Run: ``python bench/scan.py [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import scan_like_pdf, text_heavy_pdf
from gateway.config import Config
from gateway.scan.engine import WHOLE_FILE, ScanLimits, Scanner
from gateway.scan.station import run_scan
from gateway.scan.walk import Walk
from gateway.scan.yarascan import compile_rules, match
from tests.samples_builder import make_docx

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
GIB = 1024 ** 3
TARGET_YARA_RATIO = 0.80
TARGET_ENGINE_MBPS = 30.0
TARGET_BOMB_RSS_MB = 200.0
TARGET_BOMB_S = 2.0

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
PE = (b"MZ\x90\x00" + b"\x00" * 56 + (64).to_bytes(4, "little") + b"PE\x00\x00"
      + b"\x4c\x01\x01\x00" + b"\x00" * 12 + b"\xe0\x00\x02\x01" + b"\x00" * 400)


# --------------------------------------------------------------------------- corpus

def jpeg(size: int, rng: random.Random) -> bytes:
    """A JPEG-looking photo: SOI, JFIF APP0, a quantisation table, then entropy-coded
    data (random bytes, with 0xFF stuffed as JPEG does), EOI."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
    dqt = b"\xff\xdb\x00\x43\x00" + bytes(rng.randint(1, 99) for _ in range(64))
    sof = b"\xff\xc0\x00\x11\x08\x0b\xb8\x0f\xa0\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    body = rng.randbytes(size).replace(b"\xff", b"\xff\x00")
    return b"\xff\xd8" + app0 + dqt + sof + sos + body + b"\xff\xd9"


def png(size: int, rng: random.Random) -> bytes:
    """A real RGB PNG of about ``size`` bytes (noisy pixels compress little)."""
    side = max(8, int((size / 3) ** 0.5))
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def docx(size: int, rng: random.Random) -> bytes:
    """A letter with a photo in word/media (how DOCX files get to a few MB)."""
    paragraphs = [f"Cher confrère, je vous adresse Mme {rng.randint(1, 999)} pour "
                  f"{rng.randint(5, 20)} séances de rééducation." for _ in range(200)]
    base = io.BytesIO(make_docx(paragraphs))
    with zipfile.ZipFile(base, "a") as z:
        z.writestr("word/media/image1.jpeg", jpeg(size, rng), zipfile.ZIP_STORED)
    return base.getvalue()


def csv_export(size: int, rng: random.Random) -> bytes:
    lines = ["date;heure;patient;acte;montant"]
    total = 0
    while total < size:
        line = (f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d};"
                f"{rng.randint(8, 19):02d}:{rng.choice(('00', '30'))};"
                f"P{rng.randint(1, 9999):05d};AMK {rng.choice((7.5, 8, 9.5, 10))};"
                f"{rng.randint(16, 50)},{rng.randint(0, 99):02d}")
        lines.append(line)
        total += len(line) + 2
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def ics(size: int, rng: random.Random) -> bytes:
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//cabinet//agenda//FR"]
    total = 0
    n = 0
    while total < size:
        n += 1
        ev = (f"BEGIN:VEVENT\r\nUID:{n}@cabinet.example\r\nDTSTART:2026{rng.randint(1, 12):02d}"
              f"{rng.randint(1, 28):02d}T{rng.randint(8, 19):02d}0000\r\nDURATION:PT30M\r\n"
              f"SUMMARY:Séance de kinésithérapie {n}\r\nLOCATION:Cabinet\r\nEND:VEVENT")
        out.append(ev)
        total += len(ev) + 2
    out.append("END:VCALENDAR")
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def malicious_samples() -> dict[str, bytes]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Documents/lisez-moi.txt", "à lire\n")
        z.writestr("Documents/facture.exe", PE)
    return {"eicar.com.txt": EICAR, "Ordonnances/scan_0042.pdf": PE,
            "photos_vacances.zip": buf.getvalue(), "facture\u202efdp.exe": b"rien",
            "Documents/resultats.html": (
                b"<html><body><script>var b=atob('TVqQAAMAAAAEAAAA');var blob=new Blob([b],"
                b"{type:'application/octet-stream'});var a=document.createElement('a');"
                b"a.href=URL.createObjectURL(blob);a.download='resultats.exe';a.click();"
                b"</script></body></html>")}


@dataclass
class Corpus:
    root: Path
    files: int
    bytes: int
    by_kind: dict[str, tuple[int, int]]


KINDS: list[tuple[str, str, int, Callable[[int, random.Random], bytes]]] = [
    # (kind, folder/extension, typical size, maker); weights follow a practice's key
    ("pdf-scan", "Ordonnances/ordonnance_{n:04d}.pdf", 3 * MB,
     lambda size, rng: scan_like_pdf(["Ordonnance", "Rééducation"], size, rng.randint(0, 10**9))),
    ("pdf-text", "Comptes-rendus/bilan_{n:04d}.pdf", 2 * MB,
     lambda size, rng: text_heavy_pdf(size, rng.randint(0, 10**9), first_line="Bilan",
                                      last_line="Fin")[0]),
    ("jpeg", "Photos/IMG_{n:04d}.jpg", 4 * MB, jpeg),
    ("png", "Captures/capture_{n:04d}.png", 2 * MB, png),
    ("docx", "Courriers/courrier_{n:04d}.docx", 2 * MB, docx),
    ("csv", "Exports/rdv_{n:04d}.csv", 1 * MB, csv_export),
    ("ics", "Agenda/agenda_{n:04d}.ics", MB // 2, ics),
]


def build_corpus(root: Path, total: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    by_kind: dict[str, list[int]] = {k: [0, 0] for k, *_ in KINDS}
    written, n = 0, 0
    while written < total:
        kind, pattern, typical, maker = KINDS[n % len(KINDS)]
        size = int(typical * rng.uniform(0.6, 1.4))
        data = maker(size, rng)
        path = root / pattern.format(n=n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        by_kind[kind][0] += 1
        by_kind[kind][1] += len(data)
        written += len(data)
        n += 1
    for name, data in malicious_samples().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        by_kind.setdefault("malicious", [0, 0])
        by_kind["malicious"][0] += 1
        by_kind["malicious"][1] += len(data)
    files = [p for p in root.rglob("*") if p.is_file()]
    return Corpus(root, len(files), sum(p.stat().st_size for p in files),
                  {k: (v[0], v[1]) for k, v in by_kind.items()})


def warm(corpus: Corpus) -> None:
    """Read every file once so that every stage finds them in the page cache."""
    for p in corpus.root.rglob("*"):
        if p.is_file():
            p.read_bytes()


# --------------------------------------------------------------------------- stages

@dataclass
class Timing:
    stage: str
    threads: int
    seconds: list[float]
    matched_files: int

    def best(self) -> float:
        return min(self.seconds)

    def median(self) -> float:
        return statistics.median(self.seconds)


def yara_cli(yara: str, compiled: Path, corpus: Corpus, threads: int) -> tuple[float, int]:
    start = time.perf_counter()
    p = subprocess.run([yara, "-C", "-r", "-p", str(threads), str(compiled), str(corpus.root)],
                       capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"yara failed: {p.stderr.decode(errors='replace')}")
    matched = {line.split(b" ", 1)[1] for line in p.stdout.splitlines() if b" " in line}
    return elapsed, len(matched)


def vigie_yara(files: list[Path], threads: int) -> tuple[float, int]:
    """The engine's YARA stage called as the engine calls it: the bytes read then
    ``yarascan.match`` (files up to WHOLE_FILE), else YARA on the path; over every
    file, as the CLI (the engine itself skips YARA on compressed containers)."""
    ruleset = compile_rules("")
    limits = ScanLimits()

    def one(path: Path) -> bool:
        size = path.stat().st_size
        walk = Walk(limits, "file", size, lambda *a: None)
        if size <= WHOLE_FILE:
            match(walk, ruleset, path.name, path.read_bytes())
            return bool(walk.findings)
        return bool(ruleset.rules.match(filepath=str(path), timeout=10))

    start = time.perf_counter()
    if threads == 1:
        hits = sum(one(p) for p in files)
    else:
        with ThreadPoolExecutor(threads) as pool:
            hits = sum(pool.map(one, files))
    return time.perf_counter() - start, hits


PER_KIND: dict[str, list[float]] = {}  # kind -> [files, bytes, seconds], engine at 1 thread
FLAGGED_ORDINARY: list[str] = []  # ordinary corpus files the engine flagged (false positives)


def kind_of(rel: str) -> str:
    if rel in malicious_samples():
        return "malicious"
    for kind, pattern, *_ in KINDS:
        if rel.startswith(pattern.split("/")[0] + "/") and rel.endswith(pattern[-4:]):
            return kind
    return "malicious"


def vigie_engine(scanner: Scanner, corpus: Corpus, threads: int) -> tuple[float, int]:
    start = time.perf_counter()
    run = run_scan(scanner, [str(corpus.root)], jobs=threads)
    elapsed = time.perf_counter() - start
    if run.problems:
        raise SystemExit(f"engine stage: {len(run.problems)} problems: {run.problems[:3]}")
    if threads == 1:
        PER_KIND.clear()
        FLAGGED_ORDINARY.clear()
        for r in run.results:
            kind = kind_of(r.entry.rel)
            row = PER_KIND.setdefault(kind, [0, 0, 0.0])
            row[0] += 1
            row[1] += r.entry.size
            row[2] += r.report.elapsed
            if kind != "malicious" and r in run.flagged:
                FLAGGED_ORDINARY.append(f"{r.entry.rel}: " + ", ".join(
                    f.symbol for f in r.report.findings))
    return elapsed, len(run.flagged)


# --------------------------------------------------------------------------- bomb

def write_bomb(path: Path, members: int = 10, member_size: int = GIB, *,
               lie: bool = False) -> int:
    """A zip of ``members`` files of ``member_size`` zero bytes each (10 GiB by
    default) in about 10 MB: one deflate stream made once, stored ``members`` times.
    ``lie``: the headers declare each member as big as its compressed data, so only
    inflating it shows the truth. Returns the expanded size."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    chunk = bytes(1024 * 1024)
    parts, crc = [], 0
    for _ in range(member_size // len(chunk)):
        parts.append(comp.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(comp.flush())
    data = b"".join(parts)
    declared = len(data) if lie else member_size
    central, offset = [], 0
    with path.open("wb") as f:
        for i in range(members):
            name = f"sauvegarde/partie_{i:02d}.bin".encode()
            local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x5821, crc,
                                len(data), declared, len(name), 0)
            f.write(local + name + data)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0,
                                       0x5821, crc, len(data), declared, len(name), 0, 0, 0,
                                       0, 0, offset) + name)
            offset += len(local) + len(name) + len(data)
        cd = b"".join(central)
        f.write(cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members, len(cd),
                                 offset, 0))
    return members * member_size


_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from gateway.config import Config
from gateway.scan.engine import Scanner

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
scanner = Scanner.from_config(Config())
ready = hwm()
start = time.perf_counter()
report = scanner.scan_path(Path(sys.argv[2]))
elapsed = time.perf_counter() - start
print(json.dumps({"ready_mb": ready, "peak_mb": hwm(), "seconds": elapsed,
                  "verdict": report.verdict.value,
                  "symbols": sorted({f.symbol for f in report.findings})}))
"""


def scan_in_child(path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(ROOT), str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": err.decode(errors="replace")[-2000:], "wall": wall,
                "ru_maxrss_mb": usage.ru_maxrss / 1024}
    result: dict[str, Any] = json.loads(out)
    # ru_maxrss of a forked child can carry the parent's size from before exec: the
    # child's own VmHWM (read at its end) is its true peak.
    result.update(wall=wall, maxrss_mb=result["peak_mb"])
    return result


# --------------------------------------------------------------------------- report

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="60 MB corpus, 3 rounds")
    p.add_argument("--mb", type=int, help="corpus size in MB (default 200, quick 60)")
    p.add_argument("--rounds", type=int, help="rounds per stage (default 5, quick 3)")
    p.add_argument("--threads", type=int, default=2, help="threads for the parallel runs")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--no-bomb", action="store_true")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--keep", action="store_true", help="keep the corpus folder")
    args = p.parse_args(argv)
    total = (args.mb or (60 if args.quick else 200)) * MB
    rounds = args.rounds or (3 if args.quick else 5)
    yara_bin = shutil.which("yara") or "/usr/bin/yara"
    yarac_bin = shutil.which("yarac") or "/usr/bin/yarac"
    if not (os.access(yara_bin, os.X_OK) and os.access(yarac_bin, os.X_OK)):
        raise SystemExit("Debian's yara is needed for the baseline: apt-get install yara")
    version = subprocess.run([yara_bin, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    print(f"bench/scan.py — {platform.node()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, Python "
          f"{platform.python_version()}, yara {version}")
    results: dict[str, Any] = {"load_average": os.getloadavg(), "yara_version": version}
    tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-scan-"))
    try:
        t0 = time.perf_counter()
        corpus = build_corpus(tmp / "corpus", total, args.seed)
        print(f"corpus: {corpus.files} files, {corpus.bytes / MB:.1f} MB, built in "
              f"{time.perf_counter() - t0:.1f} s ({tmp / 'corpus'})")
        for kind, (n, size) in corpus.by_kind.items():
            print(f"  {kind:10s} {n:4d} files {size / MB:8.1f} MB")
        results["corpus"] = {"files": corpus.files, "bytes": corpus.bytes,
                             "by_kind": corpus.by_kind}
        from gateway.scan.yarascan import rule_files
        sources = [str(f) for f in rule_files("")]
        compiled = tmp / "rules.yarc"
        subprocess.run([yarac_bin, *sources, str(compiled)], check=True)
        files = sorted(p for p in corpus.root.rglob("*") if p.is_file())
        scanner = Scanner.from_config(Config())
        warm(corpus)
        timings: dict[tuple[str, int], Timing] = {}

        def record(stage: str, threads: int, seconds: float, matched: int) -> None:
            t = timings.setdefault((stage, threads), Timing(stage, threads, [], matched))
            t.seconds.append(seconds)

        for r in range(rounds):
            stages: list[tuple[str, Callable[[int], tuple[float, int]]]] = [
                ("yara CLI (a)", lambda th: yara_cli(yara_bin, compiled, corpus, th)),
                ("vigie YARA stage (b)", lambda th: vigie_yara(files, th)),
                ("vigie engine (c)", lambda th: vigie_engine(scanner, corpus, th)),
            ]
            if r % 2:
                stages.reverse()  # alternate which stage runs first
            for threads in (1, args.threads):
                for name, fn in stages:
                    record(name, threads, *fn(threads))
            print(f"  round {r + 1}/{rounds} done")
        print()
        print(f"{'stage':24s} {'threads':>7s} {'best s':>8s} {'median s':>9s} {'MB/s':>8s} "
              f"{'files/s':>8s} {'matched':>8s}")
        for (stage, threads), t in sorted(timings.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{stage:24s} {threads:7d} {t.best():8.2f} {t.median():9.2f} "
                  f"{corpus.bytes / MB / t.best():8.1f} {corpus.files / t.best():8.1f} "
                  f"{t.matched_files:8d}")
        results["timings"] = [asdict(t) for t in timings.values()]
        print()
        for threads in sorted({1, args.threads}):
            ta = timings[("yara CLI (a)", threads)]
            tb = timings[("vigie YARA stage (b)", threads)]
            a, b = ta.best(), tb.best()
            c = timings[("vigie engine (c)", threads)].best()
            # (a) and (b) run back to back in each round: the ratio within a round is
            # what the other people's load on the machine disturbs least.
            paired = sorted(x / y for x, y in zip(ta.seconds, tb.seconds, strict=True))
            ratio = statistics.median(paired)
            mbps = corpus.bytes / MB / c
            verdict = "OK" if ratio >= TARGET_YARA_RATIO else "MISSED"
            print(f"{threads} thread(s): YARA stage (b)/(a) throughput = {ratio:.2f} (median of "
                  f"the per-round ratios, range {paired[0]:.2f}-{paired[-1]:.2f}; best/best "
                  f"{a / b:.2f}) (target ≥ {TARGET_YARA_RATIO:.2f}: {verdict})"
                  f"; whole engine (c) = {mbps:.1f} MB/s (target ≥ {TARGET_ENGINE_MBPS:.0f}: "
                  f"{'OK' if mbps >= TARGET_ENGINE_MBPS else 'MISSED'}), engine/yara CLI = "
                  f"{a / c:.2f}")
            results[f"ratio_yara_{threads}"] = ratio
            results[f"ratio_yara_rounds_{threads}"] = paired
            results[f"engine_mbps_{threads}"] = mbps
        print("\nwhole engine, 1 thread, by kind of file (time inside Scanner.scan_path):")
        for kind, (count, nbytes, secs) in PER_KIND.items():
            print(f"  {kind:10s} {int(count):4d} files {nbytes / MB:8.1f} MB {secs:7.2f} s "
                  f"{nbytes / MB / max(secs, 1e-9):8.1f} MB/s")
        results["engine_by_kind"] = PER_KIND
        expected = corpus.by_kind.get("malicious", (0, 0))[0]
        print(f"malicious samples: {expected}; ordinary files flagged by the engine (false "
              f"positives): {len(FLAGGED_ORDINARY)}")
        for line in FLAGGED_ORDINARY[:20]:
            print(f"  {line}")
        results["false_positives"] = FLAGGED_ORDINARY
        if not args.no_bomb:
            print()
            small = tmp / "petit.zip"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("lisez-moi.txt", "bonjour\n" * 100)
            small.write_bytes(buf.getvalue())
            base = scan_in_child(small)
            print(f"baseline child (a small zip): peak RSS {base.get('maxrss_mb', 0):.0f} MB"
                  f" (after start-up {base.get('ready_mb', 0):.0f} MB)")
            results["bomb_baseline"] = base
            for lie in (False, True):
                t0 = time.perf_counter()
                bomb = tmp / ("sauvegarde-menteuse.zip" if lie else "sauvegarde.zip")
                expanded = write_bomb(bomb, lie=lie)
                how = ("headers lie (each member declared as small as its compressed data)"
                       if lie else "sizes declared truthfully")
                print(f"zip bomb, {how}: {bomb.stat().st_size / MB:.1f} MB expanding to "
                      f"{expanded / GIB:.0f} GiB, built in {time.perf_counter() - t0:.1f} s")
                res = scan_in_child(bomb)
                results["bomb_lying" if lie else "bomb"] = {
                    **res, "zip_bytes": bomb.stat().st_size, "expanded": expanded}
                bomb.unlink()
                if "error" in res:
                    print(f"  the child failed: {res['error']}")
                    continue
                rss_ok = "OK" if res["maxrss_mb"] < TARGET_BOMB_RSS_MB else "MISSED"
                time_ok = "OK" if res["seconds"] < TARGET_BOMB_S else "MISSED"
                print(f"  peak RSS {res['maxrss_mb']:.0f} MB (target < {TARGET_BOMB_RSS_MB:.0f}:"
                      f" {rss_ok}), {res['maxrss_mb'] - base.get('maxrss_mb', 0):+.0f} MB over "
                      f"the baseline; gave up after {res['seconds']:.2f} s (target < "
                      f"{TARGET_BOMB_S:.0f} s: {time_ok}), verdict {res['verdict']} "
                      f"{', '.join(res['symbols'])}; child wall time {res['wall']:.2f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
