"""«Always allow this sender»: (sender address, direction) pairs the checks consult.

Stored in the quarantine database; the policy decides what an allowed sender skips
(``is_allowed`` only answers the question).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from gateway.quarantine.db import Database, transaction


@dataclass(frozen=True, slots=True)
class AllowedSender:
    sender: str
    direction: str
    added_at: float
    added_by: str | None


def normalise(sender: str) -> str:
    return sender.strip().strip("<>").lower()


class AllowList:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, sender: str, direction: str, who: str | None = None) -> bool:
        """Allow ``sender`` for ``direction``; False when it already was."""
        address = normalise(sender)
        if "@" not in address:
            raise ValueError("not an address")

        def insert(conn: sqlite3.Connection) -> bool:
            return bool(transaction(conn, lambda c: c.execute(
                "INSERT OR IGNORE INTO allowed_senders (sender, direction, added_at, added_by)"
                " VALUES (?, ?, ?, ?)", (address, direction, time.time(), who)).rowcount))

        return await self.db.run(insert)

    async def remove(self, sender: str, direction: str) -> bool:
        address = normalise(sender)
        return bool(await self.db.run(lambda conn: transaction(conn, lambda c: c.execute(
            "DELETE FROM allowed_senders WHERE sender = ? AND direction = ?",
            (address, direction)).rowcount)))

    async def is_allowed(self, sender: str, direction: str | None = None) -> bool:
        """Is ``sender`` allowed (for ``direction``, or for any direction when None)?"""
        address = normalise(sender)
        if direction is None:
            row = await self.db.run(lambda conn: conn.execute(
                "SELECT 1 FROM allowed_senders WHERE sender = ?", (address,)).fetchone())
        else:
            row = await self.db.run(lambda conn: conn.execute(
                "SELECT 1 FROM allowed_senders WHERE sender = ? AND direction = ?",
                (address, direction)).fetchone())
        return row is not None

    async def list(self) -> list[AllowedSender]:
        rows = await self.db.run(lambda conn: conn.execute(
            "SELECT sender, direction, added_at, added_by FROM allowed_senders"
            " ORDER BY sender, direction").fetchall())
        return [AllowedSender(*r) for r in rows]
