"""The console's ``Backend`` over the quarantine: store, tokens, audit trail, the
actions (release, delete, allow) and the Signal Spam client."""

from __future__ import annotations

import datetime
import logging
import sqlite3
from typing import Any

from gateway.config import Config
from gateway.quarantine import actions, signal_spam
from gateway.quarantine.audit import ACTION_LABELS
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import CATEGORIES, HeldSummary, QuarantineError
from gateway.quarantine.tokens import TokenError as QTokenError
from gateway.quarantine.tokens import (
    TokenExpired,
    TokenUsed,
    TokenWrongAction,
)
from gateway.web.backend import (
    Action,
    AuditEntry,
    Filters,
    Held,
    Outcome,
    Stats,
    TokenError,
    TokenInfo,
)

log = logging.getLogger("vigie.web")

WEB_LABELS = {
    "view_content": ("contenu d'un message envoyé consulté", "outbound content viewed"),
    "login_refused": ("connexion bloquée (trop d'essais)", "login blocked (too many tries)"),
    "one_click": ("lien du récapitulatif utilisé", "digest link used"),
}


def _held(s: HeldSummary) -> Held:
    return Held(id=s.id, received_at=s.received_at, direction=s.direction, sender=s.sender,
                rcpt_domains=list(s.rcpt_domains), subject=s.subject, size=s.size,
                symbols=list(s.symbols), reasons=list(s.reasons), category=s.category,
                status=s.status, release_reply=s.release_reply,
                evidence=list(s.evidence), from_header=s.from_header)


def _token_problem(exc: QTokenError) -> TokenError:
    if isinstance(exc, TokenExpired):
        return TokenError("expired")
    if isinstance(exc, TokenUsed):
        return TokenError("used")
    if isinstance(exc, TokenWrongAction):
        return TokenError("wrong_action")
    return TokenError("invalid")


def _action(name: str) -> Action | None:
    for action in ("release", "delete", "report", "allow"):
        if name == action:
            return action
    return None


def _outcome(result: actions.ActionResult) -> Outcome:
    return Outcome(result.ok, result.fr, result.en)


def _time(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return datetime.datetime.fromtimestamp(0, datetime.UTC)


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(details.items()) if v not in (None, ""))


class QuarantineBackend:
    """Implements ``gateway.web.backend.Backend``."""

    def __init__(self, cfg: Config, quarantine: Quarantine, next_hop: actions.NextHop,
                 signal_spam_client: signal_spam.SignalSpamClient | None = None) -> None:
        self.cfg = cfg
        self.q = quarantine
        self.next_hop = next_hop
        self.client = signal_spam_client  # None: built from the stored login at each use

    async def find(self, filters: Filters, *, limit: int, offset: int
                   ) -> tuple[list[Held], int]:
        items, total = await self.q.store.list(
            status=filters.status, direction=filters.direction, category=filters.category,
            since=filters.since, until=filters.until, sender_like=filters.sender,
            limit=limit, offset=offset)
        return [_held(s) for s in items], total

    async def get(self, message_id: str) -> Held | None:
        summary = await self.q.store.get(message_id)
        return _held(summary) if summary is not None else None

    async def raw(self, message_id: str) -> bytes | None:
        try:
            return await self.q.store.raw(message_id)
        except QuarantineError:
            return None

    async def act(self, message_id: str, action: Action, who: str) -> Outcome:
        try:
            if action == "release":
                return _outcome(await actions.release(self.q, message_id, self.next_hop, who))
            if action == "delete":
                return _outcome(await actions.delete(self.q, message_id, who))
            if action == "allow":
                allowed = await actions.allow_sender(self.q, message_id, who)
                if not allowed.ok:
                    return _outcome(allowed)
                released = await actions.release(self.q, message_id, self.next_hop, who)
                return Outcome(released.ok, f"{allowed.fr} ; {released.fr}",
                               f"{allowed.en}; {released.en}")
            return _outcome(await signal_spam.report_held(
                self.q, self.cfg, message_id, who, self.client,
                deadline=signal_spam.INTERACTIVE_DEADLINE))  # a person is waiting
        except QuarantineError as exc:
            return Outcome(False, exc.fr, exc.en)
        except (OSError, sqlite3.Error) as exc:
            log.error("console: %s of %s failed: %s", action, message_id, type(exc).__name__)
            return Outcome(False, "l'action n'a pas pu être faite (erreur du serveur) ; rien "
                           "n'est perdu, réessayez",
                           "the action could not be done (server error); nothing is lost, "
                           "try again")

    async def check_signal_spam(self) -> Outcome:
        client = self.client or signal_spam.SignalSpamClient.from_config(
            self.cfg, await signal_spam.load_credentials(self.q),
            deadline=signal_spam.INTERACTIVE_DEADLINE)
        result = await client.check_credentials()
        if result.ok:
            return Outcome(True, "identifiants Signal Spam acceptés",
                           "Signal Spam credentials accepted")
        return Outcome(False, result.fr, result.en)

    async def stats(self, since: float) -> Stats:
        stats = Stats()
        for row in await self.q.store.stats(since):
            category = row.category if row.category in CATEGORIES else "other"
            key = (category, row.direction)
            stats.by_reason[key] = stats.by_reason.get(key, 0) + row.count
        for status in ("held", "released", "deleted", "purged"):
            _, total = await self.q.store.list(status=status, since=since, limit=0)
            if total:
                stats.by_status[status] = total
        return stats

    async def peek_token(self, token: str) -> TokenInfo | TokenError:
        try:
            info = await self.q.tokens.check(token)
        except QTokenError as exc:
            return _token_problem(exc)
        action = _action(info.action)
        return TokenInfo(info.message_id, action) if action else TokenError("invalid")

    async def consume_token(self, token: str, action: Action) -> TokenInfo | TokenError:
        try:
            message_id = await self.q.tokens.consume(token, action)
        except QTokenError as exc:
            return _token_problem(exc)
        return TokenInfo(message_id, action)

    async def restore_token(self, token: str) -> None:
        await self.q.tokens.restore(token)

    async def audit(self, event: str, who: str, message_id: str = "", **details: Any
                    ) -> None:
        await self.q.audit.record(event, who, message_id or None, **details)

    async def audit_entries(self, *, limit: int, offset: int
                            ) -> tuple[list[AuditEntry], int]:
        entries, total = await self.q.audit.list(limit, offset)
        out = []
        for e in entries:
            labels = ACTION_LABELS.get(e.action) or WEB_LABELS.get(e.action)
            out.append(AuditEntry(time=_time(e.time), event=e.action, who=e.who or "",
                                  message_id=e.message_id or "", details=_details(e.details),
                                  label=labels))
        return out, total
