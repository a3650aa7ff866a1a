"""What a person can do to a held message: release, delete, always allow its sender,
report it (``gateway.quarantine.signal_spam``). Each action is audited.

Release re-injects the original bytes, unchanged, through the relay: outbound mail
to the upstream, inbound mail to the mailbox; the next hop's answer is recorded. A
temporary refusal (4xx) or an unreachable hop keeps the message held (try again
later); a permanent one (5xx) is recorded and the message stays held, to be deleted.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

from gateway.config import Config
from gateway.policy import Reply
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import Gone, NotFound, QuarantineError
from gateway.smtp.relay import HopAuthRefused, HopSession, HopUnavailable

log = logging.getLogger("vigie.quarantine")

# direction ("inbound" / "outbound") -> a new session to the next hop
NextHop = Callable[[str], Awaitable[HopSession]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an action, as the console and the CLI show it."""

    ok: bool
    action: str
    message_id: str
    fr: str
    en: str
    code: int = 0  # the next hop's reply code, for a release
    reply: str = ""  # the next hop's reply text, for a release
    status: str = ""  # the message's status afterwards

    @property
    def text(self) -> str:
        return f"{self.fr}\n{self.en}"


class AlreadyDone(QuarantineError):
    def __init__(self, message_id: str, status: str) -> None:
        fr = {"released": "déjà libéré", "deleted": "déjà supprimé",
              "purged": "déjà effacé (délai de conservation dépassé)"}
        super().__init__(f"message {message_id} {fr.get(status, status)}",
                         f"message {message_id} already {status}")


def gateway_hops(gateway: object) -> NextHop:
    """The next hops of a ``gateway.smtp.server.Gateway``: the upstream for outbound
    mail, the mailbox for inbound mail."""
    from gateway.smtp.server import Gateway

    assert isinstance(gateway, Gateway)

    async def next_hop(direction: str) -> HopSession:
        if direction == "inbound":
            return await gateway.mailbox_hop()
        return await gateway.hop_factory(None, None)

    # release() reads it to add vigie's trace lines to what it re-injects
    next_hop.cfg = gateway.cfg  # type: ignore[attr-defined]
    return next_hop


def released_bytes(raw: bytes, direction: str, who: str | None, message_id: str,
                   cfg: Config) -> bytes:
    """What a release hands on: the original bytes, without any Authentication-Results
    in vigie's own name (a forgery: vigie adds its own only when it delivers), below
    one Received line and one X-Vigie-Released field saying who let it through."""
    from gateway.checks.sender_auth import authserv_id
    from gateway.detect.authres import remove_ours
    from gateway.model import prepend_header

    out = remove_ours(raw, authserv_id(cfg)) if direction == "inbound" else raw
    when = formatdate(localtime=True)
    by = re.sub(r"[^A-Za-z0-9._@]+", "-", unicodedata.normalize(
        "NFKD", who or "vigie").encode("ascii", "ignore").decode()).strip("-")[:64] or "vigie"
    out = prepend_header(out, "X-Vigie-Released", f"by {by}; {when}")
    return prepend_header(out, "Received", f"from quarantine by {cfg.hostname} (vigie) with "
                          f"local id {message_id} (released by {by});\r\n\t{when}")


_busy: set[str] = set()


def _reply_text(reply: Reply) -> str:
    return " ".join(line for line in reply.lines if line).strip()[:500] or str(reply.code)


async def _send(hop: HopSession, mail_from: str, rcpt_tos: list[str], options: list[str],
                raw: bytes, message_id: str) -> Reply:
    reply = await hop.mail(mail_from, options)
    if not 200 <= reply.code < 300:
        return reply
    refusals: list[Reply] = []
    for rcpt in rcpt_tos:
        answer = await hop.rcpt(rcpt, [])
        if not 200 <= answer.code < 300:
            refusals.append(answer)
    if len(refusals) == len(rcpt_tos):
        await hop.rset()
        return refusals[0]
    return await hop.data(raw, message_id)


async def release(quarantine: Quarantine, message_id: str, next_hop: NextHop,
                  who: str | None) -> ActionResult:
    """Send the held message on, exactly as it was received; record the answer."""
    summary = await quarantine.store.get(message_id)
    if summary is None:
        raise NotFound(message_id)
    if summary.status != "held":
        raise AlreadyDone(message_id, summary.status)
    if message_id in _busy:
        return ActionResult(False, "release", message_id, "libération déjà en cours",
                            "release already in progress", status="held")
    _busy.add(message_id)
    try:
        held = await quarantine.store.open(message_id)
        try:
            hop = await next_hop(summary.direction)
        except HopUnavailable as exc:
            reply = exc.reply
        except HopAuthRefused as exc:
            reply = Reply(451 if exc.code < 500 else exc.code, "", (exc.text,))
        else:
            cfg = getattr(next_hop, "cfg", None)
            content = (released_bytes(held.raw, summary.direction, who, message_id, cfg)
                       if isinstance(cfg, Config) else held.raw)
            try:
                reply = await _send(hop, held.mail_from, held.rcpt_tos, held.mail_options,
                                    content, message_id)
            except HopUnavailable as exc:
                reply = exc.reply
            finally:
                await hop.close()
        text = f"{reply.code} {_reply_text(reply)}"
        if 200 <= reply.code < 300:
            await quarantine.store.set_status(message_id, "released", reply=text, who=who)
            status, ok = "released", True
            fr = "message libéré : le serveur suivant l'a accepté"
            en = "message released: the next server accepted it"
        else:
            await quarantine.store.set_status(message_id, "held", reply=text, who=who)
            status, ok = "held", False
            if reply.code < 500:
                fr = ("libération impossible pour l'instant (le serveur suivant ne répond pas "
                      "ou refuse temporairement) : le message reste retenu, réessayez plus tard")
                en = ("cannot release now (the next server is unreachable or refused for now): "
                      "the message stays held, try again later")
            else:
                fr = "le serveur suivant a refusé le message : il reste retenu"
                en = "the next server refused the message: it stays held"
        await quarantine.audit.record("release", who, message_id, ok=ok, reply_code=reply.code,
                                      direction=summary.direction)
        log.info("quarantine: release of %s by %s: %d", message_id, who or "-", reply.code)
        return ActionResult(ok, "release", message_id, fr, en, code=reply.code, reply=text,
                            status=status)
    finally:
        _busy.discard(message_id)


async def delete(quarantine: Quarantine, message_id: str, who: str | None) -> ActionResult:
    """Delete a held message: its content is erased at once."""
    summary = await quarantine.store.get(message_id)
    if summary is None:
        raise NotFound(message_id)
    if summary.status in ("deleted", "purged"):
        raise Gone(message_id, summary.status)
    await quarantine.store.set_status(message_id, "deleted", who=who)
    await quarantine.audit.record("delete", who, message_id, direction=summary.direction)
    return ActionResult(True, "delete", message_id, "message supprimé", "message deleted",
                        status="deleted")


async def allow_sender(quarantine: Quarantine, message_id: str, who: str | None
                       ) -> ActionResult:
    """Always allow the held message's sender (for its direction)."""
    summary = await quarantine.store.get(message_id)
    if summary is None:
        raise NotFound(message_id)
    if "@" not in summary.sender:
        return ActionResult(False, "allow", message_id,
                            "ce message n'a pas d'adresse d'expéditeur à autoriser",
                            "this message has no sender address to allow",
                            status=summary.status)
    from gateway.engine import allow_lifts

    if summary.direction == "inbound" and not allow_lifts(summary.direction, summary.symbols):
        return ActionResult(False, "allow", message_id,
                            "«toujours autoriser» ne change rien pour ce motif (pièce jointe "
                            "dangereuse, faux expéditeur mssante.fr ou domaine imité) : "
                            "libérez ce message seul si vous êtes sûr de lui",
                            "'always allow' changes nothing for this reason (dangerous "
                            "attachment, forged mssante.fr sender or look-alike domain): "
                            "release this message alone if you are sure of it",
                            status=summary.status)
    if summary.direction == "outbound" and summary.category == "patient_data":
        return ActionResult(False, "allow", message_id,
                            "un expéditeur du cabinet ne peut pas être dispensé du contrôle "
                            "des données de patient ; libérez ce message seul",
                            "a sender of the practice cannot skip the patient data check; "
                            "release this message alone", status=summary.status)
    added = await quarantine.allow.add(summary.sender, summary.direction, who)
    await quarantine.audit.record("allow", who, message_id, sender=summary.sender,
                                  direction=summary.direction)
    fr = (f"{summary.sender} sera toujours autorisé" if added
          else f"{summary.sender} était déjà autorisé")
    en = f"{summary.sender} will always be allowed" if added else \
        f"{summary.sender} was already allowed"
    return ActionResult(True, "allow", message_id, fr, en, status=summary.status)
