"""Console list page latency with many held messages, against baselines in the same run.

Fills a fresh quarantine (in a temporary folder) with N held messages through the
store's API (default 10 000; a third outbound), serves the console in this process
(aiohttp on loopback), logs a session in, then times, one request after another:

- ``static``: a trivial aiohttp handler returning a page of the same size (the
  cost of HTTP + aiohttp + the client, nothing of vigie);
- ``store``: the store's list query alone (``store.list(limit=50)``), no HTTP, and
  the same for the filtered and page-100 queries;
- ``console``: ``GET /messages`` (first page, 50 rows), then with a filter
  (``direction=inbound``) and deep in the list (page 100).

Prints p50 / p99 / mean in milliseconds and the ratios console / static and
console / store. Asserts nothing. Run: ``python bench/web.py [--count N] [--requests R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from aiohttp import web

from gateway.config import Config
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HoldMeta
from gateway.testing import config_for_tests, make_message
from gateway.users import UsersFile
from gateway.verdict import Reason
from gateway.web.app import Console
from gateway.web.quarantine_backend import QuarantineBackend
from gateway.web.security import COOKIE

CATEGORIES = ("patient_data", "impersonation", "attachment", "spam", "other")


def fill(q: Quarantine, count: int) -> float:
    """Hold ``count`` messages through the store's API; seconds taken."""
    start = time.perf_counter()
    now = time.time()

    def one(n: int) -> None:
        outbound = n % 3 == 0
        raw = make_message(sender=f"expediteur{n % 500}@example{n % 37}.org",
                           subject=f"Message {n}", body="Bonjour,\r\n" * 20)
        meta = HoldMeta(
            direction="outbound" if outbound else "inbound", mail_from=raw.split(b"\r\n")[0][6:]
            .decode(), rcpt_tos=[f"dest{n % 50}@cabinet{n % 7}.fr"], symbols=["BENCH"],
            reasons=[Reason("motif de test", "test reason")],
            category=CATEGORIES[n % len(CATEGORIES)],
            subject=None if outbound else f"Message {n}",
            received_at=now - (count - n) * 60)
        q.store.hold_sync(raw, meta)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - start


async def timed(fn: Callable[[], Awaitable[Any]], requests: int, warmup: int = 20
                ) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(requests):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "mean": statistics.fmean(ordered)}


async def run(cfg: Config, q: Quarantine, requests: int) -> dict[str, dict[str, float]]:
    users = UsersFile(cfg.users_file)
    if "bench" not in users.load():  # sessions end when their user is not a console admin
        users.add("bench", "bench-password-0123", admin=True)
    console = Console(cfg, QuarantineBackend(cfg, q, next_hop=_no_hop), users)
    app = console.app()
    page_size = [0]
    static_page = [b""]

    async def static(_: web.Request) -> web.Response:
        return web.Response(body=static_page[0], content_type="text/html")

    app.router.add_get("/bench-static", static)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    session = console.sessions.new("bench")
    session.seen = float("inf")  # never idle during the run
    results: dict[str, dict[str, float]] = {}
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            client.cookie_jar.update_cookies({COOKIE: session.sid})

            async def get(path: str) -> None:
                async with client.get(base + path, allow_redirects=False) as resp:
                    body = await resp.read()
                    assert resp.status == 200, (path, resp.status)
                    page_size[0] = len(body)

            await get("/messages")
            first_page = page_size[0]
            static_page[0] = b"x" * first_page
            results["static"] = summary(await timed(lambda: get("/bench-static"), requests))

            async def store_query() -> None:
                await q.store.list(status="held", limit=50)

            results["store"] = summary(await timed(store_query, requests))

            async def store_filter() -> None:
                await q.store.list(status="held", direction="inbound", limit=50)

            async def store_page100() -> None:
                await q.store.list(status="held", limit=50, offset=99 * 50)

            results["store_filter"] = summary(await timed(store_filter, requests))
            results["store_page100"] = summary(await timed(store_page100, requests))
            results["console"] = summary(await timed(lambda: get("/messages"), requests))
            results["console_filter"] = summary(
                await timed(lambda: get("/messages?direction=inbound"), requests))
            results["console_page100"] = summary(
                await timed(lambda: get("/messages?page=100"), requests))
            results["_page_bytes"] = {"p50": first_page, "p99": first_page,
                                      "mean": first_page}
    finally:
        await runner.cleanup()
    return results


async def _no_hop(direction: str) -> Any:
    raise RuntimeError("no release in the benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="held messages")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per case")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigie-bench-web-") as tmp:
        cfg = config_for_tests(Path(tmp) / "data")
        q = Quarantine.open(cfg)
        try:
            seconds = fill(q, args.count)
            print(f"vigie bench web — {platform.python_implementation()} "
                  f"{platform.python_version()}, {args.count} held messages filled in "
                  f"{seconds:.1f} s ({args.count / seconds:.0f}/s, 8 threads, durable)")
            results = asyncio.run(run(cfg, q, args.requests))
        finally:
            q.close()
    page = int(results.pop("_page_bytes")["p50"])
    print(f"\n{args.requests} sequential requests per case; list page = 50 rows, "
          f"{page / 1024:.0f} KiB of HTML\n")
    print(f"{'case':<18}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, figures in results.items():
        print(f"{name:<18}{figures['p50']:>10.2f}{figures['p99']:>10.2f}"
              f"{figures['mean']:>10.2f}")
    console, static, store = results["console"], results["static"], results["store"]
    print(f"\nratio console / static page (p50): {console['p50'] / static['p50']:.1f}x; "
          f"p99: {console['p99'] / static['p99']:.1f}x")
    print(f"ratio console / store query alone (p50): {console['p50'] / store['p50']:.1f}x; "
          f"p99: {console['p99'] / store['p99']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"count": args.count, "requests": args.requests,
                                               "page_bytes": page, **results}, indent=2))


if __name__ == "__main__":
    main()
