"""SPF (RFC 7208): ``check_host()`` and the MAIL FROM / HELO identity procedure.

Pure: every DNS question goes through the injected ``gateway.dns.Resolver``; no
sockets, files or clocks of its own (``now`` is a parameter). A DNS timeout or
SERVFAIL gives ``temperror``: never a silent pass nor a hard fail.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from gateway.dns import DNSTempError, IPAddress, NXDomain, Resolver
from gateway.verdict import Outcome

T = TypeVar("T")

SpfResultName = Literal[
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"
]

MAX_DNS_MECHANISMS = 10  # RFC 7208 4.6.4: include, a, mx, ptr, exists, redirect
MAX_VOID_LOOKUPS = 2  # RFC 7208 4.6.4: NXDOMAIN or empty answers
MAX_MX_NAMES = 10  # more MX records than this: permerror
MAX_PTR_NAMES = 10  # PTR names beyond this are ignored
MAX_DOMAIN_LENGTH = 253

_QUALIFIERS: dict[str, SpfResultName] = {
    "+": "pass", "-": "fail", "~": "softfail", "?": "neutral",
}
_OUTCOMES: dict[str, Outcome] = {
    "pass": Outcome.PASS, "fail": Outcome.FAIL, "softfail": Outcome.SOFTFAIL,
    # RFC 7208 2.6.2: "neutral" MUST be treated exactly like "none".
    "neutral": Outcome.NONE, "none": Outcome.NONE,
    "temperror": Outcome.TEMPERROR, "permerror": Outcome.PERMERROR,
}


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The result of one SPF evaluation.

    ``mechanism`` is the directive that matched as written in the record (with its
    qualifier, e.g. ``-all`` or ``+ip4:192.0.2.0/24``), empty when none matched;
    ``domain`` is the domain whose record decided (after redirects); ``explanation``
    is set for ``fail`` only (from ``exp=`` or the default); ``problem`` says, for a
    developer, why the result is ``none``, ``permerror`` or ``temperror``.
    """

    result: SpfResultName
    domain: str
    mechanism: str = ""
    explanation: str = ""
    problem: str = ""
    lookups: int = 0
    void_lookups: int = 0

    @property
    def outcome(self) -> Outcome:
        """The project-wide outcome (``neutral`` is ``NONE``, RFC 7208 2.6.2)."""
        return _OUTCOMES[self.result]


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


# --- macros (RFC 7208 section 7) -------------------------------------------------------

_MACRO_LETTERS = frozenset("slodiphv")
_EXP_ONLY_LETTERS = frozenset("crt")
_MACRO_EXPAND_RE = re.compile(r"\{([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)\}")
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}


@dataclass(frozen=True, slots=True)
class _Macro:
    letter: str  # lower case
    upper: bool  # URL-escape the value
    digits: int | None
    reverse: bool
    delimiters: str


_Token = str | _Macro


def parse_macro_string(text: str, *, explanation: bool = False) -> list[_Token]:
    """Tokens of a macro-string; ``explanation`` allows spaces and the c, r, t letters.

    Raises ``ValueError`` on a syntax error.
    """
    return _tokenize(text, explanation=explanation)[0]


def _tokenize(text: str, *, explanation: bool = False) -> tuple[list[_Token], bool]:
    """The tokens, and whether the text ends with a macro-expand (incl. %%, %_, %-)."""
    tokens: list[_Token] = []
    literal: list[str] = []
    ends_with_expand = False
    i = 0
    while i < len(text):
        ch = text[i]
        ends_with_expand = ch == "%"
        if ch == "%":
            nxt = text[i + 1:i + 2]
            if nxt in _ESCAPES:
                literal.append(_ESCAPES[nxt])
                i += 2
                continue
            m = _MACRO_EXPAND_RE.match(text, i + 1)
            if not m:
                raise ValueError(f"invalid macro at {text[i:i + 8]!r}")
            letter = m.group(1).lower()
            if letter not in _MACRO_LETTERS and not (
                    explanation and letter in _EXP_ONLY_LETTERS):
                raise ValueError(f"macro letter {m.group(1)!r} not allowed here")
            digits = int(m.group(2)) if m.group(2) else None
            if digits == 0:
                raise ValueError("macro digit transformer must not be 0")
            if literal:
                tokens.append("".join(literal))
                literal = []
            tokens.append(_Macro(letter, m.group(1).isupper(), digits, bool(m.group(3)),
                                 m.group(4)))
            i = m.end()
            continue
        if not ("!" <= ch <= "~" or (explanation and ch == " ")):
            raise ValueError(f"invalid character {ch!r}")
        literal.append(ch)
        i += 1
    if literal:
        tokens.append("".join(literal))
    return tokens, ends_with_expand


def _valid_domain_end(text: str) -> bool:
    """RFC 7208 7.1: domain-end = "." toplabel ["."], where toplabel is alphanumeric
    with at least one letter, or alphanumeric with inner dashes."""
    _head, dot, top = (text[:-1] if text.endswith(".") else text).rpartition(".")
    if not dot or not top.isascii() or not top.replace("-", "").isalnum():
        return False
    if "-" in top:
        return top[0] != "-" and top[-1] != "-"
    return not top.isdigit()


def _parse_domain_spec(text: str) -> list[_Token]:
    """A domain-spec: a macro-string ending with "." toplabel ["."] or a macro."""
    if not text:
        raise _PermError("empty domain-spec")
    try:
        tokens, ends_with_expand = _tokenize(text)
    except ValueError as exc:
        raise _PermError(f"domain-spec {text!r}: {exc}") from exc
    if not ends_with_expand and not _valid_domain_end(text):
        raise _PermError(f"domain-spec {text!r}: invalid top label")
    return tokens


# --- record syntax (RFC 7208 sections 4.6, 5, 6) ---------------------------------------

@dataclass(frozen=True, slots=True)
class _Mechanism:
    text: str
    qualifier: str
    name: str
    domain: list[_Token] | None = None
    cidr4: int = 32
    cidr6: int = 128
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


@dataclass(slots=True)
class _Record:
    mechanisms: list[_Mechanism] = field(default_factory=list)
    redirect: list[_Token] | None = None
    exp: list[_Token] | None = None


_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=(.*)\Z", re.DOTALL)
_MECH_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_DUAL_CIDR_RE = re.compile(r"(.*?)(?:/([0-9]+))?(?://([0-9]+))?\Z", re.DOTALL)
_CIDR_DIGITS_RE = re.compile(r"0|[1-9][0-9]{0,2}\Z")
_IP4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_IP6_RE = re.compile(r"[0-9A-Fa-f:.]+\Z")
_VERSION_RE = re.compile(r"v=spf1(?: |\Z)", re.IGNORECASE)


def _cidr(digits: str | None, maximum: int) -> int:
    if digits is None:
        return maximum
    if not _CIDR_DIGITS_RE.fullmatch(digits) or int(digits) > maximum:
        raise _PermError(f"invalid CIDR length /{digits}")
    return int(digits)


def _parse_mechanism(term: str) -> _Mechanism:
    qualifier = "+"
    body = term
    if body[:1] in _QUALIFIERS:
        qualifier, body = body[0], body[1:]
    m = _MECH_NAME_RE.match(body)
    if not m:
        raise _PermError(f"invalid term {term!r}")
    name, rest = m.group(0).lower(), body[m.end():]
    if name == "all":
        if rest:
            raise _PermError(f"invalid term {term!r}")
        return _Mechanism(term, qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise _PermError(f"{name} needs a domain: {term!r}")
        return _Mechanism(term, qualifier, name, _parse_domain_spec(rest[1:]))
    if name in ("a", "mx"):
        cm = _DUAL_CIDR_RE.match(rest)
        assert cm is not None
        spec = cm.group(1)
        cidr4, cidr6 = _cidr(cm.group(2), 32), _cidr(cm.group(3), 128)
        domain = None
        if spec:
            if not spec.startswith(":"):
                raise _PermError(f"invalid term {term!r}")
            domain = _parse_domain_spec(spec[1:])
        return _Mechanism(term, qualifier, name, domain, cidr4, cidr6)
    if name == "ptr":
        domain = None
        if rest:
            if not rest.startswith(":"):
                raise _PermError(f"invalid term {term!r}")
            domain = _parse_domain_spec(rest[1:])
        return _Mechanism(term, qualifier, name, domain)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise _PermError(f"{name} needs an address: {term!r}")
        address, slash, length = rest[1:].partition("/")
        try:
            if name == "ip4":
                if not _IP4_RE.match(address):
                    raise ValueError(address)
                bits = _cidr(length if slash else None, 32)
                net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
                    f"{address}/{bits}", strict=False)
            else:
                if not _IP6_RE.match(address):
                    raise ValueError(address)
                bits = _cidr(length if slash else None, 128)
                net = ipaddress.IPv6Network(f"{address}/{bits}", strict=False)
        except ValueError as exc:
            raise _PermError(f"invalid address in {term!r}") from exc
        return _Mechanism(term, qualifier, name, network=net)
    raise _PermError(f"unknown mechanism {term!r}")


def syntax_error(record: str) -> str | None:
    """Why a "v=spf1" record is not valid RFC 7208 syntax (a permerror), or None."""
    try:
        _parse_record(record)
    except _PermError as exc:
        return str(exc)
    return None


def _parse_record(text: str) -> _Record:
    if not _VERSION_RE.match(text):
        raise _PermError("not a v=spf1 record")
    record = _Record()
    for term in text[6:].split(" "):
        if not term:
            continue
        if not all("!" <= ch <= "~" for ch in term):
            raise _PermError(f"invalid character in term {term!r}")
        m = _MODIFIER_RE.match(term)
        if m:
            name, value = m.group(1).lower(), m.group(2)
            if name in ("redirect", "exp"):
                if getattr(record, name) is not None:
                    raise _PermError(f"{name}= appears twice")
                setattr(record, name, _parse_domain_spec(value))
            else:  # unknown modifiers are ignored, but must be well-formed
                try:
                    parse_macro_string(value)
                except ValueError as exc:
                    raise _PermError(f"modifier {term!r}: {exc}") from exc
            continue
        record.mechanisms.append(_parse_mechanism(term))
    return record


# --- names ------------------------------------------------------------------------------

def valid_domain(name: str) -> bool:
    """A multi-label domain name: no empty label (but a final dot), none over 63 characters."""
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_DOMAIN_LENGTH or name.startswith("["):
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels)


def _truncate(name: str) -> str:
    """RFC 7208 7.3: drop labels from the left until the name fits 253 characters."""
    while len(name.rstrip(".")) > MAX_DOMAIN_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    return name


def _same_or_sub(name: str, domain: str) -> bool:
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


def _split_sender(sender: str) -> tuple[str, str]:
    local, at, domain = sender.rpartition("@")
    if not at:
        return "postmaster", sender
    return local or "postmaster", domain


# --- evaluation ---------------------------------------------------------------------------

class _Evaluation:
    """State shared by one check_host() and its includes/redirects: the lookup counters."""

    def __init__(self, ip: IPAddress, sender: str, helo: str, resolver: Resolver, *,
                 receiver: str, now: float, default_explanation: str,
                 max_lookups: int, max_void: int) -> None:
        self.ip = ip
        self.local, self.sender_domain = _split_sender(sender)
        self.helo = helo
        self.resolver = resolver
        self.receiver = receiver
        self.now = now
        self.default_explanation = default_explanation
        self.max_lookups = max_lookups
        self.max_void = max_void
        self.lookups = 0
        self.void = 0
        self._validated: list[str] | None = None

    # DNS helpers
    def _count_lookup(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > self.max_lookups:
            raise _PermError(f"more than {self.max_lookups} DNS lookups (at {term!r})")

    async def _query(self, call: Callable[[], Awaitable[list[T]]], what: str, *,
                     void: bool = True) -> list[T]:
        """Run a query; empty or NXDOMAIN is a void lookup, a timeout is temperror."""
        try:
            answer = await call()
        except NXDomain:
            answer = []
        except DNSTempError as exc:
            raise _TempError(f"DNS error on {what}: {exc}") from exc
        if not answer and void:
            self.void += 1
            if self.void > self.max_void:
                raise _PermError(f"more than {self.max_void} void DNS lookups (at {what})")
        return answer

    async def _addresses(self, name: str) -> Sequence[IPAddress]:
        if isinstance(self.ip, ipaddress.IPv4Address):
            return await self.resolver.a(name)
        return await self.resolver.aaaa(name)

    async def _validated_names(self) -> list[str]:
        """RFC 7208 5.5: PTR names of <ip> whose addresses include <ip> (first 10 names)."""
        if self._validated is None:
            try:
                names = await self.resolver.ptr(self.ip)
            except (NXDomain, DNSTempError):
                names = []
            validated = []
            for name in names[:MAX_PTR_NAMES]:
                if not name.rstrip("."):
                    continue  # a PTR to the root names no host
                try:
                    if self.ip in await self._addresses(name):
                        validated.append(name.rstrip("."))
                except (NXDomain, DNSTempError):
                    continue  # 5.5: a DNS error on an A lookup skips that name
            self._validated = validated
        return self._validated

    # macros
    async def _macro_value(self, letter: str, domain: str) -> str:
        ip = self.ip
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if isinstance(ip, ipaddress.IPv4Address):
                return str(ip)
            return ".".join(ip.exploded.replace(":", "").upper())
        if letter == "p":
            names = await self._validated_names()
            for name in names:
                if name.lower() == domain.lower().rstrip("."):
                    return name
            for name in names:
                if _same_or_sub(name, domain):
                    return name
            return names[0] if names else "unknown"
        if letter == "v":
            return "in-addr" if isinstance(ip, ipaddress.IPv4Address) else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return str(ip)
        if letter == "r":
            return self.receiver
        if letter == "t":
            return str(int(self.now))
        raise AssertionError(letter)  # the parser lets no other letter through

    async def expand(self, tokens: Sequence[_Token], domain: str) -> str:
        out: list[str] = []
        for token in tokens:
            if isinstance(token, str):
                out.append(token)
                continue
            value = await self._macro_value(token.letter, domain)
            delimiters = token.delimiters or "."
            parts = re.split("[" + re.escape(delimiters) + "]", value)
            if token.reverse:
                parts.reverse()
            if token.digits is not None:
                parts = parts[-token.digits:]
            value = ".".join(parts)
            if token.upper:
                value = urllib.parse.quote(value, safe="")
            out.append(value)
        return "".join(out)

    async def _target(self, mech: _Mechanism, domain: str) -> str:
        if mech.domain is None:
            return domain
        return _truncate(await self.expand(mech.domain, domain))

    # check_host
    async def check(self, domain: str, *, explain: bool) -> SpfResult:
        """check_host() for ``domain`` as a result, never raising."""
        try:
            return await self._check(domain, explain=explain)
        except _PermError as exc:
            return self.result("permerror", domain, problem=str(exc))
        except _TempError as exc:
            return self.result("temperror", domain, problem=str(exc))

    def result(self, name: SpfResultName, domain: str, **kwargs: str) -> SpfResult:
        return SpfResult(name, domain.rstrip("."), lookups=self.lookups,
                         void_lookups=self.void, **kwargs)

    async def _check(self, domain: str, *, explain: bool) -> SpfResult:
        if not valid_domain(domain):
            return self.result("none", domain, problem=f"invalid domain name {domain!r}")
        try:
            txts = await self.resolver.txt(domain)
        except NXDomain:
            return self.result("none", domain, problem=f"{domain}: NXDOMAIN")
        except DNSTempError as exc:
            raise _TempError(f"DNS error on TXT {domain}: {exc}") from exc
        records = [t for t in txts if _VERSION_RE.match(t)]
        if not records:
            return self.result("none", domain, problem=f"{domain}: no v=spf1 record")
        if len(records) > 1:
            raise _PermError(f"{domain}: {len(records)} v=spf1 records")
        record = _parse_record(records[0])

        for mech in record.mechanisms:
            if await self._matches(mech, domain):
                name = _QUALIFIERS[mech.qualifier]
                explanation = ""
                if name == "fail" and explain:
                    explanation = await self._explain(record, domain)
                return self.result(name, domain, mechanism=mech.text,
                                   explanation=explanation)

        if record.redirect is not None:
            self._count_lookup("redirect=")
            target = _truncate(await self.expand(record.redirect, domain))
            result = await self.check(target, explain=explain)
            if result.result == "none":
                raise _PermError(f"redirect={target}: {result.problem}")
            return result
        return self.result("neutral", domain)

    async def _matches(self, mech: _Mechanism, domain: str) -> bool:
        name, ip = mech.name, self.ip
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            assert mech.network is not None
            return ip.version == mech.network.version and ip in mech.network
        self._count_lookup(mech.text)
        target = await self._target(mech, domain)
        if name == "include":
            result = await self.check(target, explain=False)
            if result.result == "pass":
                return True
            if result.result in ("fail", "softfail", "neutral"):
                return False
            if result.result == "temperror":
                raise _TempError(f"include:{target}: {result.problem}")
            raise _PermError(f"include:{target}: {result.result} ({result.problem})")
        if not valid_domain(target):
            return False  # a name that cannot exist matches nothing
        if name == "a":
            async def call() -> list[IPAddress]:
                return list(await self._addresses(target))
            addresses = await self._query(call, f"a:{target}")
            return self._in_cidr(addresses, mech)
        if name == "mx":
            hosts = await self._query(lambda: self.resolver.mx(target), f"mx:{target}")
            if len(hosts) > MAX_MX_NAMES:
                raise _PermError(f"mx:{target}: more than {MAX_MX_NAMES} MX records")
            for _pref, host in sorted(hosts):
                if host.rstrip(".") and self._in_cidr(await self._mx_host(host), mech):
                    return True  # (an empty host is a null MX, RFC 7505)
            return False
        if name == "ptr":
            return any(_same_or_sub(n, target) for n in await self._validated_names())
        if name == "exists":
            return bool(await self._query(lambda: self.resolver.a(target), f"exists:{target}"))
        raise AssertionError(name)

    async def _mx_host(self, host: str) -> Sequence[IPAddress]:
        async def call() -> list[IPAddress]:
            return list(await self._addresses(host))
        return await self._query(call, f"mx host {host}", void=False)

    def _in_cidr(self, addresses: Sequence[IPAddress], mech: _Mechanism) -> bool:
        bits = mech.cidr4 if isinstance(self.ip, ipaddress.IPv4Address) else mech.cidr6
        network = ipaddress.ip_network(f"{self.ip}/{bits}", strict=False)
        return any(a in network for a in addresses)

    async def _explain(self, record: _Record, domain: str) -> str:
        """RFC 7208 6.2: the exp= text, or the default one when anything goes wrong."""
        if record.exp is None:
            return self.default_explanation
        try:
            target = _truncate(await self.expand(record.exp, domain))
            if not valid_domain(target):
                return self.default_explanation
            txts = await self.resolver.txt(target)
            if len(txts) != 1 or not txts[0].isascii():
                return self.default_explanation
            return await self.expand(parse_macro_string(txts[0], explanation=True), domain)
        except (ValueError, NXDomain, DNSTempError, _PermError, _TempError):
            return self.default_explanation


def _client_ip(ip: IPAddress | str) -> IPAddress:
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # RFC 7208 5: an IPv4-mapped address is IPv4
    return address


async def check_host(
    ip: IPAddress | str, domain: str, sender: str, helo: str, resolver: Resolver, *,
    receiver: str = "unknown", now: float | None = None, default_explanation: str = "",
    max_lookups: int = MAX_DNS_MECHANISMS, max_void_lookups: int = MAX_VOID_LOOKUPS,
) -> SpfResult:
    """RFC 7208 check_host(<ip>, <domain>, <sender>), ``helo`` for the %{h} macro.

    ``sender`` is "local@domain" (an empty local part or no "@" means "postmaster");
    ``receiver`` is this host's name for %{r}; ``now`` the time for %{t}.
    """
    evaluation = _Evaluation(
        _client_ip(ip), sender, helo, resolver, receiver=receiver,
        now=time.time() if now is None else now, default_explanation=default_explanation,
        max_lookups=max_lookups, max_void=max_void_lookups)
    return await evaluation.check(domain, explain=True)


async def expand_macros(
    text: str, ip: IPAddress | str, sender: str, domain: str, resolver: Resolver, *,
    helo: str = "", receiver: str = "unknown", now: float = 0.0, explanation: bool = False,
) -> str:
    """RFC 7208 section 7: expand one macro-string as check_host() would for ``domain``.

    ``explanation`` allows the c, r, t letters and spaces (an exp= TXT text). The
    resolver is used only by %{p}. Raises ``ValueError`` on a syntax error.
    """
    evaluation = _Evaluation(_client_ip(ip), sender, helo, resolver, receiver=receiver,
                             now=now, default_explanation="", max_lookups=MAX_DNS_MECHANISMS,
                             max_void=MAX_VOID_LOOKUPS)
    return await evaluation.expand(parse_macro_string(text, explanation=explanation), domain)


async def check_helo(ip: IPAddress | str, helo: str, resolver: Resolver, *,
                     receiver: str = "unknown", now: float | None = None,
                     default_explanation: str = "") -> SpfResult:
    """RFC 7208 2.3: the HELO identity, checked as postmaster@<helo>.

    An address literal ("[192.0.2.1]") or a name that is not a multi-label domain
    gives ``none``.
    """
    return await check_host(ip, helo, f"postmaster@{helo}", helo, resolver,
                            receiver=receiver, now=now,
                            default_explanation=default_explanation)


async def check_mail_from(ip: IPAddress | str, mail_from: str, helo: str,
                          resolver: Resolver, *, receiver: str = "unknown",
                          now: float | None = None,
                          default_explanation: str = "") -> SpfResult:
    """RFC 7208 2.4: the MAIL FROM identity; for the null reverse-path ("" or "<>"),
    the HELO identity (postmaster@<helo>), as the RFC asks."""
    address = mail_from.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address:
        return await check_helo(ip, helo, resolver, receiver=receiver, now=now,
                                default_explanation=default_explanation)
    return await check_host(ip, _split_sender(address)[1], address, helo, resolver,
                            receiver=receiver, now=now,
                            default_explanation=default_explanation)
