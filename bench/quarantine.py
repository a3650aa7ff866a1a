"""Quarantine benchmark: durable hold throughput, digest build time, list query time.

Three parts, in one process, on the disk of the temporary folder (``--dir`` to pick
another): (1) holds of the same message one after the other and 8 at a time through
``SQLiteStore.hold`` (AES-GCM, blob fsync + rename + directory fsync, then a
``synchronous=FULL`` commit), against the baselines of the same run: a plain
``durable_write_file`` of the same bytes, and the former clear-text ``HoldFolder``;
(2) the digest of 1 000 held messages (listing, 4 000 tokens issued, text + HTML);
(3) the store's list query with 10 000 held messages (rows inserted directly: the
query reads no blob). Figures are printed, never asserted.
Run: ``python bench/quarantine.py [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.quarantine.folder import HoldFolder, durable_write_file
from gateway.quarantine.reasons import categorize, plain_reasons
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HoldMeta
from gateway.testing import config_for_tests, make_message


def message(size: int) -> bytes:
    body = ("Bonjour,\r\n" + "Ligne de texte ordinaire d'un courrier du cabinet.\r\n"
            * (size // 52))
    return make_message(subject="Compte rendu", body=body)


def meta(i: int) -> HoldMeta:
    symbols = ["PATIENT_DATA_WEBMAIL_HIGH", "PD_NIR"] if i % 3 else ["HYG_NO_MESSAGE_ID"]
    direction = "outbound" if i % 3 else "inbound"
    return HoldMeta(direction=direction, mail_from=f"sender{i % 50}@example.org",
                    rcpt_tos=[f"patient{i}@gmail.com"], mail_options=["BODY=8BITMIME"],
                    symbols=symbols, reasons=plain_reasons(symbols, direction),
                    category=categorize(symbols),
                    subject="Facture" if direction == "inbound" else None)


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def part_hold(root: Path, n: int, size: int) -> dict[str, float]:
    raw = message(size)
    cfg = config_for_tests(root / "hold")
    q = Quarantine.open(cfg)
    out: dict[str, float] = {"message_bytes": len(raw), "messages": n}
    try:
        base = root / "baseline"
        base.mkdir()

        async def plain() -> None:
            for i in range(n):
                await asyncio.to_thread(durable_write_file, base / f"m{i}", raw)

        folder = HoldFolder(root / "holdfolder")

        async def old_folder() -> None:
            for i in range(n):
                await asyncio.to_thread(folder.hold, f"Q{i}", raw, {"queue_id": f"Q{i}"})

        async def store_seq() -> None:
            for i in range(n):
                await q.store.hold(raw, meta(i))

        async def store_conc() -> None:
            sem = asyncio.Semaphore(8)

            async def one(i: int) -> None:
                async with sem:
                    await q.store.hold(raw, meta(i))

            await asyncio.gather(*(one(i) for i in range(n)))

        out["baseline_durable_write_per_s"] = n / await timed(plain)
        out["baseline_hold_folder_per_s"] = n / await timed(old_folder)
        out["store_sequential_per_s"] = n / await timed(store_seq)
        out["store_8_concurrent_per_s"] = n / await timed(store_conc)
    finally:
        q.close()
    return out


async def part_digest(root: Path, n: int) -> dict[str, float]:
    from gateway.quarantine import digest

    cfg = config_for_tests(root / "digest")
    cfg.digest.recipients = ["camille@cabinet-kine.fr"]
    cfg.digest.public_url = "https://vigie.cabinet-kine.fr"
    q = Quarantine.open(cfg)
    raw = message(2000)
    try:
        now = time.time()
        await asyncio.gather(*(q.store.hold(raw, meta(i)) for i in range(n)))
        list_only = await timed(lambda: q.store.list(limit=1000, since=now - 3600))
        runs = []
        size = 0
        for _ in range(3):
            start = time.perf_counter()
            d = await digest.build(q, cfg, since=now - 3600, until=time.time() + 1,
                                   max_lines=n)  # every line rendered
            runs.append(time.perf_counter() - start)
            size = len(d.html) + len(d.text)
            assert d.count == n
        mime = await timed(lambda: asyncio.to_thread(digest.as_message, d, cfg))
    finally:
        q.close()
    return {"held": n, "digest_build_s_median": statistics.median(runs),
            "digest_build_s_min": min(runs), "baseline_list_1000_s": list_only,
            "digest_chars": size, "mime_s": mime}


def fill_rows(q: Quarantine, n: int) -> None:
    now = time.time()

    def insert(conn: Any) -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO held (id, queue_id, received_at, direction, sender, sender_lower,"
            " rcpt_domains, subject, size, symbols, reasons, category)"
            " VALUES (?, '', ?, ?, ?, ?, '[\"gmail.com\"]', ?, 20000, '[\"PD_NIR\"]', '[]', ?)",
            [(f"ID{i:08d}", now - i * 60, "outbound" if i % 3 else "inbound",
              f"Sender{i % 500}@Example.org", f"sender{i % 500}@example.org",
              None if i % 3 else "Facture", "patient_data" if i % 3 else "spam")
             for i in range(n)])
        conn.execute("COMMIT")

    q.store.db.call(insert)


async def part_list(root: Path, n: int, repeat: int) -> dict[str, float]:
    cfg = config_for_tests(root / "list")
    q = Quarantine.open(cfg)
    out: dict[str, float] = {"held": n}
    try:
        fill_rows(q, n)
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "first_page_50": lambda: q.store.list(limit=50),
            "page_at_5000": lambda: q.store.list(limit=50, offset=5000),
            "inbound_only": lambda: q.store.list(direction="inbound", limit=50),
            "category_and_week": lambda: q.store.list(
                category="spam", since=time.time() - 7 * 86400, limit=50),
            "sender_search": lambda: q.store.list(sender_like="sender42@", limit=50),
            "stats_30_days": lambda: q.store.stats(time.time() - 30 * 86400),
            "get_one": lambda: q.store.get("ID00004242"),
        }
        # baseline: the round trip to the database thread alone
        baseline = [await timed(lambda: q.store.db.run(lambda c: c.execute("SELECT 1")))
                    for _ in range(repeat)]
        out["baseline_select_1_ms"] = statistics.median(baseline) * 1000
        for name, query in queries.items():
            await query()  # warm
            runs = [await timed(query) for _ in range(repeat)]
            out[f"{name}_ms"] = statistics.median(runs) * 1000
    finally:
        q.close()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n_hold = 100 if args.quick else 400
    results: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="vigie-bench-q-") as tmp:
        root = Path(tmp)
        h = await part_hold(root, n_hold, 20_000)
        results["hold"] = h
        print(f"hold: {n_hold} messages of {h['message_bytes'] / 1024:.0f} KiB, durable")
        print(f"  baseline durable_write_file    {h['baseline_durable_write_per_s']:8.0f} /s")
        print(f"  baseline HoldFolder (clear)    {h['baseline_hold_folder_per_s']:8.0f} /s")
        print(f"  store, one at a time           {h['store_sequential_per_s']:8.0f} /s  "
              f"(x{h['store_sequential_per_s'] / h['baseline_durable_write_per_s']:.2f} of "
              "the baseline)")
        print(f"  store, 8 at a time             {h['store_8_concurrent_per_s']:8.0f} /s  "
              f"(x{h['store_8_concurrent_per_s'] / h['baseline_durable_write_per_s']:.2f})")
        d = await part_digest(root, 200 if args.quick else 1000)
        results["digest"] = d
        print(f"digest of {d['held']} held messages: {d['digest_build_s_median'] * 1000:.0f} ms "
              f"median (min {d['digest_build_s_min'] * 1000:.0f} ms; listing them alone "
              f"{d['baseline_list_1000_s'] * 1000:.0f} ms; MIME {d['mime_s'] * 1000:.0f} ms; "
              f"{d['digest_chars'] / 1024:.0f} K characters)")
        lq = await part_list(root, 2000 if args.quick else 10_000, 10 if args.quick else 30)
        results["list"] = lq
        print(f"list query, {lq['held']} held (median, ms; baseline round trip "
              f"{lq['baseline_select_1_ms']:.2f} ms):")
        for key, value in lq.items():
            if key.endswith("_ms") and key != "baseline_select_1_ms":
                print(f"  {key[:-3]:24} {value:8.2f} ms")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dir", help="folder to work in (its disk is measured)")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
