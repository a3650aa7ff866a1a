"""Test helpers shipped with the package: a capturing upstream, a gateway in a thread,
an in-memory DNS resolver.

The first two run real asyncio servers on loopback sockets in a background thread,
so blocking clients (smtplib, swaks) can talk to them from the test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway.config import Config
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
    def cafile(self) -> str:
        assert self.gateway.cert_path is not None
        return str(self.gateway.cert_path)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._lt.run(self.gateway.stop())
        self._lt.close()
