"""The inbound listener: mail from the internet (or the provider's MX) for the practice.

No AUTH; only recipients of the practice's own domains and addresses (never a relay);
STARTTLS offered, not required; the PROXY protocol when a load balancer is in front.
It relays to the practice's mailbox server (or the local Maildir) with the same rule as
submission: the sender hears 250 only once the next hop said 250, or the message is
durably held.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.checks.sender_auth import authserv_id
from gateway.config import Config, parse_listen
from gateway.detect.authres import remove_ours
from gateway.engine import Engine
from gateway.model import Direction, Message, prepend_header
from gateway.model import Envelope as MsgEnvelope
from gateway.policy import Decision, Reply
from gateway.smtp.handler import (
    _ENHANCED,
    HopFactory,
    SubmissionHandler,
    _peer_ip,
    new_queue_id,
    received_value,
    reply_str,
)
from gateway.users import UsersFile

if TYPE_CHECKING:
    from gateway.quarantine.folder import HoldFolder
    from gateway.smtp.server import Gateway, VigieSMTP

log = logging.getLogger("vigie.inbound")

NO_AUTH = "502 5.5.1 Pas d'authentification sur ce port / AUTH not available here"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: list[str]) -> list[Network]:
    return [ipaddress.ip_network(i.strip(), strict=False) for i in items]


def is_trusted(ip: str | None, networks: list[Network]) -> bool:
    if not ip or not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def received_fields(raw: bytes) -> list[str]:
    """The Received field values, topmost first, unfolded."""
    header = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return [" ".join(str(v).split()) for v in header.get_all("Received") or []]


class InboundHandler(SubmissionHandler):
    """The submission hooks, with an open door for the practice's recipients only."""

    def __init__(self, cfg: Config, engine: Engine, hop_factory: HopFactory,
                 users: UsersFile, hold: HoldFolder) -> None:
        super().__init__(cfg, engine, hop_factory, users, hold, None)
        self.domains = {d.strip().lower().rstrip(".") for d in cfg.inbound.domains}
        self.addresses = {a.strip().lower() for a in cfg.inbound.addresses}
        self.trusted = _networks(cfg.inbound.trusted_relays)

    def render(self, reply: Reply) -> str:
        """Replies for a sending server on the Internet: never the practice's internal
        hosts or the mailbox's own error text, nor advice meant for the practice's
        mail program. The code and enhanced status are kept; policy refusals keep
        their reasons (they are about the sender's message)."""
        if reply.code < 400:
            return reply_str(reply, self.cfg)
        status = reply.status
        if not status:
            m = _ENHANCED.match(reply.lines[0]) if reply.lines else None
            status = m.group(1) if m else ("4.0.0" if reply.code < 500 else "5.0.0")
        if status[:1] != str(reply.code)[:1]:
            status = f"{str(reply.code)[:1]}{status[1:]}"
        lines = list(reply.lines)
        if reply.code >= 500 and lines and lines[0].startswith("Message refusé par vigie"):
            fr = [line for line in lines[1:lines.index("---")] if line.startswith("- ")] \
                if "---" in lines else []
            en = [line for line in lines[lines.index("---") + 1:] if line.startswith("- ")] \
                if "---" in lines else []
            text: tuple[str, ...] = (
                "Message refusé par la passerelle de sécurité du cabinet destinataire :",
                *fr, "---",
                "Message refused by the recipient practice's security gateway:", *en)
        elif reply.code >= 500:
            text = ("Message refusé par le serveur de messagerie du cabinet destinataire / "
                    "Refused by the recipient practice's mail server",)
        elif reply.status == "4.7.1":  # the practice's policy asks for a retry on purpose
            text = ("Réessayez plus tard : refus temporaire du cabinet destinataire / "
                    "Please retry later: temporary refusal by the recipient practice",)
        elif any(s in " ".join(lines) for s in ("AUTH_TEMPERROR", "Vérification")):
            text = ("Vérification de l'expéditeur impossible pour l'instant (DNS), réessayez "
                    "plus tard / Sender verification temporarily impossible (DNS), please "
                    "retry later",)
        else:
            text = ("Le cabinet destinataire ne peut pas recevoir ce message pour l'instant, "
                    "réessayez plus tard / The recipient practice cannot take this message "
                    "right now, please retry later",)
        return reply_str(Reply(reply.code, status, text), self.cfg)

    def may_send(self, session: Session) -> bool:
        return True  # anyone may give mail, for the practice's recipients only

    def recipient_refusal(self, address: str) -> str | None:
        low = address.lower()
        if low in self.addresses or low.rpartition("@")[2].rstrip(".") in self.domains:
            return None
        # the domain only: a local part may name a person
        log.info("inbound: recipient refused, not the practice's (domain %s)",
                 low.rpartition("@")[2][:100] or "-")
        return ("550 5.7.1 Destinataire inconnu ici : ce serveur ne reçoit que le courrier "
                "du cabinet (pas de relais) / Relaying denied: not a local recipient")

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        # RFC 5321 4.5.1: a bare <postmaster> must be accepted (it is the practice's)
        if address.lower() == "postmaster" and (self.domains or self.addresses):
            domain = sorted(self.domains)[0] if self.domains else \
                sorted(self.addresses)[0].rpartition("@")[2]
            address = f"postmaster@{domain}"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_PROXY(self, server: SMTP, session: Session, envelope: Envelope,
                           proxy_data: Any) -> bool:
        """A PROXY header is believed from the balancer only: when trusted relays are
        listed, the connection must come from one of them."""
        if self.trusted and not is_trusted(_peer_ip(session), self.trusted):
            log.warning("PROXY header from %s, which is not a trusted relay: closed",
                        _peer_ip(session))
            return False
        return True

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope,
                          args: list[str]) -> str | None:
        return NO_AUTH

    def client(self, session: Session) -> str | None:
        """The connecting client: the PROXY header's source when a balancer sent one."""
        proxy = getattr(session, "proxy_data", None)
        src = getattr(proxy, "src_addr", None) if proxy is not None else None
        if src is not None and getattr(proxy, "valid", False):
            return str(src)
        return _peer_ip(session)

    def message_envelope(self, session: Session, envelope: Envelope, raw: bytes, tls: bool,
                         queue_id: str) -> MsgEnvelope:
        assert envelope.mail_from is not None
        ip, helo = self.client(session), session.host_name
        hops = 0
        if is_trusted(ip, self.trusted):
            ip, helo, hops = self.origin(raw, ip, helo)
            hops = max(hops, 1)  # handed over by a trusted relay
        return MsgEnvelope(
            mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
            direction=Direction.INBOUND, mail_options=list(envelope.mail_options),
            client_ip=ip, helo=helo, auth_user=None, tls=tls, queue_id=queue_id,
            relay_hops=hops,
        )

    def origin(self, raw: bytes, ip: str | None, helo: str | None
               ) -> tuple[str | None, str | None, int]:
        """Behind trusted relays: who handed the message to the first untrusted hop,
        from the Received lines the trusted relays added. (None, None) when a trusted
        relay's line cannot be read: SPF is then not evaluated, never passed."""
        from gateway.detect.received import Origin, origin_from_received

        found = origin_from_received(received_fields(raw), ip or "", self.trusted, helo)
        if not isinstance(found, Origin):
            log.warning("behind trusted relay %s: %s; SPF not evaluated", ip, found.reason)
            return None, None, found.hops_skipped
        return found.ip, found.helo, found.hops_skipped

    def content(self, message: Message, decision: Decision, tls: tuple[str, str] | None,
                session: Session) -> bytes:
        # an Authentication-Results in our name that came from outside is a forgery
        out = remove_ours(self.engine.prepare(message, decision), authserv_id(self.cfg))
        results = message.notes.get("authentication_results")
        if isinstance(results, str):
            out = prepend_header(out, "Authentication-Results", results)
        return prepend_header(out, "Received",
                              received_value(self.cfg, tls, session, message.envelope))


class InboundListener:
    """The inbound SMTP servers of ``vigie serve`` (a service of the Gateway)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        cfg = gateway.cfg

        async def mailbox(_login: str | None, _password: str | None) -> Any:
            return await gateway.mailbox_hop()

        self.handler = InboundHandler(cfg, gateway.engine, mailbox, gateway.users,
                                      gateway.hold)
        self.servers: list[asyncio.Server] = []

    def _protocol(self) -> VigieSMTP:
        from gateway.smtp.server import InboundSMTP

        gw = self.gateway
        cfg = gw.cfg
        proto = InboundSMTP(
            self.handler,
            data_size_limit=cfg.limits.message_size,
            enable_SMTPUTF8=True,
            hostname=cfg.hostname,
            ident="vigie",
            tls_context=gw.tls_context,
            require_starttls=False,
            auth_required=False,
            auth_require_tls=True,
            timeout=cfg.limits.command_timeout,
            proxy_protocol_timeout=10.0 if cfg.inbound.proxy_protocol else None,
        )
        proto.background = gw.background
        proto.live = gw.live
        return proto

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for item in self.gateway.cfg.inbound.listen:
            host, port = parse_listen(item)
            self.servers.append(await loop.create_server(self._protocol, host, port))
        for srv in self.servers:
            for sock in srv.sockets:
                addr = sock.getsockname()
                log.info("listening (inbound) on %s:%d", addr[0], addr[1])

    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            await srv.wait_closed()
        self.servers.clear()


__all__ = ["InboundHandler", "InboundListener", "is_trusted", "new_queue_id",
           "received_fields"]
