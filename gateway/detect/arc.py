"""ARC (RFC 8617) chain validation, as a signal: ``verify_arc(raw, resolver)``.

The keys named by every ARC-Seal and ARC-Message-Signature are fetched first through
the injected async resolver (``gateway.detect.dkim.fetch_keys``), then dkimpy's ARC
validator runs in a worker thread answering DNS from those prefetched records only.

The result is the chain validation status ``cv``: ``pass``, ``fail`` or ``none`` (no
ARC header), plus ``temperror`` when a key could not be fetched (a DNS failure is
never a ``fail``). ``instances`` is the chain's length (the highest i=),
``oldest_pass`` the RFC 8617 ``oldest-pass`` (written ``header.oldest-pass``: 0 when
every AMS validates, else the oldest instance from which every newer AMS still
validates; None unless ``pass``),
``sealers`` the d= of each ARC-Seal from the newest.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal

import dkim
import dkim.util

from gateway.detect.dkim import (
    DKIMPY_LOG,
    THREAD_ABOVE,
    KeyLookup,
    fetch_keys,
    header_block,
    key_name,
    served_dnsfunc,
)
from gateway.dns import Resolver
from gateway.verdict import Outcome

ArcResultName = Literal["pass", "fail", "none", "temperror"]

MAX_INSTANCES = 50  # RFC 8617 4.2.1

_OUTCOMES: dict[str, Outcome] = {
    "pass": Outcome.PASS, "fail": Outcome.FAIL, "none": Outcome.NONE,
    "temperror": Outcome.TEMPERROR,
}
_ARC_HEADERS = (b"arc-seal", b"arc-message-signature")
_D_RE = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)")
_S_RE = re.compile(rb"(?:^|;)\s*s\s*=\s*([^;\s]+)")


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The ARC verdict (see the module docstring); ``reason`` is for logs, in English."""

    result: ArcResultName
    instances: int = 0
    oldest_pass: int | None = None
    sealers: tuple[str, ...] = ()
    reason: str = ""

    @property
    def outcome(self) -> Outcome:
        return _OUTCOMES[self.result]


def _key_names(raw: bytes) -> set[str]:
    """selector._domainkey.domain of every ARC-Seal and ARC-Message-Signature."""
    headers, _body = dkim.rfc822_parse(header_block(raw))
    names: set[str] = set()
    for name, value in headers:
        if name.lower() not in _ARC_HEADERS:
            continue
        d, s = _D_RE.search(value), _S_RE.search(value)
        if d and s:
            names.add(key_name(s.group(1).decode("utf-8", "replace"),
                               d.group(1).decode("utf-8", "replace")))
    return names


def _oldest_pass(results: list[dict[Any, Any]]) -> int:
    """RFC 8617 5.2 step 6, from dkimpy's per-instance results (newest first)."""
    oldest = 0
    for item in results:  # newest to oldest; stop at the first AMS that fails
        if not item.get("ams-valid"):
            return oldest
        oldest = int(item["instance"])
    return 0


def _verify_sync(raw: bytes, keys: dict[str, KeyLookup], minkey: int) -> ArcResult:
    try:
        arc = dkim.ARC(raw, logger=DKIMPY_LOG, minkey=minkey)
        max_instance, _headers = arc.sorted_arc_headers()
    except Exception as exc:  # dkimpy's parser on a malformed header section
        return ArcResult("fail", reason=f"unparsable message: {type(exc).__name__}")
    try:
        cv, results, reason = arc.verify(dnsfunc=served_dnsfunc(keys))
    except dkim.DKIMException as exc:
        cv, results, reason = dkim.CV_Fail, [], str(exc)
    except Exception as exc:  # a dkimpy crash on odd ARC headers: the chain is unusable
        cv, results, reason = dkim.CV_Fail, [], f"cannot verify: {type(exc).__name__}"
    sealers = tuple(r.get("as-domain", b"").decode("utf-8", "replace").lower()
                    for r in results)
    text = " ".join(str(reason).split())[:100]
    if cv == dkim.CV_Pass:
        return ArcResult("pass", max_instance, _oldest_pass(results), sealers)
    if cv == dkim.CV_None:
        return ArcResult("none", max_instance, reason=text)
    # dkimpy's None: a seal says cv=fail, the chain has ended: a failed chain to us.
    return ArcResult("fail", max_instance, sealers=sealers, reason=text)


async def verify_arc(raw: bytes, resolver: Resolver, *, minkey: int = 1024,
                     thread_above: int = THREAD_ABOVE) -> ArcResult:
    """Validate the ARC chain of ``raw`` (see the module docstring); never raises."""
    try:
        names = _key_names(raw)
    except (dkim.DKIMException, ValueError, IndexError) as exc:  # dkimpy's parser
        return ArcResult("fail", reason=f"unparsable message: {exc}"[:100])
    if not names:
        lowered = header_block(raw).lower()
        if not any(h + b":" in lowered for h in (*_ARC_HEADERS, b"arc-authentication-results")):
            return ArcResult("none", reason="no ARC header")
    keys = await fetch_keys(names, resolver)
    temp = [k.detail for k in keys.values() if k.status == "temperror"]
    if temp:
        return ArcResult("temperror", reason=f"key lookup failed: {temp[0]}"[:100])
    if len(raw) <= thread_above:
        return _verify_sync(raw, keys, minkey)
    return await asyncio.to_thread(_verify_sync, raw, keys, minkey)
