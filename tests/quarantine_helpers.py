"""Reading the quarantine of a test gateway from blocking test code."""

from __future__ import annotations

import asyncio

from gateway.config import Config
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HeldMessage


def held_messages(cfg: Config, status: str | None = "held") -> list[HeldMessage]:
    """Every message of ``cfg``'s quarantine (decrypted), oldest first."""
    async def read() -> list[HeldMessage]:
        q = Quarantine.open(cfg)
        try:
            items, _ = await q.store.list(status=status, limit=1000)
            return [await q.store.open(s.id) for s in reversed(items)]
        finally:
            q.close()

    return asyncio.run(read())
