"""Services ``vigie serve`` runs for the quarantine: start-up recovery (interrupted
holds, the old clear-text ``hold/`` folder moved into the encrypted store), the daily
purge and the daily digest at ``[digest] time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.config import Config
from gateway.quarantine import digest
from gateway.quarantine.folder import durable_write_file
from gateway.quarantine.reasons import categorize, plain_reasons
from gateway.quarantine.service import DAY, PurgeService, Quarantine
from gateway.quarantine.store import HoldMeta

if TYPE_CHECKING:
    from gateway.smtp.server import Gateway, Service

log = logging.getLogger("vigie.quarantine")


def migrate_hold_folder(quarantine: Quarantine, folder: Path) -> int:
    """Move what an older vigie kept in clear in ``<data_dir>/hold`` (ID.eml + ID.json)
    into the encrypted store, then erase the clear-text files. Blocking."""
    if not folder.is_dir():
        return 0
    moved = 0
    for eml in sorted(folder.glob("*.eml")):
        meta_path = eml.with_suffix(".json")
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        symbols = [str(s) for s in meta.get("symbols", [])]
        direction = str(meta.get("direction", "outbound"))
        if direction not in ("inbound", "outbound"):
            direction = "outbound"
        quarantine.store.hold_sync(eml.read_bytes(), HoldMeta(
            direction=direction, mail_from=str(meta.get("mail_from", "")),
            rcpt_tos=[str(r) for r in meta.get("rcpt_tos", [])],
            mail_options=[str(o) for o in meta.get("mail_options", [])], symbols=symbols,
            reasons=plain_reasons(symbols, direction), category=categorize(symbols),
            auth_user=meta.get("auth_user"), queue_id=str(meta.get("queue_id", "")),
            received_at=float(meta.get("received_at") or eml.stat().st_mtime)))
        eml.unlink()
        meta_path.unlink(missing_ok=True)
        moved += 1
    if moved:
        log.warning("quarantine: %d message(s) of the old hold folder %s moved into the "
                    "encrypted store", moved, folder)
    return moved


class StoreService(PurgeService):
    """Recovery and migration at start, the daily purge, the database closed at stop."""

    def __init__(self, quarantine: Quarantine, hold_folder: Path) -> None:
        super().__init__(quarantine)
        self.hold_folder = hold_folder

    async def start(self) -> None:
        await asyncio.to_thread(migrate_hold_folder, self.quarantine, self.hold_folder)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        self.quarantine.close()


class DigestService:
    """Sends the digest every day at ``[digest] time`` (wall clock of [digest] timezone).

    It wakes at least every minute, so a suspended machine or a changed clock delays
    the digest by a minute at most; a digest is sent once per scheduled time."""

    def __init__(self, quarantine: Quarantine, cfg: Config, hop_factory: digest.HopFactory,
                 clock: Callable[[], float] = time.time) -> None:
        self.quarantine = quarantine
        self.cfg = cfg
        self.hop_factory = hop_factory
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_outcome: digest.SendOutcome | None = None

    async def start(self) -> None:
        if self.cfg.digest.recipients:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def state_path(self) -> Path:
        return self.quarantine.store.root / "digest.last"

    def _since(self, now: float) -> float:
        """The end of the period of the last digest sent (a day missed while vigie was
        stopped is covered by the next one), at most the retention period back."""
        try:
            last = float(self.state_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return now - DAY
        return max(min(last, now - DAY), now - self.quarantine.retention_days * DAY)

    def _sent(self, now: float) -> None:
        durable_write_file(self.state_path, f"{now}\n".encode("ascii"))

    def _next(self) -> float:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return digest.next_run(now, self.cfg.digest.time,
                               ZoneInfo(self.cfg.digest.timezone)).timestamp()

    async def _loop(self) -> None:
        due = self._next()
        while True:
            remaining = due - self.clock()
            if remaining > 0:
                await asyncio.sleep(min(remaining, 60.0))
                continue
            now = self.clock()
            try:
                self.last_outcome = await digest.run_digest(
                    self.quarantine, self.cfg, self.hop_factory, now=now,
                    since=await asyncio.to_thread(self._since, now))
                if self.last_outcome.sent or self.last_outcome.count == 0:
                    await asyncio.to_thread(self._sent, now)
            except (OSError, sqlite3.Error) as exc:
                log.error("digest failed: %s", exc)
            due = self._next()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def quarantine_services(gateway: Gateway) -> list[Service]:
    """The services of ``gateway``'s quarantine, in start order."""
    return [StoreService(gateway.quarantine, gateway.cfg.data_dir / "hold"),
            DigestService(gateway.quarantine, gateway.cfg, gateway.hop_factory)]
