"""What the console needs from the quarantine, as one small interface.

The pages only talk to a ``Backend``; ``gateway.web.quarantine_backend`` maps it onto
the quarantine store, tokens, audit log, release and Signal Spam client. Keeping
this seam narrow keeps the pages independent of how the store is built.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.verdict import Reason

ACTIONS = ("release", "delete", "report", "allow")
Action = Literal["release", "delete", "report", "allow"]
TokenProblem = Literal["invalid", "expired", "used", "wrong_action"]


@dataclass(frozen=True)
class Held:
    """One held message as listed (no patient data in clear: an outbound message has
    no subject here, recipients are domains only)."""

    id: str
    received_at: float
    direction: str  # "inbound" | "outbound"
    sender: str
    rcpt_domains: list[str]
    subject: str | None
    size: int
    symbols: list[str]
    reasons: list[Reason]
    category: str  # "patient_data" | "impersonation" | "attachment" | "spam" | "other"
    status: str  # "held" | "released" | "deleted" | "reported" | "purged"
    release_reply: str | None = None
    evidence: list[str] = field(default_factory=list)  # masked by the checks
    from_header: str | None = None  # the From: header (what the reader sees)


@dataclass(frozen=True)
class Filters:
    status: str | None = "held"
    direction: str | None = None
    category: str | None = None
    sender: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class Outcome:
    """What an action did, to show the person who asked for it."""

    ok: bool
    fr: str
    en: str


@dataclass(frozen=True)
class TokenInfo:
    message_id: str
    action: Action


@dataclass(frozen=True)
class TokenError:
    problem: TokenProblem


@dataclass(frozen=True)
class AuditEntry:
    time: datetime.datetime
    event: str
    who: str
    message_id: str = ""
    details: str = ""
    label: tuple[str, str] | None = None  # the event in words (French, English)


@dataclass
class Stats:
    """Counts of held messages since a date: per (category, direction) and per status."""

    by_reason: dict[tuple[str, str], int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


class Backend(Protocol):
    async def find(self, filters: Filters, *, limit: int, offset: int
                   ) -> tuple[list[Held], int]: ...

    async def get(self, message_id: str) -> Held | None: ...

    async def raw(self, message_id: str) -> bytes | None:
        """The decrypted original, or None when it is gone."""
        ...

    async def act(self, message_id: str, action: Action, who: str) -> Outcome: ...

    async def check_signal_spam(self) -> Outcome:
        """The «check credentials» button: the stored Signal Spam login tried."""
        ...

    async def stats(self, since: float) -> Stats: ...

    async def peek_token(self, token: str) -> TokenInfo | TokenError:
        """What a one-click token is for, without using it up."""
        ...

    async def consume_token(self, token: str, action: Action) -> TokenInfo | TokenError: ...

    async def restore_token(self, token: str) -> None:
        """Give back a token whose action did not succeed (the link works again)."""
        ...

    async def audit(self, event: str, who: str, message_id: str = "",
                    **details: Any) -> None: ...

    async def audit_entries(self, *, limit: int, offset: int) -> tuple[list[AuditEntry],
                                                                        int]: ...
