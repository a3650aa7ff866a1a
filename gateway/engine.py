"""The screening engine: parse once, run the pipeline, ask the policy. No I/O of its own.

Used by the SMTP handler and by ``vigie check`` alike, so both give the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.checks import default_checks
from gateway.config import Config
from gateway.dns import Resolver
from gateway.mime_edit import add_banner
from gateway.model import Direction, Message, prefix_subject, prepend_header, remove_from_subject
from gateway.pipeline import Check, Pipeline
from gateway.policy import Decision, Policy
from gateway.verdict import Finding, Outcome, Reason

# What «always allow this sender» lifts, and what it never does.
ALLOW_SKIPS = frozenset({"sender_auth", "impersonation"})
NEVER_ALLOWED = frozenset({"IMP_MSSANTE_UNAUTHENTICATED", "IMP_LOOKALIKE_DOMAIN"})


_LIFTED_PREFIXES = ("IMP_", "SPF_", "DKIM_", "DMARC_", "AUTH_", "ARC_")


def allow_lifts(direction: str, symbols: Sequence[str]) -> bool:
    """Would «always allow this sender» have let this message through? Only for inbound
    mail held or tagged by the sender-authentication or fake-confrère checks, and never
    when a dangerous attachment, a forged mssante.fr sender or a look-alike domain is
    among the reasons: the link is offered only where it does what it says."""
    if direction != Direction.INBOUND.value:
        return False
    if any(s in NEVER_ALLOWED or s.startswith("ATT_") for s in symbols):
        return False
    return any(s.startswith(_LIFTED_PREFIXES) for s in symbols)


class Engine:
    def __init__(self, cfg: Config, *, checks: Sequence[Check] | None = None,
                 policy: Policy | None = None, resolver: Resolver | None = None) -> None:
        self.cfg = cfg
        self.policy = policy if policy is not None else Policy.load(cfg)
        self.pipeline = Pipeline(
            checks if checks is not None else default_checks(cfg, resolver=resolver),
            timeout=cfg.limits.check_timeout)

    async def screen(self, message: Message, *, allowed_sender: bool = False) -> Decision:
        """Run the checks and decide. ``allowed_sender``: the practice chose «always
        allow this sender» (for this direction): what the sender-authentication and
        fake-confrère checks found no longer counts, but for what is never legitimate
        (a forged mssante.fr sender, a look-alike domain)."""
        findings = await self.pipeline.run(message)
        if allowed_sender:
            findings = [f for f in findings if f.check not in ALLOW_SKIPS
                        or f.outcome in (Outcome.PASS, Outcome.NONE)
                        or f.symbol in NEVER_ALLOWED]
            findings.append(Finding("policy", "ALLOWED_SENDER", Outcome.PASS, (Reason(
                "expéditeur toujours autorisé par le cabinet",
                "sender always allowed by the practice"),)))
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
            if message.envelope.direction is Direction.OUTBOUND:
                out = prefix_subject(out, self.policy.tag_subject_prefix)
                # the recipient outside must not learn what was found (health data)
                value = "tag"
            else:
                # the practitioner reads why, in French, at the top of the mail itself
                out = prefix_subject(out, self.cfg.inbound.tag_subject_prefix)
                out = add_banner(out, warning_text(self.policy.explaining(decision))).raw
                symbols = ", ".join(decision.symbols) or "none"
                value = f"tag; score={decision.score:g}; symbols={symbols}"
            out = prepend_header(out, self.policy.tag_header, value)
        return out


def warning_text(findings: Sequence[Finding]) -> str:
    """The short French warning put at the top of a suspicious inbound mail."""
    reasons = list(dict.fromkeys(r.fr for f in findings for r in f.reasons))
    checks = {f.check for f in findings}
    if checks and checks <= {"attachments"}:
        first = "⚠ Avertissement de vigie : une pièce jointe de ce message est suspecte."
        advice = ("N'ouvrez pas la pièce jointe avant d'avoir vérifié auprès de l'expéditeur, "
                  "par un autre moyen (son numéro habituel), qu'il vous l'a bien envoyée.")
    else:
        first = "⚠ Avertissement de vigie : ce message est peut-être une usurpation."
        advice = ("Avant de répondre, d'ouvrir une pièce jointe ou de cliquer sur un lien, "
                  "vérifiez auprès de l'expéditeur par un autre moyen (son numéro habituel).")
    lines = [first]
    lines += [f"– {reason[:1].upper()}{reason[1:]}." if not reason.endswith(".")
              else f"– {reason[:1].upper()}{reason[1:]}" for reason in reasons[:5]]
    lines.append(advice)
    return "\n".join(lines)
