"""One-click tokens of the digest: random, stored hashed, expiring, single-use, bound
to one held message and one action.

The token itself (43 URL-safe characters, 256 random bits) is only in the link; the
database keeps its SHA-256. ``check()`` (for the confirmation page a GET shows) reads
without consuming; ``consume()`` (the POST) marks it used atomically, so two clicks
act once. Each failure is its own exception, with a French and English message.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.quarantine.db import Database, transaction

Action = Literal["release", "delete", "report", "allow"]
ACTIONS: tuple[Action, ...] = ("release", "delete", "report", "allow")
DEFAULT_TTL = 7 * 24 * 3600.0

ACTION_FR = {"release": "libérer", "delete": "supprimer", "report": "signaler à Signal Spam",
             "allow": "toujours autoriser cet expéditeur"}


class TokenError(Exception):
    """A link that cannot be used; str() is French then English."""

    fr = "lien invalide"
    en = "invalid link"

    def __init__(self) -> None:
        super().__init__(f"{self.fr}\n{self.en}")


class TokenUnknown(TokenError):
    fr = "lien inconnu ou incomplet (vérifiez qu'il a été copié en entier)"
    en = "unknown or incomplete link (check that it was copied whole)"


class TokenExpired(TokenError):
    fr = "lien expiré : ouvrez la console de vigie pour agir sur ce message"
    en = "link expired: open the vigie console to act on this message"


class TokenUsed(TokenError):
    fr = "lien déjà utilisé : l'action a déjà été faite"
    en = "link already used: the action was already done"


class TokenWrongAction(TokenError):
    fr = "ce lien n'est pas fait pour cette action"
    en = "this link is not for this action"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    message_id: str
    action: str
    expires_at: float


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class Tokens:
    """Tokens kept (hashed) in the quarantine database."""

    def __init__(self, db: Database, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.ttl = ttl
        self.now = clock  # tests move time forward

    def issue_sync(self, conn: sqlite3.Connection, message_id: str, action: str,
                   ttl: float | None = None) -> str:
        if action not in ACTIONS:
            raise ValueError(f"action {action!r}")
        token = secrets.token_urlsafe(32)
        now = self.now()
        conn.execute("INSERT INTO tokens (hash, message_id, action, created_at, expires_at)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (_hash(token), message_id, action, now, now + (ttl or self.ttl)))
        return token

    async def issue(self, message_id: str, action: str, ttl: float | None = None) -> str:
        """A new token for ``action`` on ``message_id``, valid ``ttl`` seconds."""
        return await self.db.run(lambda conn: transaction(
            conn, lambda c: self.issue_sync(c, message_id, action, ttl)))

    async def issue_many(self, pairs: list[tuple[str, str]], ttl: float | None = None
                         ) -> list[str]:
        """Tokens for many (message_id, action) pairs, in one transaction."""
        return await self.db.run(lambda conn: transaction(
            conn, lambda c: [self.issue_sync(c, m, a, ttl) for m, a in pairs]))

    def _lookup(self, conn: sqlite3.Connection, token: str, action: str | None,
                now: float) -> tuple[bytes, TokenInfo]:
        if not 20 <= len(token) <= 100:
            raise TokenUnknown()
        digest = _hash(token)
        row = conn.execute("SELECT message_id, action, expires_at, used_at FROM tokens"
                           " WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise TokenUnknown()
        message_id, bound, expires_at, used_at = row
        if action is not None and bound != action:
            raise TokenWrongAction()
        if used_at is not None:
            raise TokenUsed()
        if expires_at <= now:
            raise TokenExpired()
        return digest, TokenInfo(message_id, bound, expires_at)

    async def check(self, token: str, action: str | None = None) -> TokenInfo:
        """What the token is for, without using it (the GET's confirmation page)."""
        now = self.now()
        return (await self.db.run(lambda conn: self._lookup(conn, token, action, now)))[1]

    async def consume(self, token: str, action: str) -> str:
        """Use the token for ``action`` (once): the message id it is bound to."""
        now = self.now()

        def use(conn: sqlite3.Connection) -> str:
            def body(c: sqlite3.Connection) -> str:
                digest, info = self._lookup(c, token, action, now)
                c.execute("UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL",
                          (now, digest))
                return info.message_id
            return transaction(conn, body)

        return await self.db.run(use)

    async def restore(self, token: str) -> None:
        """Make a used token usable again: its action was tried and did not succeed
        (the next hop refused for now, unreachable…), so the link must still work."""
        digest = _hash(token)
        await self.db.run(lambda conn: transaction(conn, lambda c: c.execute(
            "UPDATE tokens SET used_at = NULL WHERE hash = ?", (digest,))))
