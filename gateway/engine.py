"""The screening engine: parse once, run the pipeline, ask the policy. No I/O of its own.

Used by the SMTP handler and by ``vigie check`` alike, so both give the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.checks import default_checks
from gateway.config import Config
from gateway.model import Direction, Message, prefix_subject, prepend_header, remove_from_subject
from gateway.pipeline import Check, Pipeline
from gateway.policy import Decision, Policy


class Engine:
    def __init__(self, cfg: Config, *, checks: Sequence[Check] | None = None,
                 policy: Policy | None = None) -> None:
        self.cfg = cfg
        self.policy = policy if policy is not None else Policy.load(cfg)
        self.pipeline = Pipeline(checks if checks is not None else default_checks(cfg),
                                 timeout=cfg.limits.check_timeout)

    async def screen(self, message: Message) -> Decision:
        findings = await self.pipeline.run(message)
        return self.policy.decide(findings, message.envelope.direction,
                                  message.envelope.queue_id)

    def prepare(self, message: Message, decision: Decision) -> bytes:
        """The bytes to relay for ``deliver``/``tag``: the original ones, but for our
        control marker taken out of the subject and, for ``tag``, one header and a
        subject prefix."""
        out = message.raw
        for marker in {str(f.extra["strip_subject_marker"]) for f in decision.findings
                       if f.extra.get("strip_subject_marker")}:
            out = remove_from_subject(out, marker, str(message.parsed.get("subject", "")))
        if decision.action == "tag":
            out = prefix_subject(out, self.policy.tag_subject_prefix)
            if message.envelope.direction is Direction.OUTBOUND:
                # the recipient outside must not learn what was found (health data)
                value = "tag"
            else:
                symbols = ", ".join(decision.symbols) or "none"
                value = f"tag; score={decision.score:g}; symbols={symbols}"
            out = prepend_header(out, self.policy.tag_header, value)
        return out
