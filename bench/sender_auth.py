"""Sender authentication benchmark: the SPF + DKIM + ARC + DMARC verdict's latency.

A real DNS server (dnsmasq on a loopback port, ``gateway.testing.Dnsmasq``) serves
SPF, DKIM (RSA 2048, split TXT strings) and DMARC records made at start. Messages of
a few kinds (all pass, DKIM fail, no DMARC record, ed25519) go one at a time through
``gateway.detect.auth.authenticate`` with the real ``DnsPythonResolver`` (no cache:
every message asks DNS again), and, as baselines measured in the same run,
interleaved: the same verdict with DKIM hashing always in a worker thread
(``thread_above=0``, to show what the thread hop costs), dkimpy's plain
``dkim.verify()`` (first signature only, synchronous dnspython against the same
server) and our SPF evaluation alone. Prints p50/p99 per kind and path and the
ratios; asserts nothing.
Run: ``python bench/sender_auth.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dkim
import dns.rdatatype
import dns.resolver

from gateway.detect.auth import authenticate
from gateway.detect.spf import check_mail_from
from gateway.dns import DnsPythonResolver
from gateway.testing import DkimKey, Dnsmasq, make_message

IP = "192.0.2.25"
KINDS = ("all pass", "dkim fail", "no dmarc", "ed25519 pass")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def build(n: int) -> tuple[dict[str, list[tuple[str, str | tuple[int, str]]]],
                           dict[str, list[tuple[bytes, str]]]]:
    """The DNS zone and, per kind, ``n`` messages with their MAIL FROM."""
    rsa = DkimKey.generate("pass.example", "rsa2048")
    ed = DkimKey.generate("pass.example", "ed", algorithm="ed25519-sha256")
    nod = DkimKey.generate("nodmarc.example", "k1")
    zone: dict[str, list[tuple[str, str | tuple[int, str]]]] = {
        "pass.example": [("TXT", f"v=spf1 ip4:{IP} -all")],
        "_dmarc.pass.example": [("TXT", "v=DMARC1; p=reject; rua=mailto:d@pass.example")],
        "nodmarc.example": [("TXT", f"v=spf1 ip4:{IP} ~all")],
        rsa.name: [("TXT", rsa.record)], ed.name: [("TXT", ed.record)],
        nod.name: [("TXT", nod.record)],
    }
    messages: dict[str, list[tuple[bytes, str]]] = {k: [] for k in KINDS}
    for i in range(n):
        body = f"Bonjour,\r\nmessage {i} du banc d'essai.\r\n" + "Ligne de texte.\r\n" * 40
        base = make_message(sender=f"cabinet{i}@pass.example", body=body)
        messages["all pass"].append((rsa.sign(base), f"bounce{i}@pass.example"))
        messages["dkim fail"].append((rsa.sign(base).replace(b"message ", b"massage "),
                                      f"bounce{i}@pass.example"))
        other = make_message(sender=f"news{i}@nodmarc.example", body=body)
        messages["no dmarc"].append((nod.sign(other), f"bounce{i}@nodmarc.example"))
        messages["ed25519 pass"].append((ed.sign(base), f"bounce{i}@pass.example"))
    return zone, messages


def sync_dnsfunc(server: Dnsmasq) -> Callable[..., bytes | None]:
    """dkimpy's own dnspython lookup, pointed at our server."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = server.port
    res.lifetime = 2.0

    def get_txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = res.resolve(qname, dns.rdatatype.TXT, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    return get_txt


async def run(args: argparse.Namespace) -> int:
    if Dnsmasq.program() is None:
        print("dnsmasq is not installed (apt-get install dnsmasq-base)", file=sys.stderr)
        return 2
    n = args.messages or (40 if args.quick else 200)
    rounds = args.rounds or (2 if args.quick else 3)
    zone, messages = build(n)
    print(f"sender_auth bench: {n} messages per kind, {rounds} rounds, "
          f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    with Dnsmasq(zone) as server:
        resolver = DnsPythonResolver(server.dns_config(timeout=2.0))
        dnsfunc = sync_dnsfunc(server)
        paths: dict[str, Callable[[bytes, str], Awaitable[object]]] = {}

        async def full(raw: bytes, mail_from: str) -> object:
            return await authenticate(raw, mail_from=mail_from, helo="mx.pass.example",
                                      client_ip=IP, resolver=resolver,
                                      authserv_id="vigie.bench")

        async def full_threaded(raw: bytes, mail_from: str) -> object:
            return await authenticate(raw, mail_from=mail_from, helo="mx.pass.example",
                                      client_ip=IP, resolver=resolver,
                                      authserv_id="vigie.bench", thread_above=0)

        async def dkimpy_plain(raw: bytes, mail_from: str) -> object:
            return dkim.verify(raw, dnsfunc=dnsfunc)

        async def spf_alone(raw: bytes, mail_from: str) -> object:
            return await check_mail_from(IP, mail_from, "mx.pass.example", resolver)

        paths = {"full verdict": full, "full, thread": full_threaded,
                 "dkimpy verify()": dkimpy_plain, "SPF alone": spf_alone}
        # warm-up (imports, PSL load, first sockets), and a correctness check
        verdict = await authenticate(messages["all pass"][0][0],
                                     mail_from=messages["all pass"][0][1], helo="mx.pass.example",
                                     client_ip=IP, resolver=resolver, authserv_id="vigie.bench")
        print(f"check: {verdict.authentication_results}")
        for kind in KINDS:
            for path in paths.values():
                await path(*messages[kind][0])
        latencies: dict[tuple[str, str], list[float]] = {
            (k, p): [] for k in KINDS for p in paths}
        for round_no in range(rounds):
            order = list(paths) if round_no % 2 == 0 else list(reversed(paths))
            for kind in KINDS:
                for raw, mail_from in messages[kind]:
                    for name in order:
                        start = time.perf_counter()
                        await paths[name](raw, mail_from)
                        latencies[(kind, name)].append((time.perf_counter() - start) * 1000)

        # throughput of the full verdict with concurrent messages (one event loop)
        batch = [m for kind in KINDS for m in messages[kind]]
        start = time.perf_counter()
        sem = asyncio.Semaphore(args.concurrency)

        async def one(raw: bytes, mail_from: str) -> None:
            async with sem:
                await full(raw, mail_from)

        await asyncio.gather(*(one(r, m) for r, m in batch))
        throughput = len(batch) / (time.perf_counter() - start)

    print()
    header = f"{'kind':<14} {'path':<17} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for kind in KINDS:
        for name in paths:
            data = latencies[(kind, name)]
            print(f"{kind:<14} {name:<17} {len(data):>5} {percentile(data, 50):>8.2f} "
                  f"{percentile(data, 99):>8.2f}")
        full_p50 = percentile(latencies[(kind, "full verdict")], 50)
        base_p50 = percentile(latencies[(kind, "dkimpy verify()")], 50)
        spf_p50 = percentile(latencies[(kind, "SPF alone")], 50)
        thread_p50 = percentile(latencies[(kind, "full, thread")], 50)
        print(f"{'':<14} ratio p50 full/dkimpy {full_p50 / base_p50:.2f}, "
              f"full/SPF {full_p50 / spf_p50:.2f}, full thread/inline "
              f"{thread_p50 / full_p50:.2f}")
    print(f"\nfull verdict, {args.concurrency} concurrent messages: {throughput:.0f} msg/s "
          f"({len(batch)} messages)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="smaller run, about 15 s")
    parser.add_argument("--messages", type=int, help="messages per kind (default 200, quick 40)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 2)")
    parser.add_argument("--concurrency", type=int, default=10)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
