"""DKIM (RFC 6376, ed25519 RFC 8463): verify **every** DKIM-Signature of a message.

``verify_dkim(raw, resolver)`` returns one ``DkimResult`` per signature (an empty list
means the message is unsigned: ``dkim=none``). The keys are fetched first through the
injected async ``gateway.dns.Resolver``, then dkimpy hashes and checks with a
``dnsfunc`` that serves only those prefetched answers (dkimpy itself never touches
the network), in a worker thread (``asyncio.to_thread``) for a message over
``thread_above`` bytes (64 KiB), on the loop below (cheaper than a thread hop).

Results, in RFC 8601 terms:

- ``pass``: the signature verifies;
- ``fail``: it does not (bad signature, body hash mismatch);
- ``temperror``: the key could not be fetched (DNS timeout, SERVFAIL): never ``fail``;
- ``permerror``: no key record, a broken or revoked key, a malformed signature field,
  a key too short (RSA < 1024 bits, RFC 8301), an expired signature;
- ``policy``: signed, but not checked by our choice: ``rsa-sha1`` (RFC 8301), beyond
  ``max_signatures``, or not needed on a message over ``big_message`` bytes (see below).

Work is bounded: at most ``max_signatures`` signatures are verified (10 by default);
on a message larger than ``big_message`` bytes only signatures whose ``d=`` the caller
says matters (``wanted``, e.g. aligned with the From domain) are hashed, and hashing
stops at the first of them that passes. dkimpy handles ``l=`` itself.

The helpers ``fetch_keys`` / ``served_dnsfunc`` are shared with ``gateway.detect.arc``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dkim
import dkim.util

from gateway.dns import DNSTempError, NXDomain, Resolver
from gateway.verdict import Outcome

DkimResultName = Literal["pass", "fail", "neutral", "policy", "temperror", "permerror"]

MAX_SIGNATURES = 10
BIG_MESSAGE = 8 * 1024 * 1024
# Below this size the hashing (1-2 ms of dkimpy's pure-Python work) runs on the event
# loop: a worker-thread hop costs more than that under GIL contention (see
# bench/sender_auth.py); bigger messages are hashed in a worker thread.
THREAD_ABOVE = 64 * 1024
MIN_RSA_BITS = 1024  # RFC 8301 3.2

_OUTCOMES: dict[str, Outcome] = {
    "pass": Outcome.PASS, "fail": Outcome.FAIL, "neutral": Outcome.NONE,
    "policy": Outcome.NONE, "temperror": Outcome.TEMPERROR, "permerror": Outcome.PERMERROR,
}

# dkimpy logs every failure at ERROR level through the root logging tree: keep it quiet.
DKIMPY_LOG = logging.getLogger("gateway.detect.dkim.dkimpy")
DKIMPY_LOG.addHandler(logging.NullHandler())
DKIMPY_LOG.propagate = False


@dataclass(frozen=True, slots=True)
class DkimResult:
    """The verdict on one DKIM-Signature header (``index`` 0 = the topmost).

    ``domain``, ``selector``, ``algorithm`` and ``identity`` are the signature's d=,
    s=, a= and i= (empty when unreadable); ``b`` is the first 8 characters of b=
    (RFC 6008 ``header.b``); ``reason`` says, shortly and in English, why the result
    is not ``pass``; ``key_bits`` is the public key's size when it was loaded.
    """

    result: DkimResultName
    index: int
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    identity: str = ""
    b: str = ""
    reason: str = ""
    key_bits: int = 0

    @property
    def outcome(self) -> Outcome:
        """The project-wide outcome (``neutral`` and ``policy`` are ``NONE``)."""
        return _OUTCOMES[self.result]


# --- prefetched keys ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyLookup:
    """The TXT answer for one ``selector._domainkey.domain`` name, fetched ahead.

    ``status`` is ``ok`` (``records`` may be empty: no data), ``nxdomain`` or
    ``temperror`` (``detail`` says why).
    """

    status: Literal["ok", "nxdomain", "temperror"]
    records: tuple[str, ...] = ()
    detail: str = ""


def key_name(selector: str, domain: str) -> str:
    """The DNS name of a DKIM key, lower case, without the final dot."""
    return f"{selector}._domainkey.{domain}".lower().rstrip(".")


async def fetch_keys(names: Iterable[str], resolver: Resolver) -> dict[str, KeyLookup]:
    """TXT records of every name (each asked once, concurrently), by normalised name."""
    unique = sorted({n.lower().rstrip(".") for n in names})

    async def one(name: str) -> KeyLookup:
        try:
            return KeyLookup("ok", tuple(await resolver.txt(name)))
        except NXDomain:
            return KeyLookup("nxdomain", detail=f"{name}: NXDOMAIN")
        except DNSTempError as exc:
            return KeyLookup("temperror", detail=f"{name}: {exc}")

    answers = await asyncio.gather(*(one(n) for n in unique))
    return dict(zip(unique, answers, strict=True))


def _pick_record(records: Sequence[str]) -> str | None:
    """One key record among several TXT answers (RFC 6376 3.6.2.2 leaves it open): the
    first that looks like a key, else the first."""
    for record in records:
        if "p=" in record:
            return record
    return records[0] if records else None


def served_dnsfunc(keys: Mapping[str, KeyLookup]) -> Callable[..., bytes | None]:
    """A synchronous dkimpy ``dnsfunc`` answering from prefetched ``keys`` only."""

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        lookup = keys.get(text.lower().rstrip("."))
        if lookup is None or lookup.status == "temperror":
            raise dkim.DnsTimeoutError(lookup.detail if lookup else f"{text}: not fetched")
        record = _pick_record(lookup.records)
        return None if record is None else record.encode("utf-8")

    return dnsfunc


# --- signatures -----------------------------------------------------------------------------

def header_block(raw: bytes) -> bytes:
    """The header section of a message, up to and including the empty line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = raw.find(sep)
        if pos >= 0:
            return raw[:pos + len(sep)]
    return raw + b"\r\n\r\n"


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


@dataclass(slots=True)
class _Signature:
    index: int
    tags: dict[bytes, bytes]
    result: DkimResult | None = None  # decided before hashing (errors, skips)

    def make(self, result: DkimResultName, reason: str = "", key_bits: int = 0) -> DkimResult:
        tags = self.tags
        return DkimResult(
            result, self.index, domain=_text(tags.get(b"d")).lower(),
            selector=_text(tags.get(b"s")), algorithm=_text(tags.get(b"a")).lower(),
            identity=_text(tags.get(b"i")),
            b=re.sub(r"\s+", "", _text(tags.get(b"b")))[:8], reason=reason,
            key_bits=key_bits)

    @property
    def key(self) -> str:
        return key_name(_text(self.tags.get(b"s")), _text(self.tags.get(b"d")))


def _signatures(raw: bytes) -> list[_Signature]:
    """Every DKIM-Signature header, parsed and checked for syntax (no crypto yet)."""
    headers, _body = dkim.rfc822_parse(header_block(raw))
    sigs: list[_Signature] = []
    for name, value in headers:
        if name.lower() != b"dkim-signature":
            continue
        sig = _Signature(len(sigs), {})
        sigs.append(sig)
        try:
            sig.tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList as exc:
            sig.result = sig.make("permerror", f"malformed signature: {exc}")
            continue
        try:
            dkim.validate_signature_fields(sig.tags)
        except dkim.ValidationError as exc:
            sig.result = sig.make("permerror", _short(str(exc)))
    return sigs


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _key_problem(lookup: KeyLookup | None, name: str) -> tuple[DkimResultName, str] | None:
    """Why a key cannot be used (before any hashing), or None when it looks usable."""
    if lookup is None or lookup.status == "temperror":
        return "temperror", "DNS error fetching the key"
    record = _pick_record(lookup.records)
    if lookup.status == "nxdomain" or record is None:
        return "permerror", f"no key record at {name}"
    try:
        tags = dkim.util.parse_tag_value(record.encode("utf-8"))
    except dkim.util.InvalidTagValueList:
        return "permerror", "malformed key record"
    if tags.get(b"p", b"x").strip() == b"":
        return "permerror", "key revoked (empty p=)"
    try:
        pk, _bits, _ktag, _tlsrpt = dkim.evaluate_pk(name, record.encode("utf-8"))
    except dkim.DKIMException as exc:
        return "permerror", f"bad key record: {_short(str(exc), 60)}"
    except Exception as exc:  # binascii.Error and friends: a key that is not base64
        return "permerror", f"bad key record: {type(exc).__name__}"
    if pk is None:
        return "permerror", "key not for e-mail (s= service type)"
    return None


def _verify_sync(raw: bytes, sigs: Sequence[_Signature], keys: Mapping[str, KeyLookup],
                 *, minkey: int, wanted: Callable[[str], bool] | None,
                 big: bool) -> list[DkimResult]:
    """Hash and check every signature still undecided (runs in a worker thread)."""
    verifier: Any = None
    dnsfunc = served_dnsfunc(keys)
    results: list[DkimResult] = []
    wanted_passed = False
    for sig in sigs:
        if sig.result is not None:
            results.append(sig.result)
            continue
        if big and (wanted_passed or (wanted is not None and not wanted(
                _text(sig.tags.get(b"d")).lower()))):
            results.append(sig.make("policy", "not verified: large message"))
            continue
        try:
            if verifier is None:
                verifier = dkim.DKIM(raw, logger=DKIMPY_LOG, minkey=minkey)
            ok = verifier.verify(idx=sig.index, dnsfunc=dnsfunc)
        except dkim.ValidationError as exc:
            text = str(exc)
            if "body hash" in text:
                results.append(sig.make("fail", "body hash mismatch"))
            else:
                results.append(sig.make("permerror", _short(text)))
            continue
        except dkim.KeyFormatError as exc:
            results.append(sig.make("permerror", _short(str(exc))))
            continue
        except dkim.DKIMException as exc:
            results.append(sig.make("permerror", _short(str(exc))))
            continue
        except Exception as exc:  # a dkimpy crash on odd input: not a verdict on the mail
            results.append(sig.make("permerror", f"cannot verify: {type(exc).__name__}"))
            continue
        bits = int(getattr(verifier, "keysize", 0) or 0)
        if ok:
            results.append(sig.make("pass", key_bits=bits))
            wanted_passed = wanted_passed or wanted is not None
        else:
            results.append(sig.make("fail", "signature did not verify", key_bits=bits))
    return results


async def verify_dkim(
    raw: bytes, resolver: Resolver, *, max_signatures: int = MAX_SIGNATURES,
    big_message: int = BIG_MESSAGE, wanted: Callable[[str], bool] | None = None,
    minkey: int = MIN_RSA_BITS, allow_sha1: bool = False, thread_above: int = THREAD_ABOVE,
) -> list[DkimResult]:
    """Verify every DKIM-Signature of ``raw`` (see the module docstring); never raises
    on bad input: a message that cannot be parsed gives one ``permerror`` per signature
    found, or an empty list."""
    try:
        sigs = _signatures(raw)
    except (dkim.DKIMException, ValueError, IndexError) as exc:  # dkimpy's parser
        return [DkimResult("permerror", 0, reason=_short(f"unparsable message: {exc}"))] \
            if b"dkim-signature" in header_block(raw).lower() else []
    for sig in sigs:
        if sig.result is not None:
            continue
        if sig.index >= max_signatures:
            sig.result = sig.make("policy", f"not verified: more than {max_signatures} "
                                  "signatures")
        elif sig.tags.get(b"a", b"").lower() == b"rsa-sha1" and not allow_sha1:
            sig.result = sig.make("policy", "rsa-sha1 not accepted (RFC 8301)")
    pending = [s for s in sigs if s.result is None]
    keys = await fetch_keys((s.key for s in pending), resolver)
    for sig in pending:
        problem = _key_problem(keys.get(sig.key), sig.key)
        if problem is not None:
            sig.result = sig.make(*problem)
    if all(s.result is not None for s in sigs):
        return [s.result for s in sigs if s.result is not None]
    if len(raw) <= thread_above:
        return _verify_sync(raw, sigs, keys, minkey=minkey, wanted=wanted,
                            big=len(raw) > big_message)
    return await asyncio.to_thread(_verify_sync, raw, sigs, keys, minkey=minkey,
                                   wanted=wanted, big=len(raw) > big_message)
