"""Inbound sender authentication: SPF, DKIM, DMARC and ARC through the configured resolver.

Glue around ``gateway.detect.auth.authenticate``: one verdict per message, shared with
the impersonation check (``sender_verdict``), findings with plain-French reasons, and
our Authentication-Results value left in ``message.notes`` for the relay step.
DNS trouble is never a pass and never a refusal: ``AUTH_TEMPERROR`` (451, the sender
retries) or, with ``[inbound] dns_error = "tag"``, ``AUTH_DNS_UNCHECKED`` (tagged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway.config import Config
from gateway.detect.auth import AuthVerdict, authenticate
from gateway.detect.authres import AuthResults, trusted_results
from gateway.dns import Resolver
from gateway.model import Direction, Message
from gateway.verdict import Finding, Outcome, Reason

NAME = "sender_auth"


def authserv_id(cfg: Config) -> str:
    return cfg.inbound.authserv_id or cfg.hostname


@dataclass(frozen=True, slots=True)
class Vouching:
    """Whether the From domain vouches for the message, and what DMARC asks for."""

    vouched: bool | None
    policy: str  # "", "none", "quarantine", "reject"
    source: str  # "vigie" or the trusted authserv-id whose results were used


async def sender_verdict(message: Message, cfg: Config, resolver: Resolver) -> AuthVerdict:
    """The message's authentication verdict, computed once and shared by the checks."""
    env = message.envelope

    async def work() -> AuthVerdict:
        verdict = await authenticate(
            message.raw, mail_from=env.mail_from, helo=env.helo, client_ip=env.client_ip,
            resolver=resolver, authserv_id=authserv_id(cfg))
        if env.relay_hops and cfg.inbound.trusted_authserv_ids:
            # a trusted relay's results are believed only when it handed us the message,
            # and only those it wrote itself: above the Received field it added (the
            # N-th from the top for N trusted hops); lower ones came with the message
            found = trusted_results(message.raw, cfg.inbound.trusted_authserv_ids,
                                    above_received=env.relay_hops)
            verdict = dataclasses.replace(verdict, trusted=tuple(found))
        return verdict

    return await message.once(NAME, work)


def _trusted_vouching(ar: AuthResults) -> Vouching | None:
    """What a trusted relay's Authentication-Results says of the From domain."""
    dmarc = ar.of("dmarc")
    if dmarc:
        result = dmarc[0].result
        policy = (dmarc[0].get("policy.dmarc") or "").lower()
        if not policy:
            for word in ("reject", "quarantine", "none"):
                if f"p={word}" in dmarc[0].reason.lower():
                    policy = word
                    break
        if result == "pass":
            return Vouching(True, "", ar.authserv_id)
        if result == "fail":
            return Vouching(False, policy or "none", ar.authserv_id)
        if result == "temperror":
            return Vouching(None, "", ar.authserv_id)
    return None


def vouching(verdict: AuthVerdict) -> Vouching:
    if verdict.trusted:
        found = _trusted_vouching(verdict.trusted[0])
        if found is not None:
            return found
    return Vouching(verdict.vouched_for, verdict.policy, "vigie")


def _hit(symbol: str, fr: str, en: str, *evidence: str,
         outcome: Outcome = Outcome.FAIL) -> Finding:
    return Finding(NAME, symbol, outcome, (Reason(fr, en),), tuple(e for e in evidence if e))


def findings_for(verdict: AuthVerdict, cfg: Config) -> list[Finding]:
    out: list[Finding] = []
    vouch = vouching(verdict)
    domain = verdict.from_domain or "?"
    if vouch.source != "vigie":
        out.append(Finding(NAME, "AUTH_TRUSTED_RESULTS", Outcome.PASS, (Reason(
            f"résultats de {vouch.source} utilisés", f"results of {vouch.source} used"),)))
    spf = verdict.spf
    if spf is not None and vouch.source == "vigie":
        spf_domain = spf.domain or domain
        if spf.result == "pass":
            out.append(_hit("SPF_PASS", "serveur d'envoi autorisé", "SPF pass", spf_domain,
                            outcome=Outcome.PASS))
        elif spf.result == "fail":
            out.append(_hit("SPF_FAIL", f"le serveur qui a remis ce message n'est pas "
                            f"autorisé à envoyer le courrier de {spf_domain}",
                            f"SPF fail for {spf_domain} ({spf.mechanism})", spf_domain))
        elif spf.result == "softfail":
            out.append(_hit("SPF_SOFTFAIL", f"le domaine {spf_domain} ne reconnaît pas "
                            "vraiment le serveur qui a remis ce message",
                            f"SPF softfail for {spf_domain}", spf_domain,
                            outcome=Outcome.SOFTFAIL))
        elif spf.result == "permerror":
            out.append(_hit("SPF_PERMERROR", f"la règle d'envoi (SPF) de {spf_domain} est "
                            "erronée", f"SPF permerror for {spf_domain}", spf_domain,
                            outcome=Outcome.PERMERROR))
    if vouch.source == "vigie":
        passed = [d for d in verdict.dkim if d.result == "pass"]
        failed = [d for d in verdict.dkim if d.result in ("fail", "permerror", "neutral")]
        if passed:
            out.append(_hit("DKIM_PASS", "signature électronique valide", "DKIM pass",
                            *(d.domain for d in passed), outcome=Outcome.PASS))
        elif failed:
            out.append(_hit("DKIM_FAIL", "la signature électronique du message ne correspond "
                            "pas (message modifié en route, ou falsifié)",
                            "DKIM signature did not verify: " + "; ".join(
                                f"d={d.domain} {d.result} ({d.reason})" for d in failed)[:200],
                            *(d.domain for d in failed)))
        dmarc = verdict.dmarc
        if dmarc.result == "pass":
            out.append(_hit("DMARC_PASS", f"message reconnu par {domain}", "DMARC pass",
                            domain, outcome=Outcome.PASS))
        elif dmarc.result == "permerror":
            out.append(_hit("DMARC_PERMERROR", f"la règle DMARC de {domain} est erronée",
                            f"DMARC permerror ({dmarc.reason})", domain,
                            outcome=Outcome.PERMERROR))
        if verdict.arc.result == "pass":
            out.append(_hit("ARC_PASS", "chaîne de transfert (ARC) valide",
                            f"ARC pass ({', '.join(verdict.arc.sealers)})",
                            *verdict.arc.sealers, outcome=Outcome.PASS))
        elif verdict.arc.result == "fail":
            out.append(_hit("ARC_FAIL", "chaîne de transfert (ARC) invalide",
                            f"ARC fail ({verdict.arc.reason})"))
    if vouch.vouched is False and vouch.policy:
        level = {"reject": "REJECT", "quarantine": "QUARANTINE"}.get(vouch.policy, "NONE")
        asks = {"REJECT": " et demande que de tels messages soient refusés",
                "QUARANTINE": " et demande que de tels messages soient mis à l'écart",
                "NONE": ""}[level]
        out.append(_hit(f"DMARC_FAIL_{level}",
                        f"le domaine de l'expéditeur ({domain}) ne reconnaît pas ce message "
                        f"comme venant de lui{asks}",
                        f"DMARC fail for {domain} (p={vouch.policy})", domain))
    if vouch.vouched is None:
        if cfg.inbound.dns_error == "tag":
            out.append(_hit("AUTH_DNS_UNCHECKED", "l'expéditeur n'a pas pu être vérifié "
                            "(problème temporaire de DNS)",
                            "sender not verified: temporary DNS error", domain,
                            outcome=Outcome.HIT))
        else:
            out.append(_hit("AUTH_TEMPERROR", "vérification de l'expéditeur impossible pour "
                            "l'instant (problème temporaire de DNS)",
                            "sender verification temporarily impossible (DNS)", domain,
                            outcome=Outcome.TEMPERROR))
    return out


class SenderAuthCheck:
    """SPF, DKIM, DMARC and ARC of inbound mail (outbound mail is the practice's own)."""

    name = NAME
    directions = frozenset({Direction.INBOUND})
    description = "authentification de l'expéditeur (SPF, DKIM, DMARC, ARC)"

    def __init__(self, cfg: Config, resolver: Resolver) -> None:
        self.cfg = cfg
        self.resolver = resolver

    async def run(self, message: Message) -> list[Finding]:
        if message.envelope.direction is not Direction.INBOUND:
            return []
        verdict = await sender_verdict(message, self.cfg, self.resolver)
        message.notes["authentication_results"] = verdict.authentication_results
        return findings_for(verdict, self.cfg)
