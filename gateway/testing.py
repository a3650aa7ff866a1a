"""Test helpers shipped with the package: a capturing upstream, a gateway in a thread,
an in-memory DNS resolver, a real DNS server (dnsmasq) serving given records.

The first two run real asyncio servers on loopback sockets in a background thread,
so blocking clients (smtplib, swaks) can talk to them from the test.
"""

from __future__ import annotations

import asyncio
import base64
import grp
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Literal, TypeVar

import dkim
import dns.exception
import dns.message
import dns.query
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.config import Config, DNSConfig
from gateway.detect.impersonation import (
    DirectoryEntry,
    LookalikeIndex,
    Skeleton,
    in_domains,
    name_key,
)
from gateway.dns import DNSTempError, IPAddress, NXDomain
from gateway.smtp.server import Gateway
from gateway.smtp.tls import make_self_signed, server_context

T = TypeVar("T")

TIMEOUT = "TIMEOUT"
"""In a FakeResolver zone: a bare entry makes every query of a type that has no
records at that name time out; as a record's value, queries of that type time out."""

FakeRecord = tuple[str, str | Sequence[str] | tuple[int, str]] | str
"""``("TXT", "v=spf1 -all")``, ``("TXT", ["v=spf1 ", "-all"])`` (strings glued),
``("A", "192.0.2.1")``, ``("AAAA", "2001:db8::1")``, ``("MX", (10, "mx.example.com"))``,
``("PTR", "host.example.com")``, ``("CNAME", "other.example.com")``, ``("A", TIMEOUT)``
or ``TIMEOUT``."""


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class FakeResolver:
    """An in-memory ``gateway.dns.Resolver``: a zone of names and records.

    A name absent from the zone is NXDOMAIN; a name present without records of the
    asked type is "no data" (empty list). CNAMEs are followed (a loop or a chain
    longer than 8 is a temporary error, as a recursive resolver's SERVFAIL).
    ``queries`` records every (type, name) asked, to count lookups in tests.
    """

    def __init__(self, zone: Mapping[str, Iterable[FakeRecord]] | None = None) -> None:
        self.zone: dict[str, list[FakeRecord]] = {}
        self.queries: list[tuple[str, str]] = []
        for name, records in (zone or {}).items():
            self.zone.setdefault(_norm(name), [])  # the name exists, even without records
            for record in records:
                self.add(name, record)

    def add(self, name: str, record: FakeRecord) -> FakeResolver:
        """Add one record (or the bare ``TIMEOUT`` marker) at ``name``."""
        self.zone.setdefault(_norm(name), []).append(record)
        return self

    def _lookup(self, name: str, rtype: str) -> list[Any]:
        self.queries.append((rtype, _norm(name)))
        current = _norm(name)
        for _ in range(9):
            if current not in self.zone:
                raise NXDomain(f"{current}: NXDOMAIN")
            entries = self.zone[current]
            values = [e[1] for e in entries if not isinstance(e, str) and e[0] == rtype]
            if TIMEOUT in values:
                raise DNSTempError(f"{current} {rtype}: timeout (simulated)")
            if values:
                return values
            cnames = [e[1] for e in entries if not isinstance(e, str) and e[0] == "CNAME"]
            if cnames and rtype != "CNAME":
                assert isinstance(cnames[0], str)
                current = _norm(cnames[0])
                continue
            if TIMEOUT in entries:
                raise DNSTempError(f"{current} {rtype}: timeout (simulated)")
            return []
        raise DNSTempError(f"{_norm(name)} {rtype}: CNAME loop or chain too long")

    async def txt(self, name: str) -> list[str]:
        return [v if isinstance(v, str) else "".join(v) for v in self._lookup(name, "TXT")]

    async def a(self, name: str) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(v) for v in self._lookup(name, "A")]

    async def aaaa(self, name: str) -> list[ipaddress.IPv6Address]:
        return [ipaddress.IPv6Address(v) for v in self._lookup(name, "AAAA")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return [(int(pref), _norm(host)) for pref, host in self._lookup(name, "MX")]

    async def ptr(self, ip: IPAddress) -> list[str]:
        return [_norm(v) for v in self._lookup(ip.reverse_pointer, "PTR")]


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(_cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def make_message(
    sender: str = "camille@cabinet-kine.fr", to: str = "confrere@example.org",
    subject: str = "Rendez-vous", body: str = "Bonjour,\r\nà demain.\r\n",
    extra: Mapping[str, str] | None = None, *, date: bool = True, message_id: bool = True,
) -> bytes:
    """A small well-formed message (CRLF, UTF-8 8-bit body)."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if date:
        lines.append(f"Date: {formatdate(localtime=True)}")
    if message_id:
        lines.append(f"Message-ID: {make_msgid(domain='cabinet-kine.fr')}")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 8bit"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]


@dataclass
class UpstreamBehaviour:
    """What the capturing upstream answers; change it between tests."""

    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    data_delay: float = 0.0
    data_command_reply: str | None = None  # answer to the DATA command itself
    data_command_delay: float = 0.0  # seconds before the 354


class _UpstreamHandler:
    def __init__(self, owner: CapturingUpstream) -> None:
        self.owner = owner

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        b = self.owner.behaviour
        if b.mail_reply:
            return b.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        reply = self.owner.behaviour.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        b = self.owner.behaviour
        if b.data_delay:
            await asyncio.sleep(b.data_delay)  # cancelled if the client goes away
        if b.data_reply:
            return b.data_reply
        assert isinstance(envelope.original_content, bytes)
        self.owner.messages.append(Captured(str(envelope.mail_from), list(envelope.rcpt_tos),
                                            envelope.original_content,
                                            list(envelope.mail_options)))
        return f"250 2.0.0 Ok: queued as UP{len(self.owner.messages)}"


class _UpstreamSMTP(SMTP):
    """aiosmtpd, with a DATA command that can be refused or answered late."""

    def __init__(self, behaviour: UpstreamBehaviour, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour

    async def smtp_DATA(self, arg: str) -> None:
        if self.behaviour.data_command_delay:
            await asyncio.sleep(self.behaviour.data_command_delay)
        if self.behaviour.data_command_reply and self.envelope is not None \
                and self.envelope.rcpt_tos:
            await self.push(self.behaviour.data_command_reply)
            return
        await super().smtp_DATA(arg)


class CapturingUpstream:
    """An aiosmtpd server that records what it accepts, with STARTTLS and optional AUTH."""

    def __init__(self, workdir: Path, *, users: Mapping[str, str] | None = None,
                 tls: bool = True) -> None:
        self.workdir = workdir
        self.users = dict(users or {})
        self.tls = tls
        self.messages: list[Captured] = []
        self.behaviour = UpstreamBehaviour()
        self.connections = 0
        self.cert = workdir / "upstream.crt"
        self.key = workdir / "upstream.key"
        self._lt = LoopThread()
        self._server: asyncio.Server | None = None
        self._protocols: list[SMTP] = []
        self.port = 0

    def _authenticator(self, server: SMTP, session: Session, envelope: Envelope,
                       mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and self.users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> CapturingUpstream:
        ctx = None
        if self.tls:
            make_self_signed("localhost", self.cert, self.key)
            ctx = server_context(self.cert, self.key)
        handler = _UpstreamHandler(self)

        def factory() -> SMTP:
            self.connections += 1
            proto = _UpstreamSMTP(
                self.behaviour, handler, hostname="upstream.test", tls_context=ctx,
                authenticator=self._authenticator if self.users else None,
                auth_required=bool(self.users), auth_require_tls=True, enable_SMTPUTF8=True)
            self._protocols.append(proto)
            return proto

        async def _start() -> asyncio.Server:
            return await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)

        self._server = self._lt.run(_start())
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            srv = self._server
            self._server = None

            async def _stop() -> None:
                srv.close()
                for proto in self._protocols:
                    for transport in (proto.transport, proto._original_transport):
                        if transport is not None:
                            transport.close()
                await asyncio.sleep(0)

            self._lt.run(_stop())
        self._lt.close()

    def drop_connections(self) -> None:
        """Close every client connection, as a server does with idle ones."""
        async def _drop() -> None:
            for proto in self._protocols:
                if proto.transport is not None:
                    proto.transport.close()
            await asyncio.sleep(0.05)

        self._lt.run(_drop())

    def configure(self, cfg: Config) -> Config:
        """Point a config's [upstream] at this server (trusting its certificate)."""
        cfg.upstream.host = "localhost"
        cfg.upstream.port = self.port
        cfg.upstream.tls = "starttls" if self.tls else "none"
        cfg.upstream.ca_file = str(self.cert) if self.tls else ""
        cfg.upstream.timeout = 5.0
        return cfg

    def configure_mailbox(self, cfg: Config) -> Config:
        """Point a config's inbound next hop ([inbound] mailbox_*) at this server."""
        cfg.inbound.mailbox_host = "localhost"
        cfg.inbound.mailbox_port = self.port
        cfg.inbound.mailbox_tls = "starttls" if self.tls else "none"
        cfg.inbound.mailbox_ca_file = str(self.cert) if self.tls else ""
        cfg.upstream.timeout = 5.0
        return cfg


def config_for_tests(data_dir: Path, **sections: Mapping[str, Any]) -> Config:
    """A config for tests: loopback, ephemeral ports, no auth delay."""
    cfg = Config()
    cfg.storage.data_dir = str(data_dir)
    cfg.server.hostname = "vigie.test"
    cfg.submission.listen = ["127.0.0.1:0"]
    cfg.submission.listen_tls = ["127.0.0.1:0"]
    cfg.auth.failure_delay = 0.0
    cfg.web.listen = "127.0.0.1:0"  # the console too: never the fixed 8025 in tests
    cfg.web.failure_delay = 0.0
    for section, values in sections.items():
        target = getattr(cfg, section)
        for key, value in values.items():
            setattr(target, key, value)
    return cfg


class GatewayThread:
    """A real Gateway listening on loopback, driven from blocking test code."""

    def __init__(self, cfg: Config, **kwargs: Any) -> None:
        self.cfg = cfg
        self._lt = LoopThread()
        self.gateway = Gateway(cfg, **kwargs)
        self._stopped = False

    def start(self) -> GatewayThread:
        self._lt.run(self.gateway.start())
        return self

    @property
    def port(self) -> int:
        return self.gateway.port("starttls")

    @property
    def tls_port(self) -> int:
        return self.gateway.port("implicit-tls")

    @property
    def inbound_port(self) -> int:
        assert self.gateway.inbound is not None, "no [inbound] listen in this config"
        return self.gateway.inbound.port()

    @property
    def cafile(self) -> str:
        assert self.gateway.cert_path is not None
        return str(self.gateway.cert_path)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._lt.run(self.gateway.stop())
        self._lt.close()


# --- DKIM keys made at test time -----------------------------------------------------

@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing key made at test time, with its public DNS record.

    ``sign(message)`` returns the message with a DKIM-Signature prepended (dkimpy,
    relaxed/relaxed); ``name`` and ``record`` are the TXT record to publish.
    """

    domain: str
    selector: str
    algorithm: Literal["rsa-sha256", "ed25519-sha256"]
    private: bytes  # PEM (RSA) or base64 seed (ed25519), as dkimpy takes them
    record: str

    @classmethod
    def generate(cls, domain: str, selector: str = "sel", *,
                 algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256",
                 bits: int = 2048) -> DkimKey:
        if algorithm == "rsa-sha256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            private = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption())
            public = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
        else:
            ed = ed25519.Ed25519PrivateKey.generate()
            seed = ed.private_bytes(serialization.Encoding.Raw,
                                    serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            raw_public = ed.public_key().public_bytes(serialization.Encoding.Raw,
                                                      serialization.PublicFormat.Raw)
            private = base64.b64encode(seed)
            record = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw_public).decode()}"
        return cls(domain, selector, algorithm, private, record)

    @property
    def name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def sign(self, message: bytes, *, domain: str | None = None,
             include_headers: Sequence[str] | None = None, length: bool = False) -> bytes:
        signature: bytes = dkim.sign(
            message, self.selector.encode(), (domain or self.domain).encode(), self.private,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=self.algorithm.encode(),
            include_headers=[h.encode() for h in include_headers] if include_headers
            else [b"from", b"to", b"subject", b"date", b"message-id"], length=length)
        return signature + message


# --- a real DNS server ---------------------------------------------------------------

DnsRecord = tuple[str, str | Sequence[str] | tuple[int, str]]
"""``("TXT", "v=spf1 -all")`` (split into 255-octet strings as needed),
``("TXT", ["part one", "part two"])`` (one record of several strings), ``("A",
"192.0.2.1")``, ``("AAAA", "2001:db8::1")``, ``("MX", (10, "mx.example.com"))``,
``("PTR", "host.example.com")`` (at the reverse name, e.g. ``1.2.0.192.in-addr.arpa``)
or ``("CNAME", "other.example.com")``."""


def _quote_txt(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _txt_strings(value: str | Sequence[str]) -> list[str]:
    if isinstance(value, str):
        data = value.encode("utf-8")
        # character-strings are at most 255 octets; split on a UTF-8 character boundary
        out: list[str] = []
        start = 0
        while start < len(data) or not out:
            end = min(start + 255, len(data))
            while end < len(data) and end > start and (data[end] & 0xC0) == 0x80:
                end -= 1
            out.append(data[start:end].decode("utf-8"))
            start = end
        return out
    return list(value)


class Dnsmasq:
    """dnsmasq serving exactly the given records on a free loopback port (UDP and TCP).

    No upstream, no /etc/hosts, no system config file: a name not given is NXDOMAIN
    (``local=/#/``); a name given without records of the asked type is "no data".
    ``start()`` waits until it answers; ``stop()`` kills it (queries then time out:
    the way to test DNS failures with a real resolver). A context manager.
    ``Dnsmasq.program()`` is None where dnsmasq is not installed: skip then.
    """

    def __init__(self, records: Mapping[str, Iterable[DnsRecord]], *,
                 workdir: Path | None = None) -> None:
        self.records = {name.rstrip("."): list(recs) for name, recs in records.items()}
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vigie-dnsmasq-"))
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def program() -> str | None:
        """Path of the dnsmasq binary (also looked for in /usr/sbin), or None."""
        found = shutil.which("dnsmasq")
        if found:
            return found
        return "/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK) else None

    def dns_config(self, timeout: float = 2.0) -> DNSConfig:
        """A ``[dns]`` section pointing at this server."""
        return DNSConfig(nameservers=["127.0.0.1"], port=self.port, timeout=timeout)

    def _config(self) -> str:
        lines = [
            f"port={self.port}", "listen-address=127.0.0.1", "bind-interfaces",
            "no-resolv", "no-hosts", "no-poll", "pid-file=", "local=/#/",
            "no-negcache", f"log-facility={self.workdir / 'dnsmasq.log'}",
            # stay the user we are (as root, dnsmasq would switch to "nobody")
            f"user={pwd.getpwuid(os.getuid()).pw_name}",
            f"group={grp.getgrgid(os.getgid()).gr_name}",
        ]
        for name, records in self.records.items():
            for rtype, value in records:
                kind = rtype.upper()
                if kind == "TXT":
                    assert not isinstance(value, tuple) or all(
                        isinstance(v, str) for v in value)
                    strings = _txt_strings(value)  # type: ignore[arg-type]
                    lines.append(f"txt-record={name}," + ",".join(map(_quote_txt, strings)))
                elif kind in ("A", "AAAA"):
                    assert isinstance(value, str)
                    lines.append(f"host-record={name},{ipaddress.ip_address(value)}")
                elif kind == "MX":
                    assert isinstance(value, tuple)
                    lines.append(f"mx-host={name},{value[1]},{int(value[0])}")
                elif kind == "PTR":
                    lines.append(f"ptr-record={name},{value}")
                elif kind == "CNAME":
                    lines.append(f"cname={name},{value}")
                else:
                    raise ValueError(f"record type {rtype!r} not supported by Dnsmasq")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _free_port() -> int:
        """A port free on 127.0.0.1 for both UDP and TCP (at the time of asking)."""
        for _ in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", 0))
                port = int(udp.getsockname()[1])
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    try:
                        tcp.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                    return port
        raise RuntimeError("no free loopback port for dnsmasq")

    def _answers(self) -> bool:
        query = dns.message.make_query("vigie-probe.invalid.", "TXT")
        try:
            dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return True

    def start(self, timeout: float = 10.0) -> Dnsmasq:
        program = self.program()
        if program is None:
            raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq-base)")
        for _attempt in range(3):
            self.port = self._free_port()
            conf = self.workdir / "dnsmasq.conf"
            conf.write_text(self._config(), encoding="utf-8")
            self._proc = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                [program, "--keep-in-foreground", f"--conf-file={conf}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    break  # exited: a bad config, or the port was taken meanwhile
                if self._answers():
                    return self
                time.sleep(0.05)
            error = self._reap()
            if "Address already in use" not in error:
                raise RuntimeError(f"dnsmasq did not start: {error.strip()[:500]}")
        raise RuntimeError("dnsmasq could not bind a free port")

    def _reap(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        assert proc.stderr is not None
        error = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        return error

    def stop(self) -> None:
        """Kill dnsmasq (the port then answers nothing); may be called twice."""
        self._reap()

    def close(self) -> None:
        """Stop, and remove the working folder when it was made here."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Dnsmasq:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryDirectory:
    """An in-memory ``gateway.detect.impersonation.DirectoryLookup`` for unit tests.

    ``MemoryDirectory([DirectoryEntry(...), ...], skeleton)``; the protected domains
    of the look-alike index are mssante.fr plus the entries' non-webmail domains, as
    ``gateway.directory.Directory`` builds them.
    """

    def __init__(self, entries: Iterable[DirectoryEntry], skeleton: Skeleton, *,
                 webmail: frozenset[str] = frozenset(), protected: Iterable[str] = ()) -> None:
        self.entries = list(entries)
        self.webmail = webmail
        self.index = LookalikeIndex.build(
            ["mssante.fr", *protected,
             *(e.domain for e in self.entries if not in_domains(e.domain, webmail))],
            skeleton)

    def by_address(self, address: str) -> list[DirectoryEntry]:
        return [e for e in self.entries if e.address == address.strip().lower()]

    def by_name(self, display_name: str) -> list[DirectoryEntry]:
        key = name_key(display_name)
        return [e for e in self.entries if key and e.name_key == key]

    def is_directory_domain(self, domain: str) -> bool:
        return in_domains(domain.lower(), frozenset(e.domain for e in self.entries))

    def lookalikes(self) -> LookalikeIndex:
        return self.index

# --- scan engine samples (issue 5): made at test time, never stored ---------------

def eicar() -> bytes:
    """The EICAR antivirus test file, glued from two halves so no file of ours holds it."""
    return (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


def zip_bomb(members: int = 10, member_size: int = 1024 ** 3, *, lie: bool = False) -> bytes:
    """A zip whose ``members`` files each expand to ``member_size`` zero bytes.

    The default is a 10 GiB bomb of about 10 MB, made in well under a second: one
    MiB of zeros is deflated once and its byte-aligned block (a full flush resets
    the window) repeated, which is exactly what deflating the whole would give.
    Sizes stay under 4 GiB per member so no zip64 record is needed. ``lie``: the
    headers declare each member as big as its compressed data (ratio 1:1), so only
    inflating it shows the truth.
    """
    import struct
    import zlib

    mib = 1024 * 1024
    assert member_size % mib == 0 and member_size < 4 * 1024 ** 3
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(mib)) + comp.flush(zlib.Z_FULL_FLUSH)
    stream = block * (member_size // mib) + comp.flush()
    crc = 0
    zeros = bytes(mib)
    for _ in range(member_size // mib):
        crc = zlib.crc32(zeros, crc)
    declared = len(stream) if lie else member_size
    out = bytearray()
    central = bytearray()
    for i in range(members):
        name = f"rapport-{i:02d}.txt".encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream),
                           declared, len(name), 0) + name + stream
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc,
                               len(stream), declared, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members,
                                 len(central), start, 0)
    return bytes(out)
