"""Fake confrères in inbound mail: known names at the wrong address, look-alike domains,
MSSanté or directory domains that their owners' servers do not vouch for, Reply-To
elsewhere.

Glue around ``gateway.detect.impersonation.assess_sender``: the directory of confrères
(``gateway.directory.Directory``, SQLite, read-only), the webmail list, and the
sender-authentication verdict shared with the ``sender_auth`` check.
"""

from __future__ import annotations

from pathlib import Path

from gateway.checks.sender_auth import sender_verdict, vouching
from gateway.config import Config
from gateway.detect.impersonation import DirectoryLookup, assess_sender
from gateway.dns import Resolver
from gateway.model import Direction, Message
from gateway.verdict import Finding, Outcome, Reason


def webmail_domains(cfg: Config) -> frozenset[str]:
    from gateway.checks.patient_data import _domain_list
    from gateway.policy import rules_dir

    domains = _domain_list(rules_dir(cfg) / "webmail_domains.txt")
    if cfg.patient_data.webmail_file:
        domains += _domain_list(Path(cfg.patient_data.webmail_file).expanduser())
    return frozenset(d.lower() for d in domains)


class ImpersonationCheck:
    """Is this «confrère» who they claim to be?"""

    name = "impersonation"
    directions = frozenset({Direction.INBOUND})
    description = "faux confrères (nom connu, domaine imité, MSSanté non authentifié)"

    def __init__(self, cfg: Config, resolver: Resolver, directory: DirectoryLookup,
                 webmail: frozenset[str]) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.directory = directory
        self.webmail = webmail

    @classmethod
    def from_config(cls, cfg: Config, resolver: Resolver) -> ImpersonationCheck:
        from gateway.directory import Directory

        webmail = webmail_domains(cfg)
        return cls(cfg, resolver, Directory.for_config(cfg, webmail=webmail), webmail)

    async def run(self, message: Message) -> list[Finding]:
        if message.envelope.direction is not Direction.INBOUND:
            return []
        # From and Reply-To read from the raw header (the stdlib's full header parse
        # cost more than the whole check); RFC 2047 words are decoded by the detector
        fields = message.header_fields
        values: dict[str, list[str]] = {"from": [], "reply-to": []}
        for name, value in fields:
            if name in values:
                values[name].append(value.decode("utf-8", "replace"))
        from_header = ", ".join(values["from"])
        reply_to = ", ".join(values["reply-to"]) or None
        verdict = await sender_verdict(message, self.cfg, self.resolver)
        vouched = vouching(verdict).vouched
        # the directory look-ups are indexed SQLite queries of a few microseconds: a
        # thread hand-off would cost more than they do
        findings = assess_sender(from_header, reply_to, self.directory, vouched, self.webmail)
        own = self._own_domain(verdict.from_domains)
        if own and vouched is False:
            # «le cabinet vous écrit»: the practice's own name on mail from outside
            findings.append(Finding(self.name, "IMP_OWN_DOMAIN_UNAUTH", Outcome.HIT, (Reason(
                f"le message se présente comme venant du cabinet lui-même ({own}) mais n'a "
                "pas été envoyé par ses serveurs",
                f"the message claims to come from the practice's own domain ({own}) but "
                "its servers did not send it (SPF/DKIM/DMARC do not vouch for it)"),),
                (own,), extra={"strength": "suspicion"}))
        return findings

    def _own_domain(self, domains: tuple[str, ...]) -> str:
        own = {d.strip().lower().rstrip(".") for d in self.cfg.inbound.domains}
        own |= {a.rpartition("@")[2].lower() for a in self.cfg.inbound.addresses}
        for domain in domains:
            if domain in own or any(domain.endswith("." + o) for o in own):
                return domain
        return ""
