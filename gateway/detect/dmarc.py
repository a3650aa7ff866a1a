"""DMARC (RFC 7489): organisational domains, policy discovery, identifier alignment.

Two steps, so the record can be fetched while SPF and DKIM run:

1. ``fetch_policy(from_domain, resolver)`` finds and parses the DMARC record
   (``_dmarc.<From domain>``, then ``_dmarc.<organisational domain>``): a
   ``DmarcPolicy``, or a ``DmarcResult`` when there is nothing to align against
   (``none``: no record; ``temperror``: DNS failure; ``permerror``: a broken record).
2. ``evaluate(policy, spf=…, dkim=…)`` aligns the MAIL FROM domain (when SPF passed)
   and the d= of each passing DKIM signature with the From domain.

``check_dmarc`` does both. The organisational domain comes from the Public Suffix
List (``publicsuffixlist``, loaded once; an unlisted TLD counts as a public suffix).

A From header field with no address, or several From fields or addresses, is handled
by ``from_domains``: the caller evaluates each distinct domain (``gateway.detect.auth``
takes the strictest result; RFC 7489 6.6.1 allows rejecting such mail outright).

``pct`` is reported, not applied: sampling is the caller's choice (vigie applies the
policy to every message, as ``pct=100``). ``rua``/``ruf`` are parsed and ignored.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

from publicsuffixlist import PublicSuffixList

from gateway.detect.dkim import DkimResult
from gateway.dns import DNSTempError, NXDomain, Resolver
from gateway.verdict import Outcome

DmarcResultName = Literal["pass", "fail", "none", "temperror", "permerror"]
PolicyName = Literal["none", "quarantine", "reject"]
Alignment = Literal["r", "s"]

_OUTCOMES: dict[str, Outcome] = {
    "pass": Outcome.PASS, "fail": Outcome.FAIL, "none": Outcome.NONE,
    "temperror": Outcome.TEMPERROR, "permerror": Outcome.PERMERROR,
}
_POLICIES = ("none", "quarantine", "reject")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def _clean(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def organizational_domain(domain: str) -> str | None:
    """RFC 7489 3.2: the registrable domain of ``domain`` (public suffix + one label),
    or None when ``domain`` is itself a public suffix or not a domain name."""
    name = domain.strip().lower()
    if not name or name.startswith(".") or ".." in name:
        return None
    result = _psl().privatesuffix(name.rstrip("."))
    return result if isinstance(result, str) else None


def aligned(identifier: str, from_domain: str, mode: Alignment = "r") -> bool:
    """Identifier alignment (RFC 7489 3.1): strict = same name, relaxed = same
    organisational domain."""
    a, b = _clean(identifier), _clean(from_domain)
    if not a or not b:
        return False
    if a == b:
        return True
    if mode == "s":
        return False
    org = organizational_domain(a)
    return org is not None and org == organizational_domain(b)


def from_domains(values: Sequence[str]) -> list[str]:
    """The distinct domains of the addresses in the given From header values (in order),
    lower case; an address without a domain is skipped."""
    domains: list[str] = []
    for _name, address in email.utils.getaddresses(list(values)):
        local, at, domain = address.rpartition("@")
        domain = _clean(domain)
        if at and local and domain and domain not in domains:
            domains.append(domain)
    return domains


# --- records ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    """A parsed DMARC record, as it applies to ``from_domain``.

    ``record_domain`` is where the record was found; ``policy`` is the one that applies
    (``sp`` when the From domain is a subdomain of the organisational record, else
    ``p``); ``problem`` notes a tolerated defect (e.g. invalid p= with rua=).
    """

    from_domain: str
    record_domain: str
    policy: PolicyName
    p: PolicyName
    sp: PolicyName
    adkim: Alignment = "r"
    aspf: Alignment = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    record: str = ""
    problem: str = ""


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """The DMARC verdict for one From domain.

    ``policy`` is the policy the domain asks for (``""`` when there is no usable
    record); ``reason`` says why, in English, for logs and the header comment;
    ``spf_aligned`` / ``dkim_aligned`` say which identifier passed aligned (the d=
    of the first aligned passing signature in ``dkim_domain``).
    """

    result: DmarcResultName
    from_domain: str
    policy: PolicyName | Literal[""] = ""
    record_domain: str = ""
    pct: int = 100
    reason: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    dkim_domain: str = ""

    @property
    def outcome(self) -> Outcome:
        return _OUTCOMES[self.result]


class _BadRecord(Exception):
    pass


_TAG_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.DOTALL)
_VERSION_RE = re.compile(r"^\s*[vV]\s*=\s*DMARC1\s*(;|$)")


def is_dmarc_record(text: str) -> bool:
    """RFC 7489 6.6.3: records that do not start with v=DMARC1 are discarded."""
    return bool(_VERSION_RE.match(text))


def parse_record(text: str, from_domain: str, record_domain: str) -> DmarcPolicy:
    """Parse a DMARC record found at ``record_domain`` for mail from ``from_domain``.

    Raises ``ValueError`` for a record that cannot be used (RFC 7489 6.6.3 step 6: an
    invalid p= is read as p=none when a rua= is present, and is an error otherwise).
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _TAG_RE.match(part)
        if not m:
            raise ValueError(f"malformed tag {part.strip()[:30]!r}")
        name = m.group(1).lower()
        if name not in tags:  # the first occurrence wins
            tags[name] = m.group(2)
    if tags.get("v") != "DMARC1":
        raise ValueError("not a v=DMARC1 record")
    rua = tuple(u.strip() for u in tags.get("rua", "").split(",") if u.strip())
    ruf = tuple(u.strip() for u in tags.get("ruf", "").split(",") if u.strip())
    problem = ""
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        if not any(u.lower().startswith("mailto:") for u in rua):
            raise ValueError("missing or invalid p=" if "p" not in tags
                             else f"invalid p={tags['p'][:20]}")
        problem, p = "invalid p=, read as p=none (rua= present)", "none"
    sp = tags.get("sp", p).lower()
    if sp not in _POLICIES:
        if not rua:
            raise ValueError(f"invalid sp={tags['sp'][:20]}")
        problem, sp = "invalid sp=, read as sp=p", p
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    for name, value in (("adkim", adkim), ("aspf", aspf)):
        if value not in ("r", "s"):
            raise ValueError(f"invalid {name}={value[:10]}")
    pct_text = tags.get("pct", "100")
    if not pct_text.isdigit() or int(pct_text) > 100:
        raise ValueError(f"invalid pct={pct_text[:10]}")
    from_domain, record_domain = _clean(from_domain), _clean(record_domain)
    applied = p if from_domain == record_domain else sp
    return DmarcPolicy(
        from_domain, record_domain, cast(PolicyName, applied), cast(PolicyName, p),
        cast(PolicyName, sp), adkim=cast(Alignment, adkim), aspf=cast(Alignment, aspf),
        pct=int(pct_text), rua=rua, ruf=ruf, record=text, problem=problem)


async def _lookup(name: str, resolver: Resolver) -> list[str]:
    """DMARC records at ``_dmarc.<name>``; NXDOMAIN is no record; raises DNSTempError."""
    try:
        return [t for t in await resolver.txt(f"_dmarc.{name}") if is_dmarc_record(t)]
    except NXDomain:
        return []


async def fetch_policy(from_domain: str, resolver: Resolver) -> DmarcPolicy | DmarcResult:
    """RFC 7489 6.6.3 policy discovery for ``from_domain`` (see the module docstring)."""
    domain = _clean(from_domain)
    org = organizational_domain(domain)
    if org is None:
        return DmarcResult("none", domain, reason="From domain is not a registrable domain")
    where = domain
    try:
        records = await _lookup(domain, resolver)
        if not records and org != domain:
            where = org
            records = await _lookup(org, resolver)
    except DNSTempError:
        return DmarcResult("temperror", domain, reason=f"DNS error on _dmarc.{where}",
                           record_domain=where)
    if not records:
        return DmarcResult("none", domain, reason="no DMARC record")
    if len(records) > 1:  # 6.6.3 step 4: several records, no DMARC processing
        return DmarcResult("none", domain, record_domain=where,
                           reason=f"{len(records)} DMARC records at _dmarc.{where}")
    try:
        return parse_record(records[0], domain, where)
    except ValueError as exc:
        return DmarcResult("permerror", domain, record_domain=where,
                           reason=f"bad DMARC record at _dmarc.{where}: {exc}")


def evaluate(policy: DmarcPolicy, *, spf_result: str, spf_domain: str,
             dkim: Sequence[DkimResult]) -> DmarcResult:
    """Align SPF (``spf_domain`` is the MAIL FROM domain, or the HELO domain for a null
    sender, checked with ``spf_result``) and DKIM with ``policy.from_domain``.

    No aligned pass gives ``fail``, unless an identifier that could have aligned hit a
    temporary DNS error: then ``temperror`` (a DNS failure is never a fail).
    """
    def result(name: DmarcResultName, reason: str, **kwargs: Any) -> DmarcResult:
        return DmarcResult(name, policy.from_domain, policy.policy, policy.record_domain,
                           policy.pct, reason, **kwargs)

    spf_ok = spf_result == "pass" and aligned(spf_domain, policy.from_domain, policy.aspf)
    dkim_pass = [r for r in dkim if r.result == "pass"
                 and aligned(r.domain, policy.from_domain, policy.adkim)]
    if spf_ok or dkim_pass:
        how = " and ".join(w for w, ok in (("SPF", spf_ok), ("DKIM", bool(dkim_pass))) if ok)
        return result("pass", f"aligned {how} pass", spf_aligned=spf_ok,
                      dkim_aligned=bool(dkim_pass),
                      dkim_domain=dkim_pass[0].domain if dkim_pass else "")
    temp = []
    if spf_result == "temperror" and aligned(spf_domain, policy.from_domain, policy.aspf):
        temp.append("SPF")
    if any(r.result == "temperror" and aligned(r.domain, policy.from_domain, policy.adkim)
           for r in dkim):
        temp.append("DKIM")
    if temp:
        return result("temperror", f"{' and '.join(temp)} temporary DNS error")
    return result("fail", _why_fail(policy, spf_result, spf_domain, dkim))


def _why_fail(policy: DmarcPolicy, spf_result: str, spf_domain: str,
              dkim: Sequence[DkimResult]) -> str:
    parts = []
    if spf_result == "pass":
        parts.append(f"SPF pass for {spf_domain or '?'} not aligned")
    else:
        parts.append(f"SPF {spf_result}")
    passing = [r for r in dkim if r.result == "pass"]
    if passing:
        parts.append("DKIM pass for " + ", ".join(sorted({r.domain for r in passing}))
                     + " not aligned")
    elif dkim:
        parts.append("no DKIM signature verifies")
    else:
        parts.append("no DKIM signature")
    return "; ".join(parts)


async def check_dmarc(from_domain: str, resolver: Resolver, *, spf_result: str,
                      spf_domain: str, dkim: Sequence[DkimResult]) -> DmarcResult:
    """``fetch_policy`` then ``evaluate``."""
    policy = await fetch_policy(from_domain, resolver)
    if isinstance(policy, DmarcResult):
        return policy
    return evaluate(policy, spf_result=spf_result, spf_domain=spf_domain, dkim=dkim)
