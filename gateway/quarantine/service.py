"""The quarantine as one object: store, tokens, allow-list, audit trail and sealed
secrets over one key and one database; and the daily purge service.

``Quarantine.open(cfg)`` is what ``vigie serve``, the CLI and the web console use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass

from gateway.audit import AuditLog
from gateway.config import Config
from gateway.quarantine.allow import AllowList
from gateway.quarantine.audit import AuditTrail
from gateway.quarantine.crypto import Sealer, key_source, load_key
from gateway.quarantine.db import Database, transaction
from gateway.quarantine.store import SQLiteStore
from gateway.quarantine.tokens import Tokens

log = logging.getLogger("vigie.quarantine")

DAY = 24 * 3600.0


class Secrets:
    """Small secrets (the Signal Spam login) sealed with the quarantine key."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer

    async def put(self, name: str, value: bytes) -> None:
        sealed = self.sealer.seal(value, b"secret:" + name.encode("utf-8"))
        await self.db.run(lambda conn: transaction(conn, lambda c: c.execute(
            "INSERT OR REPLACE INTO secrets (name, value, updated_at) VALUES (?, ?, ?)",
            (name, sealed, time.time()))))

    async def get(self, name: str) -> bytes | None:
        row = await self.db.run(lambda conn: conn.execute(
            "SELECT value FROM secrets WHERE name = ?", (name,)).fetchone())
        if row is None:
            return None
        return self.sealer.open(bytes(row[0]), b"secret:" + name.encode("utf-8"))

    async def delete(self, name: str) -> None:
        await self.db.run(lambda conn: transaction(conn, lambda c: c.execute(
            "DELETE FROM secrets WHERE name = ?", (name,))))


@dataclass
class Quarantine:
    store: SQLiteStore
    tokens: Tokens
    allow: AllowList
    audit: AuditTrail
    secrets: Secrets
    retention_days: int = 30

    @classmethod
    def open(cls, cfg: Config) -> Quarantine:
        """Open (and create on first use) the quarantine of ``cfg``'s data directory;
        the key file is created 0600 when there is none."""
        sealer = Sealer(load_key(cfg), key_source(cfg))
        root = cfg.data_dir / "quarantine"
        db = Database(root / "quarantine.sqlite")
        store = SQLiteStore(root, sealer, db)
        return cls(store=store, tokens=Tokens(db, cfg.quarantine.token_days * DAY),
                   allow=AllowList(db), audit=AuditTrail(AuditLog(cfg.audit_log)),
                   secrets=Secrets(db, sealer), retention_days=cfg.quarantine.retention_days)

    def close(self) -> None:
        self.store.close()

    async def purge_expired(self, now: float | None = None) -> int:
        """Erase what is older than the retention period; one audit entry when any."""
        now = time.time() if now is None else now
        count = await self.store.purge(now - self.retention_days * DAY)
        if count:
            await self.audit.record("purge", "vigie", count=count,
                                    retention_days=self.retention_days)
            log.info("quarantine: %d message(s) purged (older than %d days)", count,
                     self.retention_days)
        return count


class PurgeService:
    """Started by ``vigie serve``: recovers interrupted holds, then purges daily."""

    def __init__(self, quarantine: Quarantine, interval: float = DAY) -> None:
        self.quarantine = quarantine
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.quarantine.store.recover)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.quarantine.purge_expired()
            except (OSError, sqlite3.Error) as exc:  # try again next time; say it
                log.error("quarantine purge failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
