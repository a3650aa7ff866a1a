"""Submission relay load benchmark: N messages over C connections through vigie vs direct.

Three processes: this one (the load client, asyncio + aiosmtplib), vigie
(``python -m gateway serve``) and a discard sink (aiosmtpd, STARTTLS offered).
The same client sends the same load to the sink directly and through vigie,
batches interleaved round by round, and prints ratios. Not a test: targets
are printed beside the figures, never asserted. Run: ``python bench/relay_load.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import aiosmtplib

Route = Literal["direct", "vigie"]
PATHS: tuple[Route, ...] = ("direct", "vigie")

KIB = 1024
TARGET_RATIO = 0.50  # vigie throughput >= 50 % of direct, at the default concurrency
TARGET_P99_ADDED_MS = 30.0  # added p99 latency for small (5 KB) messages
TARGET_RSS_MB = 120.0  # peak resident memory of the vigie process
SMALL_SIZE_LIMIT = 64 * KIB  # the latency target applies to sizes up to this
NOISY_CORES = 0.25  # CPU used by foreign processes during a batch that makes it suspect

USER = "bench"
PASSWORD = "bench-password-0123"  # only ever written to a temporary users file
SENDER = "bench@vigie.bench"
RECIPIENT = "sink@example.org"
CLIENT_HELO = "client.bench"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // KIB


# --- small helpers ----------------------------------------------------------

def free_port() -> int:
    """A port the kernel just handed out (tiny race before vigie binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log_path: Path,
                  timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vigie exited with code {proc.returncode} before listening:\n"
                             + log_path.read_text(errors="replace")[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"vigie did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, irq + softirq) jiffies summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]] + [0] * 8
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total, values[5] + values[6]


def status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` line of /proc/PID/status (VmHWM, VmRSS), None when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("b")
    mult = {"k": KIB, "m": KIB * KIB}.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in ("k", "m") else t
    value = int(float(number) * mult)
    if value < 1 * KIB:
        raise argparse.ArgumentTypeError(f"size too small: {text} (minimum 1k)")
    return value


def size_label(size: int) -> str:
    if size % (KIB * KIB) == 0:
        return f"{size // (KIB * KIB)} MB"
    if size % KIB == 0:
        return f"{size // KIB} KB"
    return f"{size} B"


# --- messages ---------------------------------------------------------------

# Neutral filler (lorem ipsum): no health vocabulary, so content checks have nothing to
# report and every message takes the plain "deliver" path.
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
          "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore",
          "magna", "aliqua", "enim", "ad", "minim", "veniam", "quis", "nostrud")


def make_body(size: int, header_len: int, seed: int = 1) -> bytes:
    """ASCII text/plain lines (<= 78 octets with CRLF) so the message is ``size`` octets."""
    rng = random.Random(seed)
    words = list(_WORDS)
    want = max(size - header_len, 2)
    lines: list[bytes] = []
    total = 0
    while total < want:
        line = ""
        while len(line) < 60:
            line += rng.choice(words) + " "
        raw = line.rstrip().encode("ascii")[: 76] + b"\r\n"
        room = want - total
        if room < len(raw):
            raw = b"x" * max(room - 2, 0) + b"\r\n" if room >= 2 else b""
            if not raw:
                break
        lines.append(raw)
        total += len(raw)
    return b"".join(lines)


class MessageFactory:
    """Well-formed MIME text/plain messages of an exact size, unique Message-ID each."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._counter = 0
        self.body = make_body(size, len(self._header(0)))

    def _header(self, n: int) -> bytes:
        return (
            f"From: Cabinet Bench <{SENDER}>\r\n"
            f"To: <{RECIPIENT}>\r\n"
            f"Date: {formatdate(localtime=False)}\r\n"
            f"Message-ID: <bench.{os.getpid()}.{n:08d}@vigie.bench>\r\n"
            f"Subject: vigie relay benchmark {n:08d} ({size_label(self.size)})\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
        ).encode("ascii")

    def next(self) -> bytes:
        self._counter += 1
        return self._header(self._counter) + self.body


# --- the sink (separate process) -------------------------------------------

def make_sink_certificate(cert_path: Path, key_path: Path) -> None:
    """Self-signed server certificate for 127.0.0.1 / localhost (the bench's own, so the
    bench does not depend on gateway internals)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def sink_main(conn: Connection, cert: str, key: str) -> None:
    """Discard SMTP server with optional STARTTLS; reports (messages, octets) on request."""
    from aiosmtpd.smtp import SMTP

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us over the pipe
    counts = [0, 0]

    class Discard:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counts[0] += 1
            counts[1] += len(envelope.original_content or b"")
            return "250 2.0.0 OK discarded"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        handler = Discard()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench", ident="bench sink",
                         tls_context=ctx, require_starttls=False, enable_SMTPUTF8=True,
                         data_size_limit=64 * KIB * KIB, timeout=120),
            "127.0.0.1", 0)
        stop = asyncio.Event()

        def control() -> None:
            while True:
                try:
                    cmd = conn.recv()
                except EOFError:
                    cmd = "stop"
                if cmd == "count":
                    conn.send((counts[0], counts[1]))
                    continue
                loop.call_soon_threadsafe(stop.set)
                return

        conn.send(server.sockets[0].getsockname()[1])
        threading.Thread(target=control, daemon=True).start()
        await stop.wait()
        server.close()

    asyncio.run(serve())


class Sink:
    def __init__(self, cert: Path, key: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=sink_main, args=(child, str(cert), str(key)),
                                name="bench-sink", daemon=True)
        self.proc.start()
        child.close()
        if not self._conn.poll(30):
            raise SystemExit("the sink did not start within 30 s")
        self.port: int = self._conn.recv()
        assert self.proc.pid is not None
        self.pid: int = self.proc.pid

    def counts(self) -> tuple[int, int]:
        self._conn.send("count")
        got: tuple[int, int] = self._conn.recv()
        return got

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# --- vigie (separate process) -----------------------------------------------

class Vigie:
    def __init__(self, workdir: Path, sink_port: int, sink_cert: Path, upstream_tls: str,
                 log_level: str, *, upstream_ca: str = "file", profile: str | None = None,
                 src: Path | None = None) -> None:
        self.port = free_port()
        self.tls_port = free_port()
        self.data_dir = workdir / "data"
        self.config = workdir / "vigie.toml"
        self.log_path = workdir / "vigie.log"
        ca = ""
        if upstream_tls != "none":
            # "system": no ca_file, so vigie loads the system CA store for each upstream
            # session as it does with a public-CA smarthost; verify = false only because
            # the sink's certificate is self-signed.
            ca = (f'ca_file = "{sink_cert}"\n' if upstream_ca == "file"
                  else "verify = false\n")
        # cwd = workdir: `python -m` puts the cwd first on sys.path, and the cwd may be a
        # checkout other than the one wanted.
        env = dict(os.environ)
        # as deploy/vigie.service runs it: fewer malloc arenas for the worker threads,
        # big buffers returned to the system when freed
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
        rules = ""
        if src is not None:  # vigie from another tree (e.g. a `git archive` of a commit)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(src), *filter(None, [env.get("PYTHONPATH")])])
            if (src / "rules").is_dir():
                rules = f'[rules]\ndir = "{src / "rules"}"\n'
        # no web console (a `make run` may hold its port); older trees have no [web]
        no_console = ('[web]\nlisten = ""\n'
                      if src is None or (src / "gateway" / "web").is_dir() else "")
        self.config.write_text(
            "[server]\n"
            'hostname = "vigie.bench"\n'
            "[submission]\n"
            f'listen = ["127.0.0.1:{self.port}"]\n'
            f'listen_tls = ["127.0.0.1:{self.tls_port}"]\n'
            "[auth]\n"
            'mode = "local"\n'
            "failure_delay = 0.0\n"
            "[upstream]\n"
            'host = "127.0.0.1"\n'
            f"port = {sink_port}\n"
            f'tls = "{upstream_tls}"\n'
            f"{ca}"
            "[storage]\n"
            f'data_dir = "{self.data_dir}"\n'
            "[log]\n"
            f'level = "{log_level}"\n'
            f"{no_console}"
            f"{rules}",
            encoding="utf-8")
        cmd = [sys.executable, "-m", "gateway"]
        add = subprocess.run([*cmd, "user", "add", USER, "--password-stdin", "--config",
                              str(self.config)], input=PASSWORD + "\n", text=True,
                             capture_output=True, check=False, env=env,
                             cwd=workdir)
        if add.returncode != 0:
            raise SystemExit(f"vigie user add failed ({add.returncode}):\n{add.stderr}")
        self._log = self.log_path.open("wb")
        # Under cProfile (main thread only) when asked; the stats are written at SIGTERM.
        prof = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "gateway"]
        self.proc = subprocess.Popen([*(prof if profile else cmd), "serve", "--config",
                                      str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     cwd=workdir)
        self.pid = self.proc.pid
        wait_for_port(self.port, self.proc, self.log_path)
        self.cert = self.data_dir / "tls" / "selfsigned.crt"
        if not self.cert.is_file():
            raise SystemExit(f"vigie did not create its certificate {self.cert}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_problems(self) -> list[str]:
        """Warning/error lines and tracebacks from vigie's output (known noise removed)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "self-signed" in line or "auto-signé" in line:
                continue
            if line.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback")) or (
                    "Error" in line and not line.startswith(("vigie ", "INFO", "DEBUG"))):
                out.append(line)
        return out


# --- the load client ---------------------------------------------------------

@dataclass
class Probe:
    """What is read around a batch: CPU time of each process and of the machine."""

    wall: float
    client_cpu: float
    vigie_cpu: float
    sink_cpu: float
    busy: int
    total: int
    irq: int

    @classmethod
    def take(cls, vigie_pid: int, sink_pid: int) -> Probe:
        busy, total, irq = machine_ticks()
        return cls(time.perf_counter(), time.process_time(), proc_cpu_seconds(vigie_pid),
                   proc_cpu_seconds(sink_pid), busy, total, irq)


@dataclass
class Batch:
    path: Route
    size: int
    concurrency: int
    round: int
    attempted: int = 0
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    setup_s: float = 0.0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # first message of each connection
    client_cpu_s: float = 0.0
    vigie_cpu_s: float = 0.0
    sink_cpu_s: float = 0.0
    machine_busy: float = 0.0  # fraction of all CPUs busy during the transfer phase
    other_cores: float = 0.0  # CPUs used by anything but client, vigie, sink, interrupts
    sink_received: int = 0
    sink_octets: int = 0
    vigie_rss_setup_kb: int | None = None
    vigie_rss_transfer_kb: int | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


def describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.code} {exc.message.splitlines()[0][:120]}"
    return f"{type(exc).__name__} {str(exc)[:120]}"


async def _open(port: int, ctx: ssl.SSLContext, login: bool) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=ctx,
                           local_hostname=CLIENT_HELO, timeout=120)
    await smtp.connect()
    if login:
        await smtp.login(USER, PASSWORD)
    return smtp


async def run_batch(batch: Batch, port: int, ctx: ssl.SSLContext, login: bool,
                    factory: MessageFactory, count: int,
                    on_ready: Callable[[], None], on_done: Callable[[], None]) -> None:
    """C connections: EHLO, STARTTLS, EHLO, [AUTH] first; then each sends its share."""
    conc = max(1, min(batch.concurrency, count))
    shares = [count // conc + (1 if i < count % conc else 0) for i in range(conc)]
    t_setup = time.perf_counter()
    opened = await asyncio.gather(*(_open(port, ctx, login) for _ in range(conc)),
                                  return_exceptions=True)
    conns: list[aiosmtplib.SMTP] = []
    for item in opened:
        if isinstance(item, BaseException):
            batch.errors.append("connect/auth: " + describe(item))
        else:
            conns.append(item)
    batch.setup_s = time.perf_counter() - t_setup
    on_ready()
    start = time.perf_counter()

    async def worker(smtp: aiosmtplib.SMTP, share: int) -> aiosmtplib.SMTP:
        for index in range(share):
            msg = factory.next()
            batch.attempted += 1
            t0 = time.perf_counter()
            try:
                # MAIL / RCPT / DATA by hand: sendmail() would copy and rescan the message.
                await smtp.mail(SENDER, options=[f"SIZE={len(msg)}"])
                await smtp.rcpt(RECIPIENT)
                await smtp.data(msg)
            except (aiosmtplib.SMTPException, OSError) as exc:
                batch.errors.append(describe(exc))
                if smtp.is_connected:
                    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                        await smtp.rset()
                else:
                    try:
                        smtp = await _open(port, ctx, login)
                    except (aiosmtplib.SMTPException, OSError) as exc2:
                        batch.errors.append("reconnect: " + describe(exc2))
                        return smtp
                continue
            took = (time.perf_counter() - t0) * 1000
            batch.latencies_ms.append(took)
            if index == 0:
                batch.first_ms.append(took)
            batch.ok += 1
        return smtp

    finished = await asyncio.gather(*(worker(s, n) for s, n in zip(conns, shares, strict=False)))
    batch.elapsed_s = time.perf_counter() - start
    on_done()
    for smtp in finished:
        if smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
        smtp.close()


# --- orchestration -----------------------------------------------------------

@dataclass
class Setup:
    vigie: Vigie
    sink: Sink
    ctx: dict[Route, ssl.SSLContext]
    peak_rss_kb: int = 0
    rss_reset_works: bool = True


def measure(setup: Setup, path: Route, size: int, conc: int, count: int, rnd: int
            ) -> Batch:
    """One batch on one path, with CPU, RSS and sink accounting around it."""
    vigie, sink = setup.vigie, setup.sink
    batch = Batch(path, size, conc, rnd)
    before_recv, before_oct = sink.counts()
    marks: dict[str, Probe] = {}

    if path == "vigie":
        setup.peak_rss_kb = max(setup.peak_rss_kb, status_kb(vigie.pid, "VmHWM") or 0)
        setup.rss_reset_works = reset_peak_rss(vigie.pid) and setup.rss_reset_works

    def ready() -> None:
        if path == "vigie":
            batch.vigie_rss_setup_kb = status_kb(vigie.pid, "VmHWM")
            setup.peak_rss_kb = max(setup.peak_rss_kb, batch.vigie_rss_setup_kb or 0)
            reset_peak_rss(vigie.pid)
        marks["start"] = Probe.take(vigie.pid, sink.pid)

    def done() -> None:
        marks["end"] = Probe.take(vigie.pid, sink.pid)
        if path == "vigie":
            batch.vigie_rss_transfer_kb = status_kb(vigie.pid, "VmHWM")
            setup.peak_rss_kb = max(setup.peak_rss_kb, batch.vigie_rss_transfer_kb or 0)

    port = vigie.port if path == "vigie" else sink.port
    factory = MessageFactory(size)
    asyncio.run(run_batch(batch, port, setup.ctx[path], path == "vigie", factory, count,
                          ready, done))
    a, b = marks["start"], marks["end"]
    batch.client_cpu_s = b.client_cpu - a.client_cpu
    batch.vigie_cpu_s = b.vigie_cpu - a.vigie_cpu
    batch.sink_cpu_s = b.sink_cpu - a.sink_cpu
    batch.machine_busy = (b.busy - a.busy) / max(b.total - a.total, 1)
    # Interrupt time (loopback TCP runs in softirq) is the benchmark's own too.
    own = batch.client_cpu_s + batch.vigie_cpu_s + batch.sink_cpu_s + (b.irq - a.irq) / CLK_TCK
    busy_s = (b.busy - a.busy) / CLK_TCK
    batch.other_cores = max(0.0, busy_s - own) / max(b.wall - a.wall, 1e-6)
    after_recv, after_oct = sink.counts()
    batch.sink_received = after_recv - before_recv
    batch.sink_octets = after_oct - before_oct
    return batch


@dataclass
class Scenario:
    size: int
    concurrency: int
    messages: int


@dataclass
class PathStats:
    messages: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    first_p50_ms: float
    cpu_ms_per_msg: dict[str, float]
    machine_busy: float
    other_cores: float
    setup_s: float


def path_stats(batches: list[Batch]) -> PathStats:
    ok = sum(b.ok for b in batches)
    secs = sum(b.elapsed_s for b in batches)
    lat = [x for b in batches for x in b.latencies_ms]
    per = max(ok, 1)
    cpu = {
        "client": 1000 * sum(b.client_cpu_s for b in batches) / per,
        "vigie": 1000 * sum(b.vigie_cpu_s for b in batches) / per,
        "sink": 1000 * sum(b.sink_cpu_s for b in batches) / per,
    }
    busy = sum(b.machine_busy * b.elapsed_s for b in batches) / secs if secs else 0.0
    other = sum(b.other_cores * b.elapsed_s for b in batches) / secs if secs else 0.0
    first = [x for b in batches for x in b.first_ms]
    return PathStats(ok, secs, ok / secs if secs else 0.0, percentile(lat, 50),
                     percentile(lat, 99), percentile(first, 50), cpu, busy, other,
                     sum(b.setup_s for b in batches) / max(len(batches), 1))


def run_all(args: argparse.Namespace, scenarios: list[Scenario], workdir: Path
            ) -> dict[str, Any]:
    sink_cert, sink_key = workdir / "sink.crt", workdir / "sink.key"
    make_sink_certificate(sink_cert, sink_key)
    sink = Sink(sink_cert, sink_key)
    vigie: Vigie | None = None
    try:
        vigie = Vigie(workdir, sink.port, sink_cert, args.upstream_tls, args.vigie_log_level,
                      upstream_ca=args.upstream_ca,
                      profile=args.profile_vigie, src=args.vigie_src)
        ctx: dict[Route, ssl.SSLContext] = {
            "direct": ssl.create_default_context(cafile=str(sink_cert)),
            "vigie": ssl.create_default_context(cafile=str(vigie.cert)),
        }
        setup = Setup(vigie, sink, ctx)
        status = (f"vigie pid {vigie.pid} on 127.0.0.1:{vigie.port}, sink pid {sink.pid} on "
                  f"127.0.0.1:{sink.port}, client pid {os.getpid()}")
        log(status)
        startup_rss = status_kb(vigie.pid, "VmHWM")

        # Warm-up (not counted): imports, first TLS handshakes, first upstream sessions.
        for sc in scenarios:
            for path in PATHS:
                measure(setup, path, sc.size, sc.concurrency, min(sc.messages, sc.concurrency),
                        -1)
        batches: list[Batch] = []
        for rnd in range(args.rounds):
            for i, sc in enumerate(scenarios):
                order = PATHS if (rnd + i) % 2 == 0 else PATHS[::-1]
                for path in order:
                    b = measure(setup, path, sc.size, sc.concurrency, sc.messages, rnd)
                    batches.append(b)
                    log(f"round {rnd + 1}/{args.rounds} {size_label(sc.size):>7} "
                        f"C={sc.concurrency:<3} {path:<6} {b.ok:>4}/{b.attempted} ok "
                        f"{b.rate:8.1f} msg/s  setup {b.setup_s * 1000:6.0f} ms"
                        + (f"  {len(b.errors)} error(s)" if b.errors else ""))
                    if not vigie.alive():
                        raise SystemExit("vigie died during the benchmark:\n"
                                         + vigie.log_path.read_text(errors="replace")[-3000:])
        setup.peak_rss_kb = max(setup.peak_rss_kb, status_kb(vigie.pid, "VmHWM") or 0)
        final_rss = status_kb(vigie.pid, "VmRSS")
    finally:
        rc = vigie.stop() if vigie is not None else None
        sink.stop()
    problems = vigie.log_problems()
    return summarize(args, scenarios, batches, setup, startup_rss, final_rss, rc, problems)


def summarize(args: argparse.Namespace, scenarios: list[Scenario], batches: list[Batch],
              setup: Setup, startup_rss: int | None, final_rss: int | None, rc: int | None,
              problems: list[str]) -> dict[str, Any]:
    results = []
    for sc in scenarios:
        mine = [b for b in batches if b.size == sc.size and b.concurrency == sc.concurrency]
        stats = {p: path_stats([b for b in mine if b.path == p]) for p in PATHS}
        ratios = []
        clean: list[Batch] = []  # rounds where neither batch was disturbed by other work
        for rnd in range(args.rounds):
            pair = {b.path: b for b in mine if b.round == rnd}
            if len(pair) == 2 and pair["direct"].rate > 0:
                ratios.append(pair["vigie"].rate / pair["direct"].rate)
                if all(b.other_cores <= NOISY_CORES for b in pair.values()):
                    clean.extend(pair.values())
        clean_rate = {p: path_stats([b for b in clean if b.path == p]).rate for p in PATHS}
        clean_ratio = (clean_rate["vigie"] / clean_rate["direct"]
                       if clean and clean_rate["direct"] else None)
        d, v = stats["direct"], stats["vigie"]
        ratio = v.rate / d.rate if d.rate else 0.0
        added50, added99 = v.p50_ms - d.p50_ms, v.p99_ms - d.p99_ms
        targets: dict[str, Any] = {}
        if sc.concurrency == args.concurrency:
            targets["ratio"] = {"target": f">= {TARGET_RATIO:.2f}", "ok": ratio >= TARGET_RATIO}
        if sc.size <= SMALL_SIZE_LIMIT:
            targets["added_p99_ms"] = {"target": f"< {TARGET_P99_ADDED_MS:g}",
                                       "ok": added99 < TARGET_P99_ADDED_MS}
        rss_setup = [b.vigie_rss_setup_kb for b in mine if b.vigie_rss_setup_kb]
        rss_xfer = [b.vigie_rss_transfer_kb for b in mine if b.vigie_rss_transfer_kb]
        results.append({
            "size": sc.size, "size_label": size_label(sc.size), "concurrency": sc.concurrency,
            "messages_per_batch": sc.messages,
            "direct": asdict(d), "vigie": asdict(v),
            "ratio": ratio, "ratio_per_round": ratios,
            "ratio_clean_rounds": clean_ratio, "clean_rounds": len(clean) // 2,
            "added_p50_ms": added50, "added_p99_ms": added99,
            "vigie_peak_rss_kb_auth_phase": max(rss_setup, default=None),
            "vigie_peak_rss_kb_transfer_phase": max(rss_xfer, default=None),
            "targets": targets,
        })
    lost = []
    for b in batches:
        if b.sink_received != b.ok:
            lost.append(f"{b.path} {size_label(b.size)} C={b.concurrency} round {b.round + 1}:"
                        f" client got {b.ok} x 250, sink counted {b.sink_received}")
    errors: dict[str, int] = {}
    for b in batches:
        for e in b.errors:
            key = f"{b.path}: {e}"
            errors[key] = errors.get(key, 0) + 1
    peak_mb = setup.peak_rss_kb / KIB
    per_batch = [{k: v for k, v in asdict(b).items() if k not in ("latencies_ms", "first_ms")}
                 | {"rate": b.rate} for b in batches]
    return {
        "meta": {
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            "aiosmtpd": metadata.version("aiosmtpd"),
            "aiosmtplib": metadata.version("aiosmtplib"),
            "vigie": metadata.version("vigie"),
            "rounds": args.rounds, "upstream_tls": args.upstream_tls,
            "upstream_ca": args.upstream_ca,
            "vigie_log_level": args.vigie_log_level, "quick": args.quick,
            "source": source_state(args.vigie_src),
        },
        "results": results,
        "batches": per_batch,
        "vigie_rss": {
            "startup_kb": startup_rss, "peak_kb": setup.peak_rss_kb, "final_kb": final_rss,
            "peak_reset_supported": setup.rss_reset_works,
            "target": f"< {TARGET_RSS_MB:g} MB", "ok": peak_mb < TARGET_RSS_MB,
        },
        "checks": {
            "sink_mismatches": lost, "client_errors": errors,
            "vigie_exit_code": rc, "vigie_log_problems": problems,
        },
    }


# --- report ---------------------------------------------------------------------

def source_state(src: Path | None) -> dict[str, Any]:
    """Where vigie's code comes from: folder, git commit and uncommitted files (if any)."""
    if src is not None:
        root = src.resolve()
    else:
        spec = importlib.util.find_spec("gateway")  # found, not imported: vigie runs apart
        if spec is None or spec.origin is None:
            return {"path": None, "commit": None, "uncommitted": []}
        root = Path(spec.origin).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "gateway", "rules"], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return {"path": str(root), "commit": None, "uncommitted": []}
    return {"path": str(root), "commit": head,
            "uncommitted": [d[3:] for d in dirty if d.strip()]}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def render(report: dict[str, Any]) -> str:
    m = report["meta"]
    out = [
        f"vigie {m['vigie']} relay benchmark — {m['cpus']} CPU(s), Python {m['python']}, "
        f"aiosmtpd {m['aiosmtpd']}, aiosmtplib {m['aiosmtplib']}",
        f"rounds: {m['rounds']} (direct and vigie batches interleaved), upstream TLS "
        f"(vigie -> sink): {m['upstream_tls']}"
        + (f" (CA: {m['upstream_ca']})" if m["upstream_tls"] != "none" else "")
        + f", vigie log level: {m['vigie_log_level']}",
        f"vigie source: {m['source']['path']}, commit {m['source']['commit'] or '?'}"
        + (f" + {len(m['source']['uncommitted'])} uncommitted file(s) in gateway/ rules/"
           if m["source"]["uncommitted"] else ""),
        "direct = client -> sink (EHLO, STARTTLS, no AUTH); vigie = client -> vigie (EHLO, "
        "STARTTLS, AUTH) -> sink.",
        "latency = MAIL sent .. DATA reply received; added = vigie percentile minus direct "
        "percentile.",
    ]
    if (m["cpus"] or 1) <= 2:
        out.append("CAVEAT: client, vigie and sink share "
                   f"{m['cpus']} CPU(s): vigie competes with the load it measures; "
                   "compare ratios, not absolute figures.")
    out.append("")
    head = (f"{'size':>7} {'C':>3} {'path':<6} {'msgs':>5} {'msg/s':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'cpu ms/msg client/vigie/sink':>29} {'busy':>5} {'other':>5}")
    out.append(head)
    out.append("-" * len(head))
    for r in report["results"]:
        for p in PATHS:
            s = r[p]
            cpu = s["cpu_ms_per_msg"]
            vig = f"{cpu['vigie']:.2f}" if p == "vigie" else "-"
            out.append(
                f"{r['size_label']:>7} {r['concurrency']:>3} {p:<6} {s['messages']:>5} "
                f"{s['rate']:>8.1f} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} "
                f"{cpu['client']:>11.2f} / {vig:>5} / {cpu['sink']:>5.2f} "
                f"{s['machine_busy'] * 100:>4.0f}% {s['other_cores']:>5.2f}")
        t = r["targets"]
        spread = r["ratio_per_round"]
        spread_txt = (f" (rounds {min(spread):.2f}..{max(spread):.2f})"
                      if len(spread) > 1 else "")
        line = f"{'':>11} ratio vigie/direct {r['ratio']:.2f}{spread_txt}"
        if "ratio" in t:
            line += f"  [target {t['ratio']['target']}: {mark(t['ratio']['ok'])}]"
        out.append(line)
        if r["ratio_clean_rounds"] is not None and r["clean_rounds"] < len(spread):
            out.append(f"{'':>11} ratio over the {r['clean_rounds']} undisturbed round(s) only "
                       f"(other <= {NOISY_CORES}): {r['ratio_clean_rounds']:.2f}")
        line = (f"{'':>11} added latency p50 {r['added_p50_ms']:+.1f} ms, p99 "
                f"{r['added_p99_ms']:+.1f} ms")
        if "added_p99_ms" in t:
            line += (f"  [target p99 {t['added_p99_ms']['target']} ms: "
                     f"{mark(t['added_p99_ms']['ok'])}]")
        out.append(line)
        auth, xfer = r["vigie_peak_rss_kb_auth_phase"], r["vigie_peak_rss_kb_transfer_phase"]
        if auth or xfer:
            out.append(f"{'':>11} vigie peak RSS: connect+AUTH phase "
                       f"{(auth or 0) / KIB:.1f} MB, transfer phase {(xfer or 0) / KIB:.1f} MB"
                       "")
        out.append(f"{'':>11} opening {r['concurrency']} connection(s) (mean): direct "
                   f"{r['direct']['setup_s'] * 1000:.0f} ms, vigie (with AUTH) "
                   f"{r['vigie']['setup_s'] * 1000:.0f} ms; first message of a connection "
                   f"p50: direct {r['direct']['first_p50_ms']:.1f} ms, vigie "
                   f"{r['vigie']['first_p50_ms']:.1f} ms")
        out.append("")
    noisy = [b for b in report["batches"] if b["other_cores"] > NOISY_CORES]
    if noisy:
        out.append(f"WARNING: in {len(noisy)} of {len(report['batches'])} batches, other "
                   f"processes used more than {NOISY_CORES} CPU (up to "
                   f"{max(b['other_cores'] for b in noisy):.2f}): those rounds are perturbed; "
                   "see the per-round ratio range, or rerun on an idle machine.")
    rss = report["vigie_rss"]
    out.append(f"vigie peak RSS (VmHWM, whole run): {rss['peak_kb'] / KIB:.1f} MB "
               f"[target {rss['target']}: {mark(rss['ok'])}]  (after start-up "
               f"{(rss['startup_kb'] or 0) / KIB:.1f} MB, at the end "
               f"{(rss['final_kb'] or 0) / KIB:.1f} MB)")
    if not rss["peak_reset_supported"]:
        out.append("  note: /proc/PID/clear_refs not writable: per-phase peaks are cumulative")
    c = report["checks"]
    if c["sink_mismatches"]:
        out.append("FAILURE: the sink count does not match the 250 replies:")
        out.extend(f"  {x}" for x in c["sink_mismatches"])
    else:
        out.append("sink counts: every 250 reply matches one message at the sink")
    if c["client_errors"]:
        out.append("FAILURE: client errors (count  path: error):")
        out.extend(f"  {n:>5}  {e}" for e, n in sorted(c["client_errors"].items()))
    else:
        out.append("client errors: none")
    if c["vigie_exit_code"] not in (0, None):
        out.append(f"vigie exit code after SIGTERM: {c['vigie_exit_code']}")
    if c["vigie_log_problems"]:
        out.append(f"vigie log: {len(c['vigie_log_problems'])} warning/error line(s), first:")
        out.extend(f"  {x[:160]}" for x in c["vigie_log_problems"][:10])
    else:
        out.append("vigie log: no warnings or errors")
    return "\n".join(out)


# --- command line ----------------------------------------------------------------

def default_messages(size: int, quick: bool) -> int:
    if size < 100 * KIB:
        return 200 if quick else 1000
    if size <= 2 * KIB * KIB:
        return 30 if quick else 100
    return 10 if quick else 25


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Load benchmark: submission through vigie vs straight to the sink.")
    p.add_argument("--sizes", default="5k,500k",
                   help="comma-separated message sizes, e.g. 5k,500k,2m (default: %(default)s)")
    p.add_argument("--messages", default=None,
                   help="messages per batch (per round and path): one number, or one per "
                        "size (default: 1000 for sizes < 100 KB, 100 up to 2 MB, 25 above; "
                        "--quick: 200/30/10)")
    p.add_argument("--concurrency", type=int, default=20,
                   help="concurrent SMTP connections (default: %(default)s)")
    p.add_argument("--serial", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure at concurrency 1 (unloaded latency; default: on)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved direct/vigie rounds (default: 5, --quick: 1)")
    p.add_argument("--quick", action="store_true", help="short run (well under 30 s)")
    p.add_argument("--upstream-tls", choices=("starttls", "none"), default="starttls",
                   help="vigie -> sink hop (default: %(default)s, as in production)")
    p.add_argument("--upstream-ca", choices=("file", "system"), default="file",
                   help="how vigie trusts the sink: file = [upstream] ca_file (default); "
                        "system = no ca_file and verify = false, so vigie loads the system CA "
                        "store per upstream session, as with a public-CA smarthost")
    p.add_argument("--vigie-log-level", choices=("debug", "info", "warning", "error"),
                   default="warning", help="vigie's [log] level (default: %(default)s)")
    p.add_argument("--json", metavar="FILE",
                   help="also write the figures as JSON to FILE ('-' = stdout, table to stderr)")
    p.add_argument("--vigie-src", metavar="DIR", type=Path,
                   help="run vigie from this source tree instead of the installed one (e.g. "
                        "`git archive HEAD | tar -x -C DIR`): PYTHONPATH and [rules] dir")
    p.add_argument("--profile-vigie", metavar="FILE",
                   help="run vigie under cProfile and write its stats to FILE (slows vigie: "
                        "for finding hot spots, not for figures)")
    p.add_argument("--hygiene-only", action="store_true",
                   help="run vigie with only the hygiene check (the pipeline the submission "
                        "gateway's targets were set for): [patient_data] enabled = false")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary folder (config, vigie.log, data) and print it")
    return p


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Scenario]:
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"--sizes: {exc}")
    if not sizes:
        parser.error("--sizes: no size given")
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    # vigie runs in the temporary folder: make the paths given to it absolute.
    if args.vigie_src is not None:
        args.vigie_src = args.vigie_src.resolve()
        if not (args.vigie_src / "gateway").is_dir():
            parser.error(f"--vigie-src: no gateway/ folder in {args.vigie_src}")
    if args.profile_vigie:
        args.profile_vigie = str(Path(args.profile_vigie).resolve())
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.messages is None:
        counts = [default_messages(s, args.quick) for s in sizes]
    else:
        try:
            counts = [int(x) for x in str(args.messages).split(",")]
        except ValueError:
            parser.error("--messages: integers expected")
        if len(counts) == 1:
            counts *= len(sizes)
        if len(counts) != len(sizes) or min(counts) < 1:
            parser.error("--messages: one positive number, or one per size")
    scenarios = [Scenario(s, args.concurrency, n) for s, n in zip(sizes, counts, strict=True)]
    if args.serial and args.concurrency > 1:
        scenarios += [Scenario(s, 1, max(10, min(n // 8, 100))) for s, n in zip(
            sizes, counts, strict=True)]
    return scenarios


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    scenarios = resolve(args, parser)
    if args.hygiene_only:  # read by vigie's config loader, inherited by its process
        os.environ["VIGIE_PATIENT_DATA_ENABLED"] = "false"
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="vigie-bench-"))
    try:
        report = run_all(args, scenarios, workdir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
    table = render(report) + f"\n(total run time {report['meta']['duration_s']:.0f} s)"
    if args.json == "-":
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(table)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = report["checks"]["sink_mismatches"] or report["checks"]["client_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
