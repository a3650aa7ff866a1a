"""Sender authentication of one inbound message: SPF, DKIM, ARC and DMARC together.

``await authenticate(raw, mail_from=…, helo=…, client_ip=…, resolver=…,
authserv_id=…)`` runs SPF (MAIL FROM, and HELO), every DKIM signature, the ARC chain
and the DMARC record lookup concurrently over the injected resolver, then aligns, and
returns a frozen ``AuthVerdict`` (iprev too when ``check_iprev``):

- each method's result (``spf``, ``helo_spf``, ``dkim``, ``arc``, ``dmarc``);
- ``from_domain``: the RFC5322.From domain ("" when the From field has no address);
- ``vouched_for``: does the From domain vouch for this message? ``True`` on DMARC
  pass, or, when the domain publishes no usable DMARC record, on an SPF or DKIM pass
  aligned (relaxed) with it; ``False`` otherwise; ``None`` when a temporary DNS error
  leaves it open (never read a ``None`` as ``False``);
- ``policy``: the DMARC policy to apply (``none`` / ``quarantine`` / ``reject``)
  when DMARC failed, else ``""``;
- ``authentication_results``: our Authentication-Results value
  (``gateway.detect.authres.header_field`` folds it into a header line).

From fields: a message whose From has no address gets ``dmarc=permerror`` and
``vouched_for=False``. Several From addresses (or fields) in one domain are that
domain; in several domains each domain is evaluated and the strictest result is kept
(fail > temperror > permerror > none > pass, the strictest policy, vouched only if
every domain vouches): RFC 7489 6.6.1 lets a receiver reject such mail, vigie flags it.

No sockets of its own: every DNS question goes through ``resolver``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.detect.arc import ArcResult, verify_arc
from gateway.detect.authres import (
    AuthResults,
    build_value,
    header_fields,
    trusted_results,
)
from gateway.detect.dkim import (
    BIG_MESSAGE,
    MAX_SIGNATURES,
    THREAD_ABOVE,
    DkimResult,
    verify_dkim,
)
from gateway.detect.dmarc import (
    DmarcPolicy,
    DmarcResult,
    PolicyName,
    aligned,
    evaluate,
    fetch_policy,
    from_domains,
)
from gateway.detect.iprev import IprevResult
from gateway.detect.iprev import check_iprev as check_iprev_of
from gateway.detect.spf import SpfResult, check_helo, check_mail_from
from gateway.dns import Resolver

_SEVERITY = {"fail": 4, "temperror": 3, "permerror": 2, "none": 1, "pass": 0}
_POLICY_RANK = {"": 0, "none": 1, "quarantine": 2, "reject": 3}


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """What ``authenticate`` found (see the module docstring).

    ``spf`` is the MAIL FROM identity's result (the HELO identity for a null sender),
    None without a client IP; ``helo_spf`` the HELO identity's, None when not
    checked; ``iprev`` the reverse-DNS check, None unless asked (``check_iprev``);
    ``from_domains`` every distinct From domain; ``reason`` says in English
    why ``vouched_for`` is what it is; ``trusted`` holds the Authentication-Results
    of the configured trusted authserv-ids found in the message, topmost first.
    """

    spf: SpfResult | None
    helo_spf: SpfResult | None
    dkim: tuple[DkimResult, ...]
    arc: ArcResult
    dmarc: DmarcResult
    from_domain: str
    from_domains: tuple[str, ...]
    vouched_for: bool | None
    policy: PolicyName | Literal[""]
    authentication_results: str
    reason: str = ""
    trusted: tuple[AuthResults, ...] = ()
    iprev: IprevResult | None = None


def _from_values(raw: bytes) -> list[str]:
    values = []
    for field in header_fields(raw):
        name, colon, value = field.partition(b":")
        if colon and name.strip().lower() == b"from":
            values.append(value.decode("utf-8", "replace").replace("\r\n", "").replace(
                "\n", "").strip())
    return values


def _address_domain(address: str) -> str:
    address = address.strip().removeprefix("<").removesuffix(">")
    return address.rpartition("@")[2].lower().rstrip(".")


def _vouch_without_dmarc(domain: str, spf_result: str, spf_domain: str,
                         dkim: Sequence[DkimResult]) -> tuple[bool | None, str]:
    """No usable DMARC record: an aligned (relaxed) SPF or DKIM pass vouches."""
    if spf_result == "pass" and aligned(spf_domain, domain):
        return True, f"{domain}: no DMARC record, aligned SPF pass"
    if any(r.result == "pass" and aligned(r.domain, domain) for r in dkim):
        return True, f"{domain}: no DMARC record, aligned DKIM pass"
    if (spf_result == "temperror" and aligned(spf_domain, domain)) or any(
            r.result == "temperror" and aligned(r.domain, domain) for r in dkim):
        return None, f"{domain}: no DMARC record, temporary DNS error on SPF or DKIM"
    return False, f"{domain}: no DMARC record and no aligned SPF or DKIM pass"


def _vouched(dmarc: DmarcResult, spf_result: str, spf_domain: str,
             dkim: Sequence[DkimResult]) -> tuple[bool | None, str]:
    domain = dmarc.from_domain
    if dmarc.result == "pass":
        return True, f"{domain}: DMARC pass ({dmarc.reason})"
    if dmarc.result == "fail":
        return False, f"{domain}: DMARC fail ({dmarc.reason})"
    if dmarc.result == "temperror":
        return None, f"{domain}: DMARC temperror ({dmarc.reason})"
    return _vouch_without_dmarc(domain, spf_result, spf_domain, dkim)


def _combine(verdicts: Iterable[tuple[DmarcResult, bool | None, str]]
             ) -> tuple[DmarcResult, bool | None, str]:
    """The strictest of several From domains' results (see the module docstring)."""
    items = list(verdicts)
    worst = max(items, key=lambda v: (_SEVERITY[v[0].result],
                                      _POLICY_RANK[v[0].policy]))
    vouches = [v[1] for v in items]
    vouched: bool | None = True
    if False in vouches:
        vouched = False
    elif None in vouches:
        vouched = None
    reasons = "; ".join(v[2] for v in items)
    return worst[0], vouched, f"several From domains: {reasons}"


async def authenticate(
    raw: bytes, *, mail_from: str, helo: str | None, client_ip: str | None,
    resolver: Resolver, authserv_id: str, check_helo_identity: bool = True,
    check_iprev: bool = False,
    trusted_authserv_ids: Sequence[str] = (), max_signatures: int = MAX_SIGNATURES,
    big_message: int = BIG_MESSAGE, thread_above: int = THREAD_ABOVE,
    now: float | None = None,
) -> AuthVerdict:
    """Authenticate one message (see the module docstring). ``client_ip`` None (a
    message not received over SMTP) skips SPF; ``now`` is for SPF's %{t}."""
    domains = from_domains(_from_values(raw))
    ip = None
    if client_ip:
        try:
            ip = ipaddress.ip_address(client_ip.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            ip = None
    helo_name = (helo or "").strip()
    null_sender = not mail_from.strip().removeprefix("<").removesuffix(">")

    async def spf_check() -> SpfResult | None:
        if ip is None:
            return None
        return await check_mail_from(ip, mail_from, helo_name, resolver,
                                     receiver=authserv_id, now=now)

    async def helo_check() -> SpfResult | None:
        if ip is None or not helo_name or not check_helo_identity or null_sender:
            return None
        return await check_helo(ip, helo_name, resolver, receiver=authserv_id, now=now)

    async def iprev_check() -> IprevResult | None:
        if ip is None or not check_iprev:
            return None
        return await check_iprev_of(ip, resolver)

    async def policies_of() -> list[DmarcPolicy | DmarcResult]:
        return list(await asyncio.gather(*(fetch_policy(d, resolver) for d in domains)))

    def wanted(d: str) -> bool:
        return any(aligned(d, f) for f in domains)

    spf, helo_spf, iprev, dkim_results, arc, policies = await asyncio.gather(
        spf_check(), helo_check(), iprev_check(),
        verify_dkim(raw, resolver, max_signatures=max_signatures, big_message=big_message,
                    wanted=wanted, thread_above=thread_above),
        verify_arc(raw, resolver, thread_above=thread_above), policies_of())
    dkim = tuple(dkim_results)
    spf_result = spf.result if spf is not None else "none"
    # RFC 7489 3.1.2 / 4.1: with a null reverse-path the HELO domain is the SPF identity
    spf_domain = (helo_name.lower() if null_sender else _address_domain(mail_from))

    per_domain = []
    for policy in policies:
        result = policy if isinstance(policy, DmarcResult) else evaluate(
            policy, spf_result=spf_result, spf_domain=spf_domain, dkim=dkim)
        vouched, why = _vouched(result, spf_result, spf_domain, dkim)
        per_domain.append((result, vouched, why))
    if not per_domain:
        dmarc = DmarcResult("permerror", "", reason="the From field has no address")
        vouched, reason = False, "the From field has no address"
    elif len(per_domain) == 1:
        dmarc, vouched, reason = per_domain[0]
    else:
        dmarc, vouched, reason = _combine(per_domain)
    policy_to_apply: PolicyName | Literal[""] = dmarc.policy if dmarc.result == "fail" else ""

    value = build_value(authserv_id, spf=spf, mail_from=mail_from, helo=helo_name,
                        dkim=dkim, dmarc=dmarc, arc=arc, iprev=iprev)
    return AuthVerdict(
        spf=spf, helo_spf=helo_spf, dkim=dkim, arc=arc, dmarc=dmarc,
        from_domain=domains[0] if domains else "", from_domains=tuple(domains),
        vouched_for=vouched, policy=policy_to_apply, authentication_results=value,
        reason=reason, iprev=iprev,
        trusted=tuple(trusted_results(raw, trusted_authserv_ids))
        if trusted_authserv_ids else ())
