"""aiosmtpd hooks for the submission listener: cheap gates only, then the engine.

MAIL goes to the next hop at once and its answer is awaited at the first RCPT
(a refused sender is then every recipient's answer); RCPT is mirrored live, so
per-recipient refusals reach the client; the next hop's DATA is asked for while
the client's content travels; then the engine decides and the content is sent on,
or the upstream connection is dropped mid-DATA. The client hears 250 for the
message only once the next hop said 250 (or the message is durably held).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, getaddresses
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.audit import AuditLog
from gateway.config import Config
from gateway.engine import Engine
from gateway.logs import message_line
from gateway.model import Direction, Message, domain_of, prepend_header
from gateway.model import Envelope as MsgEnvelope
from gateway.policy import Decision, Reply, temporary_reply
from gateway.quarantine.folder import HoldFolder
from gateway.quarantine.reasons import categorize, plain_reasons, shown_evidence
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HoldMeta
from gateway.smtp.relay import HopAuthRefused, HopPool, HopSession, HopUnavailable
from gateway.users import User, UsersFile
from gateway.verdict import Finding

log = logging.getLogger("vigie.smtp")

HopFactory = Callable[[str | None, str | None], Awaitable[HopSession]]


@dataclass
class ConnState:
    """Per-connection state kept on the protocol object (survives STARTTLS)."""

    hop: HopSession | None = None
    pooled: bool = False  # hop came from the pool and has not answered a command yet
    # The next hop's answer to MAIL, awaited at the first RCPT (the client's RCPT
    # travels while the upstream answers MAIL); a refusal is then every RCPT's answer.
    pending_mail: asyncio.Future[Reply] | None = None
    mail_refusal: Reply | None = None
    # The next hop's answer to DATA, asked for when the client sent DATA (while its
    # content travels); consumed by handle_DATA, dropped anywhere else.
    pending_data: asyncio.Future[Reply] | None = None
    credentials: tuple[str, str] | None = None  # upstream mode: kept in memory only
    in_transaction: bool = False
    auth_failures: int = 0
    queue_id: str = ""
    started: float = field(default_factory=time.monotonic)


def _state(server: SMTP) -> ConnState:
    state = getattr(server, "vigie_state", None)
    if state is None:
        state = ConnState()
        setattr(server, "vigie_state", state)  # noqa: B010 - aiosmtpd's class is not ours
    assert isinstance(state, ConnState)
    return state


AUTH_REQUIRED = ("530 5.7.0 Authentification obligatoire / Authentication required")
NEEDS_SMTPUTF8 = ("553 5.6.7 Adresse avec accents : votre logiciel doit utiliser SMTPUTF8 / "
                  "Non-ASCII address requires SMTPUTF8")


_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3}) ")


def _sender_refused(reply: Reply) -> Reply:
    """A permanent refusal of MAIL, given at RCPT: say that it is the sender the next
    hop refused (mail programs word a refusal at RCPT as a recipient problem)."""
    if reply.code < 500 or reply.status:
        return reply
    lines = list(reply.lines)
    m = _ENHANCED.match(lines[0]) if lines else None
    status = m.group(1) if m else ""
    if m:
        lines = [_ENHANCED.sub("", line) for line in lines]
    return Reply(reply.code, status, (
        "Expéditeur refusé par le serveur d'envoi du cabinet / Sender refused by the "
        "practice's outgoing server:", *lines))


def new_queue_id() -> str:
    return secrets.token_hex(5).upper()


def reply_str(reply: Reply, cfg: Config) -> str:
    return reply.render(cfg.submission.reply_charset)


class SubmissionHandler:
    """Hooks for authenticated submission (port 587/465 style)."""

    def __init__(self, cfg: Config, engine: Engine, hop_factory: HopFactory,
                 users: UsersFile, hold: HoldFolder, pool: HopPool | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.hop_factory = hop_factory
        self.pool = pool  # idle sessions of the shared upstream account
        self.users = users
        self.hold_folder = hold
        # The encrypted quarantine (set by Gateway); None = the plain hold folder.
        self.quarantine: Quarantine | None = None
        self.audit = AuditLog(cfg.audit_log)
        self._verify_slots = asyncio.Semaphore(1)
        self._verifying: dict[bytes, asyncio.Future[User | None]] = {}

    # --- AUTH ---------------------------------------------------------
    async def _read_credentials(self, server: SMTP, args: list[str]
                                ) -> tuple[str, str] | str | None:
        """(login, password), or an error reply, or None when already answered."""
        mechanism = args[0].upper()
        try:
            if mechanism == "PLAIN":
                if len(args) == 1:
                    blob = await server.challenge_auth("")
                    if not isinstance(blob, bytes):
                        return None
                else:
                    blob = base64.b64decode(args[1], validate=True)
                parts = blob.split(b"\x00")
                if len(parts) != 3:
                    return "501 5.5.2 Identifiants mal formés / Can't split auth value"
                login, password = parts[1], parts[2]
            elif mechanism == "LOGIN":
                if len(args) == 1:
                    got = await server.challenge_auth("User Name\x00")
                    if not isinstance(got, bytes):
                        return None
                    login = got
                else:
                    login = base64.b64decode(args[1], validate=True)
                got = await server.challenge_auth("Password\x00")
                if not isinstance(got, bytes):
                    return None
                password = got
            else:
                return ("504 5.5.4 Méthode d'authentification inconnue (PLAIN ou LOGIN) / "
                        "Unrecognized authentication type")
        except binascii.Error:
            return "501 5.5.2 Base64 illisible / Can't decode base64"
        try:
            return login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return "501 5.5.2 Identifiants non UTF-8 / Credentials must be UTF-8"

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope,
                          args: list[str]) -> str | None:
        state = _state(server)
        if _tls_info(server) is None:  # aiosmtpd checks too; passwords never in clear
            return ("538 5.7.11 Authentification seulement après chiffrement (STARTTLS) / "
                    "Encryption required for requested authentication mechanism")
        creds = await self._read_credentials(server, args)
        if creds is None or isinstance(creds, str):
            return creds
        login, password = creds
        if self.cfg.auth_mode == "local":
            ok = await self._verify_local(login, password) is not None
        else:
            try:
                hop = await self.hop_factory(login, password)
            except HopAuthRefused as exc:
                ok = False
                if exc.code < 500:
                    return f"454 4.7.0 {exc.text}"
            except HopUnavailable:
                log.warning("AUTH: upstream unreachable, answering 454")
                return ("454 4.7.0 Vérification du mot de passe impossible pour l'instant / "
                        "Temporary authentication failure, try again later")
            else:
                ok = True
                if state.hop is not None:
                    await state.hop.close()
                state.hop = hop
                state.credentials = (login, password)
        if ok:
            session.authenticated = True
            setattr(session, "auth_data", login)  # noqa: B010 - typed None upstream
            log.info("AUTH ok (%s mode)", self.cfg.auth_mode)
            return "235 2.7.0 Authentification réussie / Authentication successful"
        state.auth_failures += 1
        log.warning("AUTH failed from %s (%d/%d)", _peer_ip(session), state.auth_failures,
                    self.cfg.auth.max_failures)
        if self.cfg.auth.failure_delay:
            await asyncio.sleep(self.cfg.auth.failure_delay)
        if state.auth_failures >= self.cfg.auth.max_failures:
            await server.push("421 4.7.0 Trop d'échecs d'authentification / Too many "
                              "authentication failures, closing")
            if server.transport is not None:
                server.transport.close()
            return None
        return "535 5.7.8 Identifiant ou mot de passe refusé / Authentication credentials invalid"

    async def _verify_local(self, login: str, password: str) -> User | None:
        """scrypt costs 16 MiB and ~0.1 s of CPU. A burst of logins (every mail
        program of the practice at 8 a.m., or one program sending ten messages)
        checks each distinct pair once, one at a time; later logins with the same
        pair use the keyed-hash cache."""
        cached = self.users.verify_cached(login, password)
        if cached is not None:
            return cached
        key = self.users.cache_key(login, password)
        pending = self._verifying.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._verify_once(login, password))
            self._verifying[key] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(key, None))
        return await asyncio.shield(pending)

    async def _verify_once(self, login: str, password: str) -> User | None:
        async with self._verify_slots:
            user = await asyncio.to_thread(self.users.verify, login, password)
        if user is not None:
            self.users.remember(user, password)
        return user

    async def handle_exception(self, error: Exception) -> str:
        # The text of an exception may quote the message: log its type only.
        log.error("SMTP session error: %s", type(error).__name__)
        return self.render(temporary_reply("4.3.0", "Erreur interne temporaire de vigie.",
                                           "Temporary internal error in vigie."))

    # --- what differs between listeners (the inbound one overrides these) ---
    def render(self, reply: Reply) -> str:
        """The reply line(s) the client reads."""
        return reply_str(reply, self.cfg)

    def may_send(self, session: Session) -> bool:
        """Whether this client may give mail at all: submission needs a login."""
        return bool(session.authenticated)

    def recipient_refusal(self, address: str) -> str | None:
        """A reply refusing this recipient before the next hop is asked, or None."""
        return None

    def message_envelope(self, session: Session, envelope: Envelope, raw: bytes, tls: bool,
                         queue_id: str) -> MsgEnvelope:
        assert envelope.mail_from is not None
        return MsgEnvelope(
            mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
            direction=Direction.OUTBOUND, mail_options=list(envelope.mail_options),
            client_ip=_peer_ip(session), helo=session.host_name,
            auth_user=str(session.auth_data) if session.auth_data else None,
            tls=tls, queue_id=queue_id,
        )

    def content(self, message: Message, decision: Decision, tls: tuple[str, str] | None,
                session: Session) -> bytes:
        """The bytes handed to the next hop for deliver/tag."""
        content = self.engine.prepare(message, decision)
        return prepend_header(content, "Received",
                              received_value(self.cfg, tls, session, message.envelope))

    # --- envelope -----------------------------------------------------
    async def _hop(self, state: ConnState, *, fresh: bool = False) -> HopSession:
        if state.hop is not None and state.hop.usable:
            return state.hop
        if state.hop is not None:
            await state.hop.close()
            state.hop = None
        if state.credentials is not None:
            state.hop = await self.hop_factory(*state.credentials)
            return state.hop
        pooled = None if fresh or self.pool is None else self.pool.take()
        state.pooled = pooled is not None
        state.hop = pooled or await self.hop_factory(None, None)
        return state.hop

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not self.may_send(session):  # aiosmtpd checks too: never an open relay
            return AUTH_REQUIRED
        if not address.isascii() and "SMTPUTF8" not in (o.upper() for o in mail_options):
            return NEEDS_SMTPUTF8
        state = _state(server)
        # Settle what the last transaction left in flight first: a DATA dropped
        # mid-way closes the hop, which must be replaced before this MAIL.
        await self._mail_reply(state)
        await _drop_data(state)
        try:
            hop = await self._hop(state)
        except HopAuthRefused as exc:
            return f"454 4.7.0 {exc.text}"
        except HopUnavailable as exc:
            return self.render(exc.reply)
        if state.in_transaction:
            await hop.rset()
            state.in_transaction = False
        state.mail_refusal = None
        state.pending_mail = asyncio.ensure_future(
            self._upstream_mail(state, hop, address, mail_options))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        state.in_transaction = True
        state.queue_id = new_queue_id()
        state.started = time.monotonic()
        return "250 2.1.0 OK"

    async def _upstream_mail(self, state: ConnState, hop: HopSession, address: str,
                             options: list[str]) -> Reply:
        reply = await hop.mail(address, options)
        if state.pooled and reply.code >= 400 and not hop.usable:
            # A kept session the upstream had dropped meanwhile: once more, on a new one.
            try:
                hop = await self._hop(state, fresh=True)
            except HopAuthRefused as exc:
                return Reply(454, "4.7.0", (exc.text,))
            except HopUnavailable as exc:
                return exc.reply
            reply = await hop.mail(address, options)
        state.pooled = False
        return reply

    async def _mail_reply(self, state: ConnState) -> Reply | None:
        """Wait for the next hop's answer to MAIL; its refusal, if it refused."""
        pending, state.pending_mail = state.pending_mail, None
        if pending is not None:
            try:
                reply = await pending
            except Exception as exc:  # never a silent pass: the client retries
                log.error("upstream MAIL failed: %s", type(exc).__name__)
                reply = temporary_reply("4.3.0", "Erreur interne temporaire de vigie.",
                                        "Temporary internal error in vigie.")
            if not 200 <= reply.code < 300:
                state.mail_refusal = reply
                state.in_transaction = False
        return state.mail_refusal

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.may_send(session):
            return AUTH_REQUIRED
        if not address.isascii() and not envelope.smtp_utf8:
            return NEEDS_SMTPUTF8
        state = _state(server)
        if len(envelope.rcpt_tos) >= self.cfg.limits.recipients:
            return (f"452 4.5.3 Trop de destinataires (maximum {self.cfg.limits.recipients}) "
                    "/ Too many recipients")
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            return ("553 5.1.3 Adresse de destinataire incomplète (nom@domaine attendu) / "
                    "Incomplete recipient address (name@domain expected)")
        if any(c in local for c in "%!@:") or address.startswith("@"):
            return ("553 5.1.3 Adresse de destinataire refusée (routage non autorisé) / "
                    "Recipient address rejected (no routing tricks)")
        refused = self.recipient_refusal(address)
        if refused is not None:
            return refused
        refusal = await self._mail_reply(state)
        if refusal is not None:  # the next hop refused the sender: so every recipient
            return self.render(_sender_refused(refusal))
        if state.hop is None or not state.in_transaction:
            return "503 5.5.1 Commande MAIL attendue d'abord / Error: need MAIL command"
        reply = await state.hop.rcpt(address, rcpt_options)
        if 200 <= reply.code < 300:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return self.render(reply)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        state = _state(server)
        await self._mail_reply(state)
        await _drop_data(state)
        state.mail_refusal = None
        if state.hop is not None and state.in_transaction:
            await state.hop.rset()
        state.in_transaction = False
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await close_connection(server)
        return "221 2.0.0 Au revoir / Bye"

    # --- DATA ---------------------------------------------------------
    def data_starting(self, server: SMTP) -> None:
        """The client sent DATA: ask the next hop for its 354 now, while the content
        travels (the hop is told nothing else until the decision)."""
        state = _state(server)
        if (state.hop is not None and state.in_transaction and state.pending_mail is None
                and state.mail_refusal is None and state.pending_data is None):
            state.pending_data = asyncio.ensure_future(state.hop.begin_data())

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        state = _state(server)
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        assert envelope.mail_from is not None
        hop = state.hop
        if hop is None or not self.may_send(session):
            return "503 5.5.1 Commande MAIL attendue d'abord / Error: need MAIL command"
        refusal = await self._mail_reply(state)
        if refusal is not None:
            return self.render(refusal)
        tls = _tls_info(server)
        menv = self.message_envelope(session, envelope, raw, tls is not None,
                                     state.queue_id or new_queue_id())
        message = Message(raw, menv)
        decision = await self.engine.screen(message,
                                            allowed_sender=await self._allowed(message))
        action = decision.action
        reply: Reply
        try:
            pending, state.pending_data = state.pending_data, None
            if action in ("deliver", "tag"):
                content = self.content(message, decision, tls, session)
                if pending is None:
                    reply = await hop.data(content, menv.queue_id)
                else:
                    started = await pending
                    reply = started if started.code != 354 else \
                        await hop.send_content(content, menv.queue_id)
                if 200 <= reply.code < 300:
                    await self._audit(menv, decision)
                else:  # a refused DATA command leaves the hop's transaction open
                    await hop.rset()
            else:
                if pending is not None:
                    await pending
                await hop.rset()  # in the middle of DATA: the connection is dropped
                if action == "hold":
                    reply = await self._hold(message, decision.symbols, decision.findings)
                else:
                    assert decision.reply is not None
                    reply = decision.reply
        finally:
            state.in_transaction = False
        message_line(
            queue_id=menv.queue_id, direction=menv.direction.value, size=len(raw),
            rcpts=len(menv.rcpt_tos), rcpt_domains=menv.rcpt_domains,
            sender_domain=domain_of(menv.mail_from) or "-", action=action,
            symbols=decision.symbols, score=f"{decision.score:g}", reply=reply.code,
            duration_ms=round((time.monotonic() - state.started) * 1000, 1),
        )
        return self.render(reply)

    async def _allowed(self, message: Message) -> bool:
        """Is the sender on the practice's «always allow» list for this direction? The
        envelope sender or the From address (mailing lists and newsletters change
        their envelope sender from one mail to the next)."""
        env = message.envelope
        # what an allowed sender skips (engine.ALLOW_SKIPS) is only looked at inbound
        if self.quarantine is None or env.direction is not Direction.INBOUND:
            return False
        fields = message.header_fields
        values = [v.decode("utf-8", "replace") for n, v in fields if n == "from"]
        senders = {a.lower() for _, a in getaddresses(values) if "@" in a}
        if env.mail_from:
            senders.add(env.mail_from.lower())
        try:
            for sender in sorted(senders):
                if await self.quarantine.allow.is_allowed(sender, env.direction.value):
                    return True
        except (OSError, sqlite3.Error) as exc:  # the list unreadable: checks as usual
            log.warning("allow-list unreadable (%s): checks as usual", type(exc).__name__)
        return False

    async def _audit(self, env: MsgEnvelope, decision: Decision) -> None:
        for f in decision.findings:
            entry = f.extra.get("audit")
            if isinstance(entry, dict):
                fields = {k: v for k, v in entry.items() if k != "event"}
                try:
                    await asyncio.to_thread(self.audit.record, str(entry.get("event")),
                                            queue_id=env.queue_id, who=env.auth_user,
                                            symbols=decision.symbols, **fields)
                except OSError as exc:  # delivered already: say it loudly, lose nothing
                    log.error("audit log %s: cannot write (%s) for %s", self.audit.path,
                              exc.strerror, env.queue_id)

    async def _hold(self, message: Message, symbols: list[str],
                    findings: Sequence[Finding] = ()) -> Reply:
        """Keep the message in the encrypted quarantine (durably, before the 250);
        without one (a handler built alone) in the plain hold folder."""
        env = message.envelope
        held_id = env.queue_id
        try:
            if self.quarantine is not None:
                held_id = await self.quarantine.store.hold(message.raw,
                                                           hold_meta(message, symbols, findings))
            else:
                meta: dict[str, Any] = {
                    "queue_id": env.queue_id, "direction": env.direction.value,
                    "mail_from": env.mail_from, "rcpt_tos": env.rcpt_tos,
                    "mail_options": env.mail_options, "auth_user": env.auth_user,
                    "symbols": symbols, "received_at": time.time(), "size": message.size,
                }
                await asyncio.to_thread(self.hold_folder.hold, env.queue_id, message.raw, meta)
        except (OSError, sqlite3.Error) as exc:
            log.error("quarantine: cannot hold %s: %s", env.queue_id,
                      getattr(exc, "strerror", None) or type(exc).__name__)
            return temporary_reply("4.3.0", "Mise en attente impossible (disque plein ?).",
                                   "Cannot hold the message now (disk full?).")
        return Reply(250, "2.0.0", (
            f"Message reçu et retenu pour vérification par vigie (id {held_id}).",
            f"Message accepted and held for review by vigie (id {held_id}).",
        ))


def hold_meta(message: Message, symbols: Sequence[str], findings: Sequence[Finding] = ()
              ) -> HoldMeta:
    """What the quarantine keeps beside the bytes: nothing of an outbound message's
    content (no subject; reasons from the symbols only)."""
    env = message.envelope
    direction = env.direction.value
    subject = None
    if env.direction is Direction.INBOUND:
        with contextlib.suppress(Exception):  # a broken header: no subject, not an error
            value = message.parsed.get("subject")
            # one line of printable text (it is shown in the digest and the console)
            subject = " ".join(str(value).split())[:300] if value is not None else None
    return HoldMeta(
        direction=direction, mail_from=env.mail_from, rcpt_tos=list(env.rcpt_tos),
        mail_options=list(env.mail_options), symbols=list(symbols),
        reasons=plain_reasons(list(symbols), direction, findings),
        category=categorize(symbols), subject=subject, auth_user=env.auth_user,
        queue_id=env.queue_id, evidence=shown_evidence(findings, direction))


async def _drop_data(state: ConnState) -> None:
    """A DATA the next hop was asked for but that no message followed (too big, a
    line too long, the client gone): the hop is out of it (dropped if it said 354)."""
    pending, state.pending_data = state.pending_data, None
    if pending is not None:
        with contextlib.suppress(Exception):
            await pending
        if state.hop is not None:
            await state.hop.rset()
        state.in_transaction = False


async def close_connection(server: SMTP) -> None:
    """The client is gone: its upstream session goes back to the pool when it is the
    shared account's and out of any transaction, else it is closed."""
    state = getattr(server, "vigie_state", None)
    if isinstance(state, ConnState) and state.pending_mail is not None:
        pending, state.pending_mail = state.pending_mail, None
        with contextlib.suppress(Exception):
            if not 200 <= (await pending).code < 300:
                state.in_transaction = False
    if isinstance(state, ConnState):
        await _drop_data(state)
    if isinstance(state, ConnState) and state.hop is not None:
        hop, state.hop = state.hop, None
        shared = state.credentials is None
        state.credentials = None
        handler = server.event_handler
        pool = handler.pool if isinstance(handler, SubmissionHandler) else None
        if pool is not None and shared:
            if state.in_transaction:
                state.in_transaction = False
                await hop.rset()
            await pool.give(hop)
        else:
            await hop.close()


def _peer_ip(session: Session) -> str | None:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def _tls_info(server: SMTP) -> tuple[str, str] | None:
    transport = server.transport
    if transport is None:
        return None
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    cipher = obj.cipher()
    return str(obj.version()), str(cipher[0]) if cipher else "?"


@functools.lru_cache(maxsize=256)  # host names repeat from message to message
def _clean(text: str | None) -> str:
    return "".join(c for c in (text or "unknown")
                   if c.isascii() and c.isprintable() and c not in "()\\")[:255]


@functools.lru_cache(maxsize=2)
def _date_at(second: int) -> str:
    return formatdate(second, localtime=True)


def _trace_date() -> str:
    """The Received field's date, formatted once a second."""
    return _date_at(int(time.time()))


def received_value(cfg: Config, tls: tuple[str, str] | None, session: Session,
                   env: MsgEnvelope) -> str:
    """RFC 5321 trace field; no recipient address (it may name a patient)."""
    proto = "ESMTP" if session.extended_smtp else "SMTP"
    if tls:
        proto += "S"
    if session.authenticated:
        proto += "A"
    using = f"\r\n\t(using {tls[0]} with cipher {tls[1]})" if tls else ""
    return (f"from {_clean(session.host_name)} ([{env.client_ip or 'unknown'}]){using}\r\n"
            f"\tby {_clean(cfg.hostname)} (vigie) with {proto} id {env.queue_id};\r\n"
            f"\t{_trace_date()}")
