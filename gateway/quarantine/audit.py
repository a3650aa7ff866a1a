"""The audit trail of quarantine and console actions, over the append-only audit log.

Release, delete, report, allow-sender, login and the senders' overrides all go to
the one JSON-lines file of ``gateway.audit`` (appended and fsynced, never rewritten):
who did what, when, on which message. Never message content.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import AuditLog

AUDIT_ACTIONS = ("release", "delete", "report", "allow", "override", "login", "login_failed",
                 "logout", "purge", "signal_spam_login")

ACTION_LABELS = {
    "release": ("libération", "release"), "delete": ("suppression", "delete"),
    "report": ("signalement à Signal Spam", "report to Signal Spam"),
    "allow": ("expéditeur toujours autorisé", "sender always allowed"),
    "override": ("envoi non sécurisé demandé", "unsecured sending requested"),
    "login": ("connexion à la console", "console login"),
    "login_failed": ("connexion refusée", "login refused"),
    "logout": ("déconnexion", "logout"),
    "purge": ("effacement après le délai de conservation", "purge after retention"),
    "signal_spam_login": ("identifiants Signal Spam enregistrés", "Signal Spam login saved"),
}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: str  # ISO 8601 with the UTC offset
    action: str
    who: str | None
    message_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


def _entry(raw: dict[str, Any]) -> AuditEntry:
    details = {k: v for k, v in raw.items()
               if k not in ("time", "event", "who", "message_id", "queue_id")}
    message_id = raw.get("message_id") or raw.get("queue_id")
    who = raw.get("who")
    return AuditEntry(time=str(raw.get("time", "")), action=str(raw.get("event", "")),
                      who=str(who) if who is not None else None,
                      message_id=str(message_id) if message_id else None, details=details)


class AuditTrail:
    """Async recording and listing over the audit file (``cfg.audit_log``)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def record_sync(self, action: str, who: str | None, message_id: str | None = None,
                    **details: Any) -> None:
        fields: dict[str, Any] = {"who": who, **details}
        if message_id is not None:
            fields["message_id"] = message_id
        self.log.record(action, **fields)

    async def record(self, action: str, who: str | None, message_id: str | None = None,
                     **details: Any) -> None:
        """Append one entry, fsynced before returning. ``details`` must hold no patient
        data (addresses of outbound recipients, subjects, bodies)."""
        await asyncio.to_thread(self.record_sync, action, who, message_id, **details)

    async def list(self, limit: int = 50, offset: int = 0, *, action: str | None = None,
                   message_id: str | None = None) -> tuple[list[AuditEntry], int]:
        """Newest first: one page, and the number of all entries that match."""
        raw = await asyncio.to_thread(self.log.entries)
        entries = [_entry(e) for e in reversed(raw)]
        if action is not None:
            entries = [e for e in entries if e.action == action]
        if message_id is not None:
            entries = [e for e in entries if e.message_id == message_id]
        offset = max(0, offset)
        return entries[offset:offset + max(0, limit)], len(entries)
