"""Inbound path benchmark: messages/s through the inbound listener (SPF + DKIM + DMARC +
ARC + fake-confrère checks against a real DNS server) next to the submission path of
the same vigie process, in the same run, batches interleaved.

Processes: this one (the load client), vigie (``python -m gateway serve``), a discard
sink (the next hop of both paths) and dnsmasq serving the sender domain's SPF, DKIM and
DMARC records. Every inbound message is DKIM-signed beforehand (signing is not timed).
The submission path runs vigie's full default pipeline too (hygiene + patient data).
Figures are printed, never asserted. Run: ``python bench/inbound.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.relay_load import (  # noqa: E402
    PASSWORD,
    SENDER,
    USER,
    Batch,
    MessageFactory,
    Sink,
    free_port,
    make_sink_certificate,
    percentile,
    proc_cpu_seconds,
    run_batch,
    status_kb,
    wait_for_port,
)
from gateway.testing import DkimKey, Dnsmasq  # noqa: E402

SENDER_DOMAIN = SENDER.rpartition("@")[2]


class SignedFactory(MessageFactory):
    """The relay benchmark's messages, DKIM-signed by the sender domain (pre-made)."""

    def __init__(self, size: int, key: DkimKey, count: int) -> None:
        super().__init__(size)
        self.ready = [key.sign(super(SignedFactory, self).next()) for _ in range(count)]

    def next(self) -> bytes:
        return self.ready.pop() if self.ready else super().next()


@dataclass
class Vigie:
    proc: subprocess.Popen[bytes]
    port: int
    inbound_port: int
    cert: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_vigie(workdir: Path, sink_port: int, sink_cert: Path, dns_port: int) -> Vigie:
    port, tls_port, inbound_port = free_port(), free_port(), free_port()
    data = workdir / "data"
    conf = workdir / "vigie.toml"
    conf.write_text(
        '[server]\nhostname = "vigie.bench"\n'
        f'[submission]\nlisten = ["127.0.0.1:{port}"]\nlisten_tls = ["127.0.0.1:{tls_port}"]\n'
        '[auth]\nmode = "local"\nfailure_delay = 0.0\n'
        f'[upstream]\nhost = "127.0.0.1"\nport = {sink_port}\ntls = "starttls"\n'
        f'ca_file = "{sink_cert}"\n'
        f'[inbound]\nlisten = ["127.0.0.1:{inbound_port}"]\ndomains = ["example.org"]\n'
        f'mailbox_host = "127.0.0.1"\nmailbox_port = {sink_port}\n'
        f'mailbox_ca_file = "{sink_cert}"\n'
        f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_port}\ntimeout = 2.0\n'
        f'[storage]\ndata_dir = "{data}"\n[log]\nlevel = "warning"\n'
        '[web]\nlisten = ""\n', encoding="utf-8")
    env = dict(os.environ, MALLOC_ARENA_MAX="2", MALLOC_MMAP_THRESHOLD_="131072")
    cmd = [sys.executable, "-m", "gateway"]
    subprocess.run([*cmd, "user", "add", USER, "--password-stdin", "--config", str(conf)],
                   input=PASSWORD.encode() + b"\n", capture_output=True, check=True, env=env,
                   cwd=workdir)
    log = workdir / "vigie.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "serve", "--config", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=workdir)
    wait_for_port(port, proc, log)
    wait_for_port(inbound_port, proc, log)
    return Vigie(proc, port, inbound_port, data / "tls" / "selfsigned.crt", log)


def batch(path: str, vigie: Vigie, ctx: ssl.SSLContext, size: int, conc: int, count: int,
          key: DkimKey, rnd: int) -> tuple[Batch, float]:
    b = Batch("vigie", size, conc, rnd)
    factory: MessageFactory = (SignedFactory(size, key, count) if path == "inbound"
                               else MessageFactory(size))
    cpu: dict[str, float] = {}

    def ready() -> None:
        cpu["start"] = proc_cpu_seconds(vigie.proc.pid)

    def done() -> None:
        cpu["end"] = proc_cpu_seconds(vigie.proc.pid)

    port = vigie.inbound_port if path == "inbound" else vigie.port
    asyncio.run(run_batch(b, port, ctx, path == "submission", factory, count, ready, done))
    return b, (cpu["end"] - cpu["start"]) * 1000 / max(b.ok, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=300, help="per batch (default 300)")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=5 * 1024)
    p.add_argument("--quick", action="store_true", help="a short run")
    args = p.parse_args()
    if args.quick:
        args.messages, args.rounds = 60, 1
    if Dnsmasq.program() is None:
        print("dnsmasq is not installed (apt-get install dnsmasq-base)", file=sys.stderr)
        return 2
    key = DkimKey.generate(SENDER_DOMAIN, "bench")
    with tempfile.TemporaryDirectory(prefix="vigie-bench-inbound-") as tmp:
        work = Path(tmp)
        dns = Dnsmasq({SENDER_DOMAIN: [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
                       key.name: [("TXT", key.record)],
                       f"_dmarc.{SENDER_DOMAIN}": [("TXT", "v=DMARC1; p=reject")]},
                      workdir=work).start()
        cert, pkey = work / "sink.crt", work / "sink.key"
        make_sink_certificate(cert, pkey)
        sink = Sink(cert, pkey)
        vigie = start_vigie(work, sink.port, cert, dns.port)
        try:
            ctx = ssl.create_default_context(cafile=str(vigie.cert))
            for path in ("submission", "inbound"):  # warm-up, not counted
                batch(path, vigie, ctx, args.size, args.concurrency, args.concurrency, key, -1)
            results: dict[str, list[tuple[Batch, float]]] = {"submission": [], "inbound": []}
            for rnd in range(args.rounds):
                order = ("submission", "inbound") if rnd % 2 == 0 else ("inbound", "submission")
                for path in order:
                    b, cpu = batch(path, vigie, ctx, args.size, args.concurrency,
                                   args.messages, key, rnd)
                    results[path].append((b, cpu))
                    print(f"round {rnd + 1}/{args.rounds} {path:<10} {b.ok}/{b.attempted} ok "
                          f"{b.rate:7.1f} msg/s" + (f"  errors: {b.errors[:2]}" if b.errors
                                                    else ""), file=sys.stderr)
            peak = status_kb(vigie.proc.pid, "VmHWM") or 0
        finally:
            vigie.stop()
            sink.stop()
            dns.close()
        problems = [line for line in vigie.log.read_text(errors="replace").splitlines()
                    if line.startswith(("WARNING", "ERROR", "Traceback"))
                    and "auto-signé" not in line and "self-signed" not in line]
    print(f"\nvigie inbound vs submission, {args.size // 1024} KB, C={args.concurrency}, "
          f"{args.rounds} round(s) x {args.messages} messages, same vigie process")
    print(f"{'path':<11} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vigie CPU ms/msg':>17} "
          f"{'errors':>7}")
    rates = {}
    for path, runs in results.items():
        ok = sum(b.ok for b, _ in runs)
        secs = sum(b.elapsed_s for b, _ in runs)
        lat = [x for b, _ in runs for x in b.latencies_ms]
        cpu = sum(c * b.ok for b, c in runs) / max(ok, 1)
        rates[path] = ok / secs if secs else 0.0
        print(f"{path:<11} {rates[path]:8.1f} {percentile(lat, 50):8.1f} "
              f"{percentile(lat, 99):8.1f} {cpu:17.2f} {sum(len(b.errors) for b, _ in runs):7d}")
    ratio = rates["inbound"] / rates["submission"] if rates["submission"] else float("nan")
    print(f"ratio inbound / submission: {ratio:.2f} (inbound adds SPF, DKIM, DMARC, ARC and "
          "the fake-confrère checks; submission adds AUTH and the patient-data scan)")
    print(f"vigie peak RSS: {peak / 1024:.1f} MB")
    if problems:
        print("vigie log problems:\n  " + "\n  ".join(problems[:10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
