"""Listeners: submission with STARTTLS (587-style) and implicit TLS (465-style).

``Gateway`` wires config, engine, users, hold folder and next hop together and
owns the asyncio servers; ``serve_forever`` is what ``vigie serve`` runs.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import dataclasses
import gc
import logging
import re
import signal
import ssl
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, SMTP, syntax

from gateway import __version__
from gateway.config import Config, ConfigError, UpstreamConfig, parse_listen
from gateway.engine import Engine
from gateway.logs import quiet_libraries
from gateway.quarantine.folder import HoldFolder, ensure_private_dir
from gateway.smtp.handler import AUTH_REQUIRED, SubmissionHandler, close_connection
from gateway.smtp.inbound import NO_AUTH, InboundListener
from gateway.smtp.relay import (
    HopPool,
    HopSession,
    HopUnavailable,
    MaildirSession,
    UpstreamSession,
    unavailable,
)
from gateway.smtp.tls import certificate_paths, server_context
from gateway.users import UsersFile

log = logging.getLogger("vigie.server")


# aiosmtpd's own replies, French first (Camille reads French only).
_TRANSLATIONS = {
    "530 5.7.0 Authentication required": AUTH_REQUIRED,
    "530 Must issue a STARTTLS command first":
        "530 5.7.0 Chiffrement obligatoire : activez STARTTLS / Must issue a STARTTLS "
        "command first",
    "538 5.7.11 Encryption required for requested authentication mechanism":
        "538 5.7.11 Authentification seulement après chiffrement (STARTTLS) / Encryption "
        "required for requested authentication mechanism",
    "503 Error: need MAIL command":
        "503 5.5.1 Commande MAIL attendue d'abord / Error: need MAIL command",
    "503 Error: need RCPT command":
        "503 5.5.1 Commande RCPT attendue d'abord / Error: need RCPT command",
    "503 Error: nested MAIL command":
        "503 5.5.1 Commande MAIL déjà reçue / Error: nested MAIL command",
    "503 Already authenticated": "503 5.5.1 Déjà authentifié / Already authenticated",
    "500 Line too long (see RFC5321 4.5.3.1.6)":
        "500 5.5.2 Ligne trop longue (998 caractères au plus) / Line too long (RFC 5321 "
        "4.5.3.1.6)",
    "500 Command line too long": "500 5.5.2 Commande trop longue / Command line too long",
    "501 5.5.2 Can't decode base64": "501 5.5.2 Base64 illisible / Can't decode base64",
    "501 5.5.2 Can't split auth value":
        "501 5.5.2 Identifiants mal formés / Can't split auth value",
    "504 5.5.4 Unrecognized authentication type":
        "504 5.5.4 Méthode d'authentification inconnue (PLAIN ou LOGIN) / Unrecognized "
        "authentication type",
    "501 5.7.0 Auth aborted": "501 5.7.0 Authentification abandonnée / Auth aborted",
    "554 Command refused due to lack of security":
        "554 5.7.0 Refusé : connexion non sécurisée / Command refused due to lack of security",
}
_UNSTUFF = re.compile(rb"(?:^|(?<=\r\n))\.")
# <local@domain> with a dot-atom local part and an ASCII host name; anything
# else (quoted local parts, address literals, UTF-8…) goes to aiosmtpd's parser.
_SIMPLE_PATH = re.compile(
    r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>"
    r"\s*(.*)\Z", re.DOTALL)
_TOO_BIG = ("552 Error: message size exceeds fixed maximum message size",
            "552 Error: Too much mail data")


class VigieSMTP(SMTP):
    """aiosmtpd's protocol, plus closing the next-hop session with the client's and
    French-first wording of its built-in replies."""

    background: set[asyncio.Task[None]]
    live: set[VigieSMTP]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.live.add(self)
        super().connection_made(transport)

    def close_now(self) -> None:
        for transport in (self.transport, self._original_transport):
            if transport is not None:
                transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA with the same end-of-data rule (a line that is exactly
        ``.`` with CRLF around it; bare LF ends nothing) but read in blocks rather
        than line by line: a 500 KB message is 6,000 lines, and the per-line
        Python work was most of the gateway's CPU."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        starting = getattr(self.event_handler, "data_starting", None)
        if starting is not None:
            starting(self)  # the next hop's 354 is asked for while the content travels
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            data, state = await self._read_data()
        except asyncio.IncompleteReadError:
            if self.transport is not None:
                self.transport.close()
            return
        if state == "too_long":
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if state == "too_much":
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        # De-transparency (RFC 5321 4.5.2): a leading dot on a line is removed
        # (one pass, and none when there is no such line: large messages are not
        # copied more than needed).
        content = _UNSTUFF.sub(b"", data) if (b"\r\n." in data or data[:1] == b".") \
            else data
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, str]:
        """Bytes up to the end-of-data line (without it), and "ok" / "too_long" /
        "too_much"; oversized data is read and dropped, never kept in memory."""
        reader = self._reader
        limit = self.data_size_limit
        kept = bytearray()
        total = 0
        state = "ok"
        tail = b"\r\n"  # the start of DATA is the start of a line
        while True:
            try:
                block = await reader.readuntil(b".\r\n")
                done = True
            except asyncio.LimitOverrunError as exc:
                block = await reader.readexactly(exc.consumed)
                done = False
            if done:
                before = (tail + block)[-5:-3]  # the two bytes before the dot
                if before == b"\r\n":
                    body = block[:-3]
                    total += len(body)
                    if state == "ok":
                        kept += body
                    break
            total += len(block)
            if state == "ok":
                kept += block
                if limit and total > limit:
                    state, kept = "too_much", bytearray()
            tail = (tail + block)[-2:]
        if limit and total > limit:
            state = "too_much"
        if state == "ok" and kept and not kept.endswith(b"\r\n"):
            kept += b"\r\n"  # cannot happen on the wire; keeps the content well-formed
        # a line longer than RFC 5321 allows (998 characters, +1 for a stuffed dot)
        if state == "ok" and kept and max(map(len, kept.split(b"\r\n"))) > (
                self.line_length_limit - 2):
            state = "too_long"
        return bytes(kept), state

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            if status in _TOO_BIG:
                size = self.data_size_limit or 0
                fr, en = ((f"{size / 1024 / 1024:.0f} Mo", f"{size / 1024 / 1024:.0f} MB")
                          if size >= 1024 * 1024 else
                          (f"{size / 1024:.0f} Ko", f"{size / 1024:.0f} KB"))
                log.info("message refused: larger than %s (552)", en)
                status = (f"552 5.3.4 Message trop gros (maximum {fr}, pièces jointes "
                          f"comprises) / Message too big (limit {en})")
            else:
                status = _TRANSLATIONS.get(status, status)
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # A source route (<@relay:user@domain>) is refused, not silently dropped.
        if arg and arg.lstrip().startswith("<@"):
            return None, None
        # The everyday «<name@domain>» without the stdlib's full RFC 5322 parser,
        # which cost about a tenth of the gateway's CPU per message.
        m = _SIMPLE_PATH.match(arg or "")
        if m is not None and not self.local_part_limit:
            return m.group(1), m.group(2)
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    def connection_lost(self, error: Exception | None) -> None:
        self.live.discard(self)
        super().connection_lost(error)
        task = self._handler_coroutine
        if task is None or task.done():
            self._connection_over()
        else:  # it was just cancelled: clean up once it has unwound
            task.add_done_callback(lambda _: self._connection_over())

    def _connection_over(self) -> None:
        """Close the next-hop session, then break the reference cycles a finished
        aiosmtpd protocol sits in (its handler task's traceback, the bound methods
        it keeps, the stream writer pointing back at it): without this only the
        full GC frees them, and memory crept up by MBs per hundred connections."""
        if getattr(self, "vigie_state", None) is not None:
            closing = self.loop.create_task(close_connection(self))
            self.background.add(closing)
            closing.add_done_callback(self.background.discard)
        self._handler_coroutine = None
        self._smtp_methods.clear()
        self._auth_methods.clear()
        self._writer = None  # type: ignore[assignment]
        self._stream_writer = None
        self._client_connected_cb = None


class InboundSMTP(VigieSMTP):
    """The inbound listener's protocol: no AUTH offered or taken (mail for the practice
    needs no login; its people log in on the submission ports)."""

    async def push(self, status: Any) -> None:
        if isinstance(status, str) and status.startswith("250-AUTH"):
            return
        await super().push(status)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(NO_AUTH)


# asyncio's SSL transport (every TLS connection vigie has: clients and upstream) reads
# decrypted data with read(max_size), and CPython allocates a bytes object of that
# size for each call: 256 KiB costs about 17 µs a read against 2 µs for 64 KiB, some
# twenty times per relayed message (each command, each reply, and the read that
# finds the record buffer empty). A TLS record holds at most 16 KiB, so a smaller
# read size changes nothing else (recv_into reads 64 KiB at a time instead of 256).
_SSL_READ_SIZE = 64 * 1024


def _tune_asyncio_ssl() -> None:
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if protocol is not None and getattr(protocol, "max_size", 0) > _SSL_READ_SIZE:
        protocol.max_size = _SSL_READ_SIZE


class Service(Protocol):
    """Something ``vigie serve`` runs beside the SMTP listeners."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Gateway:
    def __init__(self, cfg: Config, *, engine: Engine | None = None) -> None:
        quiet_libraries()  # aiosmtpd logs full addresses at INFO: never let them through
        self.cfg = cfg
        self.engine = engine or Engine(cfg)
        self.users = UsersFile(cfg.users_file)
        self.hold = HoldFolder(cfg.data_dir / "hold")
        # Only the shared account's sessions are kept ([auth] mode = "local"); in
        # "upstream" mode each client's session carries its own login.
        self.pool = (HopPool(cfg.upstream.idle_sessions, cfg.upstream.idle_timeout)
                     if cfg.upstream.host and cfg.upstream.idle_sessions else None)
        self.handler = SubmissionHandler(cfg, self.engine, self.hop_factory, self.users,
                                         self.hold, self.pool)
        self.servers: list[asyncio.Server] = []
        self.background: set[asyncio.Task[None]] = set()
        self.live: set[VigieSMTP] = set()
        # Other services started and stopped with the listeners (web console, digest
        # scheduler, quarantine purge, inbound listener…): objects with async start()/stop().
        self.services: list[Service] = []
        # --- inbound (issue 4) ---
        self.inbound: InboundListener | None = None
        if cfg.inbound.listen:
            self.inbound = InboundListener(self)
            self.services.append(self.inbound)

        # --- quarantine, digest (issue 6) ---
        from gateway.quarantine.scheduler import quarantine_services
        from gateway.quarantine.service import Quarantine

        self.quarantine = Quarantine.open(cfg)
        self.handler.quarantine = self.quarantine
        if self.inbound is not None:
            self.inbound.handler.quarantine = self.quarantine
        self.services.extend(quarantine_services(self))

        # --- web console (issue 6) ---
        if cfg.web.listen:
            from gateway.web.service import GatewayConsole

            self.console = GatewayConsole(self)
            self.services.append(self.console)

        self.cert_created = False
        self.cert_path: Path | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def maildir(self) -> Path:
        return self.cfg.data_dir / "maildir"

    async def hop_factory(self, login: str | None, password: str | None) -> HopSession:
        cfg = self.cfg
        if not cfg.upstream.host:
            return MaildirSession(self.maildir, cfg.limits.recipients)
        if login is None:
            login = cfg.upstream.username or None
            try:
                password = cfg.upstream_password() or None if login else None
            except ConfigError as exc:
                log.error("%s", exc)
                raise HopUnavailable(unavailable("mot de passe du compte d'envoi illisible",
                                                 "upstream password file unreadable")) from exc
        return await UpstreamSession.open(cfg, login, password)

    @property
    def tls_context(self) -> ssl.SSLContext | None:
        """The server TLS context (made at start())."""
        return self._tls

    async def mailbox_hop(self) -> HopSession:
        """The next hop for inbound mail (and for releasing held inbound mail): the
        practice's mailbox server ([inbound] mailbox_host), or the local Maildir."""
        inbound = self.cfg.inbound
        if not inbound.mailbox_host:
            return MaildirSession(self.maildir, self.cfg.limits.recipients)
        mailbox = dataclasses.replace(self.cfg, upstream=UpstreamConfig(
            host=inbound.mailbox_host, port=inbound.mailbox_port, tls=inbound.mailbox_tls,
            verify=inbound.mailbox_verify, ca_file=inbound.mailbox_ca_file,
            timeout=self.cfg.upstream.timeout, data_timeout=self.cfg.upstream.data_timeout,
            helo=self.cfg.upstream.helo, idle_sessions=0))
        return await UpstreamSession.open(mailbox, None, None)

    def _protocol(self, *, implicit_tls: bool) -> VigieSMTP:
        assert self._tls is not None
        proto = VigieSMTP(
            self.handler,
            data_size_limit=self.cfg.limits.message_size,
            enable_SMTPUTF8=True,
            hostname=self.cfg.hostname,
            ident=f"vigie {__version__}",
            tls_context=None if implicit_tls else self._tls,
            require_starttls=not implicit_tls,
            # On the implicit-TLS port the socket itself is TLS: aiosmtpd cannot
            # see that, so the AUTH-needs-TLS and AUTH-required gates live in our
            # hooks there (they are in our hooks on both ports anyway).
            auth_required=not implicit_tls,
            auth_require_tls=not implicit_tls,
            timeout=self.cfg.limits.command_timeout,
        )
        proto.background = self.background
        proto.live = self.live
        return proto

    async def start(self) -> None:
        _tune_asyncio_ssl()
        cert, key, self.cert_created = certificate_paths(self.cfg)
        self.cert_path = cert
        if self.cert_created:
            log.warning("aucun certificat TLS configuré : certificat auto-signé créé dans %s "
                        "(no TLS certificate configured: generated a self-signed one)",
                        cert.parent)
        self._tls = server_context(cert, key)
        ensure_private_dir(self.cfg.data_dir)
        if not self.cfg.upstream.host:
            MaildirSession(self.maildir, 1).maildir.ensure()
        loop = asyncio.get_running_loop()
        for item in self.cfg.submission.listen:
            host, port = parse_listen(item)
            srv = await loop.create_server(lambda: self._protocol(implicit_tls=False), host, port)
            self.servers.append(srv)
        for item in self.cfg.submission.listen_tls:
            host, port = parse_listen(item)
            srv = await loop.create_server(lambda: self._protocol(implicit_tls=True), host, port,
                                           ssl=self._tls)
            self.servers.append(srv)
        for name, addr in self.addresses():
            log.info("listening (%s) on %s:%d", name, addr[0], addr[1])
        for service in self.services:
            await service.start()

    def addresses(self) -> list[tuple[str, tuple[Any, ...]]]:
        out = []
        starttls = len(self.cfg.submission.listen)
        for i, srv in enumerate(self.servers):
            for sock in srv.sockets:
                out.append(("starttls" if i < starttls else "implicit-tls", sock.getsockname()))
        return out

    def port(self, kind: str = "starttls") -> int:
        for name, addr in self.addresses():
            if name == kind:
                return int(addr[1])
        raise LookupError(kind)

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception as exc:  # one service's trouble must not keep the others up
                log.error("stopping %s: %s", type(service).__name__, exc)
        for srv in self.servers:
            srv.close()
        for proto in list(self.live):  # clients still connected hear nothing more: no 250
            proto.close_now()
        for srv in self.servers:
            await srv.wait_closed()
        self.servers.clear()
        await asyncio.sleep(0)  # let connection_lost callbacks run
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()


async def serve_forever(cfg: Config) -> None:
    gateway = Gateway(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # before start(): a SIGTERM while the services start must stop them cleanly too
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
    except BaseException:
        await gateway.stop()
        raise
    # Everything built at start-up (rules, lexicon, YARA, PSL, modules) lives as long as
    # the process: out of the garbage collector's sight, its full collections stay as
    # short as they were before these subsystems existed.
    gc.collect()
    gc.freeze()
    # issue 5: SIGHUP recompiles the YARA rules (a broken set is refused, the old stays)
    from gateway.checks.attachments import reload_on_sighup
    reload_on_sighup(loop, gateway.engine.pipeline.checks)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await gateway.stop()
