"""The next hop: an upstream SMTP server (aiosmtplib) or the local Maildir.

A hop session mirrors the client's transaction live: MAIL and RCPT are passed
on as the client sends them, so per-recipient refusals reach the client, and
the client hears 250 for DATA only once the next hop said 250. vigie keeps no
queue of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import time
from pathlib import Path
from typing import Protocol

import aiosmtplib

from gateway.config import Config
from gateway.policy import Reply, temporary_reply
from gateway.quarantine.folder import Maildir

log = logging.getLogger("vigie.relay")

_TRANSIENT = (OSError, asyncio.TimeoutError, aiosmtplib.SMTPConnectError,
              aiosmtplib.SMTPConnectTimeoutError, aiosmtplib.SMTPServerDisconnected,
              aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPReadTimeoutError, ssl.SSLError)


class HopUnavailable(Exception):
    """The next hop cannot be reached now; carries the 4xx reply for the client."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


class HopAuthRefused(Exception):
    """The upstream refused the credentials; carries its code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def unavailable(detail_fr: str, detail_en: str) -> Reply:
    return temporary_reply("4.4.1",
                           f"Le serveur d'envoi du cabinet est injoignable ({detail_fr}).",
                           f"The practice's outgoing server cannot be reached ({detail_en}).")


def from_response(code: int, message: str) -> Reply:
    """The upstream's own answer, relayed as is (its text keeps its enhanced code)."""
    # 421 means "closing the channel": that is true of the upstream, not of us.
    lines = tuple(message.splitlines()) or ("",)
    return Reply(451 if code == 421 else code, "", lines)


@functools.lru_cache(maxsize=8)
def client_tls_context(ca_file: str, verify: bool) -> ssl.SSLContext:
    """One client TLS context per (CA file, verify): loading the system CA store
    costs ~20 ms of CPU, too much to pay on every upstream connection."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class HopSession(Protocol):
    @property
    def usable(self) -> bool: ...
    async def mail(self, sender: str, options: list[str]) -> Reply: ...
    async def rcpt(self, recipient: str, options: list[str]) -> Reply: ...
    async def data(self, content: bytes, queue_id: str = "") -> Reply: ...
    async def begin_data(self) -> Reply: ...
    async def send_content(self, content: bytes, queue_id: str = "") -> Reply: ...
    async def rset(self) -> None: ...
    async def close(self) -> None: ...


class HopPool:
    """Idle sessions of the shared upstream account, kept for the next client: mail
    programs open a connection per message, and the upstream's TLS handshake and
    EHLO are then paid once rather than for each message. Sessions come back here
    only from finished clients, so there are never more open than were in use at
    once; at most ``size`` wait, each at most ``idle_timeout`` seconds."""

    def __init__(self, size: int, idle_timeout: float) -> None:
        self.size = size
        self.idle_timeout = idle_timeout
        self._idle: list[tuple[float, HopSession]] = []
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> HopSession | None:
        """The most recently used live session, or None; stale ones are closed."""
        now = time.monotonic()
        while self._idle:
            since, hop = self._idle.pop()
            if hop.usable and now - since < self.idle_timeout:
                return hop
            self._close_later(hop)
        return None

    async def give(self, hop: HopSession) -> None:
        """Keep ``hop`` (out of any transaction) for a later client, or close it."""
        self._expire()
        if hop.usable and len(self._idle) < self.size:
            self._idle.append((time.monotonic(), hop))
        else:
            await hop.close()

    def _expire(self) -> None:
        now = time.monotonic()
        keep = []
        for since, hop in self._idle:
            if hop.usable and now - since < self.idle_timeout:
                keep.append((since, hop))
            else:
                self._close_later(hop)
        self._idle = keep

    def _close_later(self, hop: HopSession) -> None:
        task = asyncio.get_running_loop().create_task(hop.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(hop.close() for _, hop in idle), *self._closing,
                             return_exceptions=True)


_QUOTED_LOCAL = re.compile(r'^"(?:[^"\\\r\n]|\\.)*"')
_NOT_IN_ADDRESS = re.compile(r'[\s<>"\x00-\x1f\x7f]')


_LINE_ENDINGS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_LINE_START_DOT = re.compile(rb"(?m)^\.")


def wire_content(content: bytes) -> bytes:
    """A message as DATA sends it: CRLF line endings, a dot doubled at the start of a
    line (RFC 5321 4.5.2), then the end-of-data line; C-speed tests first, so the
    usual message is copied once."""
    crlf = content.count(b"\r\n")
    if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
        content = _LINE_ENDINGS.sub(b"\r\n", content)
    if content[:1] == b"." or b"\n." in content:
        content = _LINE_START_DOT.sub(b"..", content)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _quoted(address: str) -> str:
    """``<address>`` for a MAIL / RCPT line; ValueError when the address could end the
    path early or smuggle parameters (whitespace, <, >, " outside a quoted local part,
    control characters). The null reverse-path (bounces, read receipts) is ``<>``."""
    if address in ("", "<>"):
        return "<>"
    if _NOT_IN_ADDRESS.search(_QUOTED_LOCAL.sub("", address, count=1)):
        raise ValueError("address not permitted on an SMTP command line")
    return f"<{address}>"


class UpstreamSession:
    """One connection to the upstream smarthost, reused across transactions."""

    def __init__(self, cfg: Config, smtp: aiosmtplib.SMTP) -> None:
        self.cfg = cfg
        self.smtp = smtp
        self._in_data = False  # the upstream said 354 and waits for the content

    @classmethod
    async def open(cls, cfg: Config, username: str | None, password: str | None
                   ) -> UpstreamSession:
        up = cfg.upstream
        tls_ctx = client_tls_context(up.ca_file, up.verify) if up.tls != "none" else None
        smtp = aiosmtplib.SMTP(
            hostname=up.host, port=cfg.upstream_port, timeout=up.timeout,
            use_tls=up.tls == "implicit", start_tls=up.tls == "starttls",
            tls_context=tls_ctx, local_hostname=up.helo or cfg.hostname,
        )
        where = f"{up.host}:{cfg.upstream_port}"
        try:
            await smtp.connect()
        except ssl.SSLError as exc:
            smtp.close()
            log.warning("upstream %s: TLS failure: %s", where, exc.reason or type(exc).__name__)
            raise HopUnavailable(unavailable(f"échec TLS avec {where}",
                                             f"TLS failure with {where}")) from exc
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            log.warning("upstream %s refused the connection: %s %s", where, exc.code,
                        exc.message)
            raise HopUnavailable(unavailable(f"{where} a répondu {exc.code}",
                                             f"{where} answered {exc.code}")) from exc
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            smtp.close()
            log.warning("upstream %s unreachable: %s", where, type(exc).__name__)
            raise HopUnavailable(unavailable(f"{where} ne répond pas",
                                             f"{where} does not answer")) from exc
        try:
            if not smtp.esmtp_extensions:  # aiosmtplib forgets them after STARTTLS
                await smtp.ehlo()
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            smtp.close()
            log.warning("upstream %s: EHLO failed: %s", where, type(exc).__name__)
            raise HopUnavailable(unavailable(f"{where} ne répond pas",
                                             f"{where} does not answer")) from exc
        if username is not None and password is not None:
            try:
                await smtp.login(username, password)
            except aiosmtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise HopAuthRefused(exc.code, exc.message) from exc
            except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
                smtp.close()
                log.warning("upstream %s: login failed: %s", where, type(exc).__name__)
                raise HopUnavailable(unavailable(f"connexion à {where} impossible",
                                                 f"cannot log in to {where}")) from exc
        return cls(cfg, smtp)

    @property
    def usable(self) -> bool:
        return self.smtp.is_connected and not self._in_data

    def _options(self, options: list[str]) -> list[str]:
        keep = []
        for opt in options:
            name = opt.split("=", 1)[0].upper()
            if (name == "BODY" and self.smtp.supports_extension("8bitmime")) or (
                    name == "SMTPUTF8" and self.smtp.supports_extension("smtputf8")) or (
                    name == "SIZE" and self.smtp.supports_extension("size")):
                keep.append(opt)
        return keep

    async def mail(self, sender: str, options: list[str]) -> Reply:
        encoding = "utf-8" if any(o.upper() == "SMTPUTF8" for o in options) else "ascii"
        try:
            # Straight to the command: SMTP.mail() parses the address again with
            # email.utils (0.05 ms a message); ours was parsed and checked already.
            resp = await self.smtp.execute_command(
                b"MAIL", b"FROM:" + _quoted(sender).encode(encoding),
                *(o.encode("ascii") for o in self._options(options)))
        except aiosmtplib.SMTPResponseException as exc:
            return from_response(exc.code, exc.message)
        except (UnicodeEncodeError, ValueError):
            return Reply(553, "5.6.7", ("Adresse non transmissible au serveur d'envoi (accents "
                                        "sans SMTPUTF8) / Address cannot be relayed (non-ASCII "
                                        "without SMTPUTF8)",))
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            return self._broken(exc)
        return from_response(resp.code, resp.message)

    async def rcpt(self, recipient: str, options: list[str]) -> Reply:
        try:
            resp = await self.smtp.execute_command(
                b"RCPT", b"TO:" + _quoted(recipient).encode("utf-8"))
        except aiosmtplib.SMTPResponseException as exc:
            return from_response(exc.code, exc.message)
        except ValueError:
            return Reply(553, "5.1.3", ("Adresse de destinataire refusée / Recipient address "
                                        "rejected",))
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            return self._broken(exc)
        return from_response(resp.code, resp.message)

    async def data(self, content: bytes, queue_id: str = "") -> Reply:
        reply = await self.begin_data()
        if reply.code != 354:
            return reply
        return await self.send_content(content, queue_id)

    async def begin_data(self) -> Reply:
        """DATA, up to the upstream's 354 (sent while the client's content travels)."""
        try:
            resp = await self.smtp.execute_command(b"DATA")
        except aiosmtplib.SMTPResponseException as exc:
            return from_response(exc.code, exc.message)
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            return self._broken(exc)
        self._in_data = resp.code == 354
        return from_response(resp.code, resp.message) if resp.code != 354 else \
            Reply(354, "", ("OK",))

    async def send_content(self, content: bytes, queue_id: str = "") -> Reply:
        """The message after the upstream's 354, and its answer to the final dot.

        Written straight to aiosmtplib's protocol (its write and read_response): its
        data() would send DATA again, and normalise and stuff with two regex passes
        that the usual message does not need."""
        protocol = self.smtp.protocol
        if not self._in_data or protocol is None:
            return self._broken(aiosmtplib.SMTPServerDisconnected("no DATA in progress"))
        try:
            protocol.write(wire_content(content))
            # RFC 5321 allows the next hop minutes to answer the final dot; answering
            # 4xx too early makes the client send the message twice.
            resp = await protocol.read_response(timeout=self.cfg.upstream.data_timeout)
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            return self._broken(exc)
        finally:
            self._in_data = False
        return from_response(resp.code, resp.message)

    def abort(self) -> None:
        """Drop the connection in the middle of DATA: the upstream discards what it got
        (a QUIT or RSET would be read as message content)."""
        self._in_data = False
        self.smtp.close()

    def _broken(self, exc: BaseException) -> Reply:
        log.warning("upstream %s: connection lost or timed out (%s)", self.cfg.upstream.host,
                    type(exc).__name__)
        self.smtp.close()
        return temporary_reply(
            "4.4.2", "La connexion au serveur d'envoi du cabinet a été interrompue.",
            "The connection to the practice's outgoing server was lost or timed out.")

    async def rset(self) -> None:
        if self._in_data:
            self.abort()
        if not self.smtp.is_connected:
            return
        try:
            await self.smtp.rset()
        except (*_TRANSIENT, aiosmtplib.SMTPException):
            self.smtp.close()

    async def close(self) -> None:
        if self._in_data:
            self.abort()
        if not self.smtp.is_connected:
            return
        try:
            await asyncio.wait_for(self.smtp.quit(), timeout=5)
        except (*_TRANSIENT, aiosmtplib.SMTPException):
            pass
        finally:
            self.smtp.close()


class MaildirSession:
    """The embedded default: every accepted message lands in one local Maildir."""

    def __init__(self, root: Path, max_recipients: int) -> None:
        self.maildir = Maildir(root)
        self.max_recipients = max_recipients

    @property
    def usable(self) -> bool:
        return True

    async def mail(self, sender: str, options: list[str]) -> Reply:
        return Reply(250, "2.1.0", ("OK",))

    async def rcpt(self, recipient: str, options: list[str]) -> Reply:
        return Reply(250, "2.1.5", ("OK",))

    async def begin_data(self) -> Reply:
        return Reply(354, "", ("OK",))

    async def send_content(self, content: bytes, queue_id: str = "") -> Reply:
        return await self.data(content, queue_id)

    async def data(self, content: bytes, queue_id: str = "") -> Reply:
        try:
            name = await asyncio.to_thread(self.maildir.deliver, content)
        except OSError as exc:
            log.error("local Maildir %s: cannot write: %s", self.maildir.root, exc.strerror)
            return temporary_reply("4.3.0",
                                   "Écriture impossible dans la boîte locale (disque plein ?).",
                                   "Cannot write to the local mailbox (disk full?).")
        # the queue id, as in vigie's log line and Received field
        ident = queue_id or name.split(".")[1]
        return Reply(250, "2.0.0", (f"OK : remis dans la boîte locale / delivered locally "
                                    f"(id {ident})",))

    async def rset(self) -> None:
        return None

    async def close(self) -> None:
        return None
