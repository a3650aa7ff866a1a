"""Runs the enabled checks concurrently, each under a timeout.

A check that raises or times out yields an ERROR finding: never a pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gateway.model import Direction, Message
from gateway.verdict import Finding, Outcome, Reason

log = logging.getLogger("vigie.pipeline")


@runtime_checkable
class Check(Protocol):
    """A small object with a name, a description and ``async run(message)``."""

    name: str
    description: str

    async def run(self, message: Message) -> list[Finding]: ...


def directions_of(check: Check) -> frozenset[Direction]:
    """The directions a check looks at: its ``directions`` attribute, or both."""
    found = getattr(check, "directions", None)
    return frozenset(found) if found is not None else frozenset(Direction)


def _nothing_to_do(check: Check, message: Message) -> bool:
    """A check may tell cheaply, without running, that a message gives it nothing to
    look at (``idle(message)``: the attachment check and a mail with no attachment)."""
    idle = getattr(check, "idle", None)
    return bool(idle(message)) if idle is not None else False


class Pipeline:
    def __init__(self, checks: Sequence[Check], *, timeout: float = 20.0) -> None:
        self.checks = list(checks)
        self.timeout = timeout
        self.by_direction = {d: [c for c in self.checks if d in directions_of(c)]
                             for d in Direction}

    async def run(self, message: Message) -> list[Finding]:
        checks = [c for c in self.by_direction[message.envelope.direction]
                  if not _nothing_to_do(c, message)]
        if not checks:
            return []
        if len(checks) == 1:  # no task to schedule (the hygiene-only pipeline)
            return await self._run_one(checks[0], message)
        results = await asyncio.gather(*(self._run_one(c, message) for c in checks))
        return [f for group in results for f in group]

    async def _run_one(self, check: Check, message: Message) -> list[Finding]:
        try:
            async with asyncio.timeout(self.timeout):
                return list(await check.run(message))
        except TimeoutError:
            log.warning("check %s timed out after %.1fs (queue id %s)", check.name,
                        self.timeout, message.envelope.queue_id)
            return [Finding(check.name, f"{check.name.upper()}_TIMEOUT", Outcome.ERROR, (
                Reason(f"la vérification « {check.name} » a dépassé le délai",
                       f"check '{check.name}' timed out"),))]
        except Exception as exc:
            # The exception text may quote message content: log its type only.
            log.error("check %s crashed: %s (queue id %s)", check.name, type(exc).__name__,
                      message.envelope.queue_id)
            return [Finding(check.name, f"{check.name.upper()}_CRASH", Outcome.ERROR, (
                Reason(f"la vérification « {check.name} » a échoué",
                       f"check '{check.name}' failed"),))]
