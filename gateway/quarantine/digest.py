"""The daily digest: what vigie held, grouped by reason, with one-click links.

Built from the store's metadata only, so it can never show an outbound message's
content: for outbound mail a line names the sender, the recipients' domains, the
date and the reasons; inbound lines add the subject. Each line has four links
(release, delete, report to Signal Spam, always allow) to ``<public_url>/a/<token>``,
where the console shows a confirmation page (a GET never acts). HTML and plain-text
parts, French first.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

from gateway.config import Config
from gateway.policy import Reply
from gateway.quarantine.display import visible
from gateway.quarantine.reasons import CATEGORY_TITLES
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import CATEGORIES, HeldSummary
from gateway.smtp.relay import HopSession, HopUnavailable

log = logging.getLogger("vigie.digest")

HopFactory = Callable[[str | None, str | None], Awaitable[HopSession]]

LINK_ACTIONS = ("release", "delete", "report", "allow")
LINK_LABELS = {
    "fr": {"release": "Libérer", "delete": "Supprimer", "report": "Signaler à Signal Spam",
           "allow": "Toujours autoriser cet expéditeur"},
    "en": {"release": "Release", "delete": "Delete", "report": "Report to Signal Spam",
           "allow": "Always allow this sender"},
}
_TEXT = {
    "fr": {
        "subject_one": "vigie : 1 message retenu", "subject_many": "vigie : {n} messages retenus",
        "subject_none": "vigie : aucun message retenu",
        "intro": "Messages retenus par vigie du {start} au {end} ({n}).",
        "none": "Aucun message n'a été retenu du {start} au {end}.",
        "from": "De", "envelope": "Expéditeur de l'enveloppe", "size": "Taille",
        "to": "Vers", "subject": "Objet", "date": "Reçu le", "why": "Raisons",
        "outbound": "envoi du cabinet", "inbound": "reçu",
        "no_links": "Les boutons d'action demandent l'adresse de la console ([digest] "
                    "public_url ou [web] public_url) : agissez depuis « vigie quarantine ».",
        "links_note": "Chaque lien ouvre une page de confirmation : rien n'est fait sans "
                      "votre clic sur le bouton de cette page. Liens valables {days} jours.",
        "footer": "Résumé quotidien envoyé par vigie, la passerelle de sécurité du cabinet. "
                  "Les messages sont effacés après {retention} jours.",
        "other_lang": "vigie's daily summary of held mail; in English: [digest] language = "
                      "\"en\".",
        "id": "identifiant",
        "earlier": "Toujours retenus depuis les jours précédents",
        "more": "… et {more} autre(s) message(s) retenu(s) : voyez la console de vigie "
                "(« vigie quarantine list »).",
    },
    "en": {
        "subject_one": "vigie: 1 message held", "subject_many": "vigie: {n} messages held",
        "subject_none": "vigie: no message held",
        "intro": "Messages held by vigie from {start} to {end} ({n}).",
        "none": "No message was held from {start} to {end}.",
        "from": "From", "envelope": "Envelope sender", "size": "Size",
        "to": "To", "subject": "Subject", "date": "Received", "why": "Reasons",
        "outbound": "sent by the practice", "inbound": "received",
        "no_links": "The action buttons need the console's address ([digest] public_url or "
                    "[web] public_url): act with 'vigie quarantine'.",
        "links_note": "Each link opens a confirmation page: nothing happens until you click "
                      "its button. Links are valid for {days} days.",
        "footer": "Daily summary sent by vigie, the practice's mail security gateway. Held "
                  "messages are erased after {retention} days.",
        "other_lang": "Résumé quotidien de vigie ([digest] language = \"fr\" pour le français).",
        "id": "id",
        "earlier": "Still held from earlier days",
        "more": "… and {more} more held message(s): see the vigie console "
                "('vigie quarantine list').",
    },
}


@dataclass(frozen=True, slots=True)
class DigestLine:
    summary: HeldSummary
    links: dict[str, str]  # action -> URL (empty without a public URL)


@dataclass(frozen=True, slots=True)
class Digest:
    subject: str
    text: str
    html: str
    count: int
    since: float
    until: float


def _when(ts: float, tz: ZoneInfo, *, seconds: bool = False) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%d/%m/%Y %H:%M:%S" if seconds
                                                   else "%d/%m/%Y %H:%M")


def _size(n: int, lang: str) -> str:
    unit = ("B", "KB", "MB") if lang == "en" else ("o", "Ko", "Mo")
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} {unit[2]}"
    if n >= 1024:
        return f"{n / 1024:.0f} {unit[1]}"
    return f"{n} {unit[0]}"


def render(lines: Sequence[DigestLine], *, since: float, until: float, tz: ZoneInfo,
           lang: str = "fr", token_days: int = 7, retention_days: int = 30,
           more: int = 0) -> Digest:
    """The digest's subject, plain text and HTML (pure: no I/O)."""
    t = _TEXT["en" if lang == "en" else "fr"]
    labels = LINK_LABELS["en" if lang == "en" else "fr"]
    n = len(lines) + more
    sep = ": " if lang == "en" else " : "  # French puts a space before the colon
    start, end = _when(since, tz), _when(until, tz)
    subject = (t["subject_none"] if n == 0 else t["subject_one"] if n == 1
               else t["subject_many"].format(n=n))
    text: list[str] = []
    out: list[str] = [
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>"
        f"{html.escape(subject)}</title></head>"
        "<body style=\"font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#222;"
        "max-width:720px\">"]
    intro = (t["none"].format(start=start, end=end) if n == 0
             else t["intro"].format(start=start, end=end, n=n))
    text.append(intro)
    out.append(f"<p>{html.escape(intro)}</p>")
    has_links = any(line.links for line in lines)
    recent = [line for line in lines if line.summary.received_at >= since]
    older = [line for line in lines if line.summary.received_at < since]
    sections: list[tuple[str, list[DigestLine]]] = []
    for category in CATEGORIES:
        group = [line for line in recent if line.summary.category == category]
        title = CATEGORY_TITLES[category]
        sections.append(((title.en if lang == "en" else title.fr), group))
    sections.append((t["earlier"], older))  # a failed release is not forgotten
    for title_text, group in sections:
        if not group:
            continue
        heading = title_text + f" ({len(group)})"
        text += ["", heading, "=" * len(heading)]
        out.append(f"<h2 style=\"font-size:18px;border-bottom:1px solid #ccc\">"
                   f"{html.escape(heading)}</h2>")
        for line in group:
            s = line.summary
            reasons = "; ".join(r.en if lang == "en" else r.fr for r in s.reasons) or "-"
            # the From: header is what a forger fakes and what the reader knows; the
            # envelope sender comes second
            if s.from_header and s.direction == "inbound":
                fields = [(t["from"], s.from_header), (t["envelope"], s.sender or "<>")]
            else:
                fields = [(t["from"], s.sender or "<>")]
            if s.direction == "outbound":
                fields.append((t["to"], ", ".join(s.rcpt_domains) + f" ({t['outbound']})"))
            elif s.subject:
                fields.append((t["subject"], s.subject))
            # to the second, with the size: two mails to gmail.com in the same minute
            # must not look alike
            fields += [(t["date"], _when(s.received_at, tz, seconds=True)),
                       (t["size"], _size(s.size, lang)), (t["why"], reasons)]
            fields = [(k, visible(v)) for k, v in fields]  # no RLO trick in a name
            text.append("")
            for k, v in fields:
                text.append(f"  {k}{sep}{v}")
            text.append(f"  ({t['id']} {s.id})")
            for action in LINK_ACTIONS:
                if action in line.links:
                    text.append(f"  {labels[action]}{sep}{line.links[action]}")
            out.append("<div style=\"margin:12px 0;padding:10px;border:1px solid #ddd;"
                       "border-radius:6px\"><table style=\"border-collapse:collapse\">")
            for k, v in fields:
                out.append(f"<tr><td style=\"padding:2px 10px 2px 0;color:#666\">"
                           f"{html.escape(k)}</td><td>{html.escape(v)}</td></tr>")
            out.append("</table><p style=\"margin:8px 0 0\">")
            for action in LINK_ACTIONS:
                if action in line.links:
                    colour = "#1a7f37" if action == "release" else "#555"
                    out.append(f"<a href=\"{html.escape(line.links[action], quote=True)}\" "
                               f"style=\"display:inline-block;margin:4px 6px 0 0;padding:6px "
                               f"10px;border-radius:4px;background:{colour};color:#fff;"
                               f"text-decoration:none\">{html.escape(labels[action])}</a>")
            out.append(f"<span style=\"color:#999;font-size:12px\">{t['id']} "
                       f"{html.escape(s.id)}</span></p></div>")
    if more:
        extra = t["more"].format(more=more)
        text += ["", extra]
        out.append(f"<p><strong>{html.escape(extra)}</strong></p>")
    if n:
        note = t["links_note"].format(days=token_days) if has_links else t["no_links"]
        text += ["", note]
        out.append(f"<p style=\"color:#555\">{html.escape(note)}</p>")
    footer = t["footer"].format(retention=retention_days)
    text += ["", "-- ", footer, t["other_lang"]]
    out.append(f"<p style=\"color:#888;font-size:12px\">{html.escape(footer)}<br>"
               f"{html.escape(t['other_lang'])}</p></body></html>")
    return Digest(subject=subject, text="\n".join(text) + "\n", html="".join(out) + "\n",
                  count=n, since=since, until=until)


def actions_for(summary: HeldSummary) -> tuple[str, ...]:
    """The one-click actions a line offers: mail the practice sent is never reported to
    Signal Spam, and its sender is not exempted from the patient data check."""
    from gateway.engine import allow_lifts

    if summary.direction == "outbound":
        return ("release", "delete")
    if not allow_lifts(summary.direction, summary.symbols):
        return ("release", "delete", "report")
    return LINK_ACTIONS


def public_url(cfg: Config) -> str:
    """Base of the one-click links: [digest] public_url, else the console's."""
    base = cfg.digest.public_url or str(getattr(cfg.web, "public_url", "") or "")
    return base.rstrip("/")


MAX_LINES = 200


DRY_RUN_TOKEN = "LIEN-D-EXEMPLE-inactif-dry-run"  # noqa: S105 - a placeholder


async def build(quarantine: Quarantine, cfg: Config, *, since: float, until: float,
                limit: int = 5000, max_lines: int = MAX_LINES,
                dry_run: bool = False, earlier: bool = False) -> Digest:
    """The digest of messages held in [since, until) and still held; issues the links'
    tokens (up to four per message) in one transaction. A mail can only be so long:
    beyond ``max_lines`` messages the digest says how many more the console lists.
    ``earlier``: messages held before ``since`` and still held come too, in their own
    section (the daily digest: a release that failed must come back, not vanish).
    ``dry_run`` (``vigie digest --dry-run``): placeholder links, no token issued — a
    printed digest must not carry working 7-day release links."""
    first = None if earlier else since
    items, _ = await quarantine.store.list(status="held", since=first, until=until,
                                           limit=limit)
    # list() is capped per page: read on for large days
    while len(items) < limit:
        page, total = await quarantine.store.list(status="held", since=first, until=until,
                                                  limit=1000, offset=len(items))
        if not page:
            break
        items += page
        if len(items) >= total:
            break
    items.sort(key=lambda s: (s.received_at < since, s.received_at))  # the period first
    more = max(0, len(items) - max_lines)
    items = items[:max_lines]
    base = public_url(cfg)
    lines: list[DigestLine] = []
    if base and items and dry_run:
        lines = [DigestLine(s, {a: f"{base}/a/{DRY_RUN_TOKEN}" for a in actions_for(s)})
                 for s in items]
    elif base and items:
        pairs = [(s.id, a) for s in items for a in actions_for(s)]
        tokens = iter(await quarantine.tokens.issue_many(pairs))
        for s in items:
            lines.append(DigestLine(s, {a: f"{base}/a/{next(tokens)}" for a in actions_for(s)}))
    else:
        lines = [DigestLine(s, {}) for s in items]
    return render(lines, since=since, until=until, tz=ZoneInfo(cfg.digest.timezone),
                  lang=cfg.digest.language, token_days=cfg.quarantine.token_days,
                  retention_days=cfg.quarantine.retention_days, more=more)


def sender_address(cfg: Config) -> str:
    return cfg.digest.sender or f"vigie@{cfg.hostname}"


def as_message(digest: Digest, cfg: Config, *, now: float | None = None) -> bytes:
    """The digest as a MIME message (multipart/alternative: text, then HTML)."""
    msg = EmailMessage()
    msg["From"] = f"vigie <{sender_address(cfg)}>"
    msg["To"] = ", ".join(cfg.digest.recipients)
    msg["Subject"] = digest.subject
    msg["Date"] = formatdate(now if now is not None else time.time(), localtime=True)
    domain = sender_address(cfg).rpartition("@")[2] or "vigie.invalid"
    msg["Message-ID"] = make_msgid("digest", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Vigie-Digest"] = "1"
    msg.set_content(digest.text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(digest.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


@dataclass(frozen=True, slots=True)
class SendOutcome:
    sent: bool
    count: int
    code: int = 0
    reply: str = ""
    fr: str = ""
    en: str = ""


async def send(digest: Digest, cfg: Config, hop: HopSession) -> Reply:
    """Hand the digest to the next hop (the normal relay); its final answer."""
    raw = as_message(digest, cfg)
    try:
        reply = await hop.mail(sender_address(cfg), ["BODY=8BITMIME"])
        if not 200 <= reply.code < 300:
            return reply
        accepted = 0
        last = reply
        for rcpt in cfg.digest.recipients:
            last = await hop.rcpt(rcpt, [])
            accepted += 200 <= last.code < 300
        if not accepted:
            await hop.rset()
            return last
        return await hop.data(raw, "DIGEST")
    finally:
        await hop.close()


def _period_start(now: float) -> float:
    return now - 24 * 3600


async def run_digest(quarantine: Quarantine, cfg: Config, hop_factory: HopFactory, *,
                     now: float | None = None, since: float | None = None,
                     force: bool = False) -> SendOutcome:
    """Build and send the digest of the last 24 hours (or since ``since``). Nothing is
    sent when nothing was held, unless ``[digest] send_empty`` or ``force``."""
    until = time.time() if now is None else now
    start = _period_start(until) if since is None else since
    if not cfg.digest.recipients:
        return SendOutcome(False, 0, fr="aucun destinataire ([digest] recipients)",
                           en="no recipients ([digest] recipients)")
    digest = await build(quarantine, cfg, since=start, until=until, earlier=True)
    if digest.count == 0 and not (cfg.digest.send_empty or force):
        log.info("digest: nothing held, nothing sent")
        return SendOutcome(False, 0, fr="aucun message retenu : rien envoyé",
                           en="no message held: nothing sent")
    try:
        hop = await hop_factory(None, None)
    except HopUnavailable as exc:
        log.warning("digest: next hop unreachable: %s", exc.reply.text)
        return SendOutcome(False, digest.count, exc.reply.code, exc.reply.text,
                           "serveur d'envoi injoignable : résumé non envoyé",
                           "outgoing server unreachable: digest not sent")
    reply = await send(digest, cfg, hop)
    ok = 200 <= reply.code < 300
    text = " ".join(reply.lines)
    log.info("digest: %d message(s), sent to %d recipient(s): %d", digest.count,
             len(cfg.digest.recipients), reply.code)
    return SendOutcome(ok, digest.count, reply.code, text,
                       "résumé envoyé" if ok else "résumé refusé par le serveur d'envoi",
                       "digest sent" if ok else "digest refused by the outgoing server")


def next_run(now: datetime, at: str, tz: ZoneInfo) -> datetime:
    """The next time the wall clock of ``tz`` shows ``at`` (HH:MM) after ``now``, in UTC.

    A time that does not exist that day (clocks go forward) runs when it would have,
    one hour later on the new clock; a time that happens twice (clocks go back) runs
    the first time."""
    hour, minute = (int(p) for p in at.strip().split(":"))
    local_now = now.astimezone(tz)
    day = local_now.date()
    for _ in range(3):
        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz, fold=0)
        when = candidate.astimezone(UTC)
        if when > now.astimezone(UTC):
            return when
        day = datetime.fromordinal(day.toordinal() + 1).date()
    raise AssertionError("unreachable")  # pragma: no cover
