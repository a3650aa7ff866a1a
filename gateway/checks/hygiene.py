"""Message hygiene check: glue around gateway.detect.hygiene."""

from __future__ import annotations

import asyncio
import functools

from gateway.detect import hygiene
from gateway.model import INLINE_LIMIT, Message
from gateway.verdict import Finding, Outcome


class HygieneCheck:
    name = "hygiene"
    description = ("Headers present and unique (From, Date, Message-ID), sizes, 8-bit use, "
                   "line endings and SMTP smuggling sequences.")

    def __init__(self, *, max_header_size: int = 64 * 1024) -> None:
        self.max_header_size = max_header_size

    async def run(self, message: Message) -> list[Finding]:
        env = message.envelope
        run = functools.partial(hygiene.inspect, message.raw,
                                declared_8bitmime=env.declared_8bitmime, smtputf8=env.smtputf8,
                                max_header_size=self.max_header_size)
        hits = await asyncio.to_thread(run) if message.size >= INLINE_LIMIT else run()
        return [Finding(self.name, h.symbol, Outcome.HIT, (h.reason,), h.evidence)
                for h in hits]
