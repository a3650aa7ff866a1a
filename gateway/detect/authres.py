"""Authentication-Results (RFC 8601): write ours, strip forged ones, read a trusted one.

- ``build_value(authserv_id, spf=…, dkim=…, dmarc=…, arc=…)`` writes our header
  value (``vigie.example; spf=pass smtp.mailfrom=a@b.fr; dkim=pass header.d=b.fr
  header.s=s1 header.b=AbCdEfGh; dmarc=pass (p=reject) header.from=b.fr; arc=none``);
  ``header_field(value)`` folds it into a whole ``Authentication-Results:`` line.
- ``remove_ours(raw, authserv_id)`` drops from the raw message every
  Authentication-Results field whose authserv-id is ours (RFC 8601 5: a forged one
  must not survive), leaving every other byte as it was.
- ``parse_value(value)`` / ``trusted_results(raw, trusted_ids)`` read the results
  written by a trusted server (e.g. the provider's MX in front of vigie).

Only technical facts go in: result names, domains, selectors, the sender address and
short reasons from our own code (never message content).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.detect.arc import ArcResult
from gateway.detect.dkim import DkimResult
from gateway.detect.dmarc import DmarcResult
from gateway.detect.iprev import IprevResult
from gateway.detect.spf import SpfResult

HEADER_NAME = "Authentication-Results"

# --- writing ----------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+\Z")  # RFC 2045 token + @
_CONTROLS_RE = re.compile(r"[\x00-\x1f\x7f]+")


def _clean(text: str) -> str:
    """No control characters (CR, LF…) from a message or DNS may reach our header."""
    return _CONTROLS_RE.sub(" ", text)


def _value(text: str) -> str:
    """A property value: as is when it is a token (or local@domain), else quoted."""
    text = _clean(text)
    if text and _TOKEN_RE.match(text) and not text.startswith("@"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    if not text:
        return ""
    clean = " ".join(_clean(text).split()).replace("\\", "\\\\").replace("(", "\\(").replace(
        ")", "\\)")
    return f" ({clean})"


def _spf_part(spf: SpfResult, mail_from: str, helo: str | None) -> str:
    address = mail_from.strip().removeprefix("<").removesuffix(">")
    # null reverse-path: the HELO identity was checked (RFC 7208 2.4)
    prop = f"smtp.mailfrom={_value(address)}" if address else f"smtp.helo={_value(helo or '')}"
    reason = spf.problem if spf.result in ("temperror", "permerror") else ""
    return f"spf={spf.result}{_comment(reason[:60])} {prop}"


def _dkim_part(result: DkimResult) -> str:
    props = [f"header.d={_value(result.domain)}" if result.domain else "",
             f"header.s={_value(result.selector)}" if result.selector else "",
             f"header.a={_value(result.algorithm)}" if result.algorithm else "",
             f"header.b={_value(result.b)}" if result.b else ""]
    reason = result.reason[:60] if result.result != "pass" else ""
    return f"dkim={result.result}{_comment(reason)} " + " ".join(p for p in props if p)


def build_value(authserv_id: str, *, spf: SpfResult | None = None, mail_from: str = "",
                helo: str | None = None, dkim: Sequence[DkimResult] | None = None,
                dmarc: DmarcResult | None = None, arc: ArcResult | None = None,
                iprev: IprevResult | None = None) -> str:
    """Our Authentication-Results value; a method given as None is left out, an empty
    ``dkim`` list is written ``dkim=none``; with no method at all the value is
    ``authserv-id; none`` (RFC 8601 2.2)."""
    parts: list[str] = []
    if iprev is not None:
        parts.append(f"iprev={iprev.result}{_comment(iprev.name or iprev.reason)} "
                     f"policy.iprev={_value(iprev.ip)}")
    if spf is not None:
        parts.append(_spf_part(spf, mail_from, helo))
    if dkim is not None:
        parts.extend(_dkim_part(r) for r in dkim) if dkim else parts.append("dkim=none")
    if dmarc is not None:
        comment = f"p={dmarc.policy}" if dmarc.policy else ""
        if dmarc.result in ("temperror", "permerror"):
            comment = dmarc.reason[:60]
        domain = f" header.from={_value(dmarc.from_domain)}" if dmarc.from_domain else ""
        parts.append(f"dmarc={dmarc.result}{_comment(comment)}{domain}")
    if arc is not None:
        part = f"arc={arc.result}"
        if arc.result == "pass" and arc.oldest_pass is not None:
            part += f" header.oldest-pass={arc.oldest_pass}"  # RFC 8617 10.1
        parts.append(part)
    return f"{_clean(authserv_id)}; " + ("; ".join(parts) if parts else "none")


def header_field(value: str, *, name: str = HEADER_NAME, width: int = 78) -> bytes:
    """``Name: value`` ending with CRLF, folded at spaces so lines stay within
    ``width`` where possible (a fold replaces one space)."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > width and line != f"{name}:":
            lines.append(line)
            line = "\t" + word
        else:
            line = f"{line} {word}"
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# --- reading raw headers ------------------------------------------------------------------

def _split_header(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields of ``raw`` (each with its continuation lines and line ends,
    byte for byte), and the rest (the empty line and the body)."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end + 1
        line = raw[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos = end
    return fields, raw[pos:]


def header_fields(raw: bytes) -> list[bytes]:
    """The header fields of ``raw``, each with its continuation lines, byte for byte."""
    return _split_header(raw)[0]


def _field_name_value(field: bytes) -> tuple[str, str] | None:
    name, colon, value = field.partition(b":")
    if not colon:
        return None
    text = value.decode("utf-8", "replace")
    return name.decode("latin-1").strip().lower(), re.sub(r"\r?\n[ \t]", " ", text).strip()


def authserv_id_of(value: str) -> str:
    """The authserv-id at the start of an Authentication-Results value ("" if none)."""
    parser = _Parser(value)
    parser.cfws()
    return parser.value() or ""


def remove_ours(raw: bytes, authserv_id: str) -> bytes:
    """``raw`` without the Authentication-Results fields whose authserv-id is
    ``authserv_id`` (case-insensitive); all other bytes unchanged."""
    fields, rest = _split_header(raw)
    ours = authserv_id.strip().lower()
    kept = []
    for field in fields:
        parsed = _field_name_value(field)
        if parsed and parsed[0] == HEADER_NAME.lower() \
                and authserv_id_of(parsed[1]).lower() == ours:
            continue
        kept.append(field)
    return b"".join(kept) + rest


# --- parsing a value ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` of an Authentication-Results value, with its properties
    (``("smtp.mailfrom", "a@b.fr")``, lower-case names) and its reason (a
    ``reason=`` property or the comment after the result)."""

    method: str
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The first property called ``name`` (e.g. ``header.d``), or None."""
        name = name.lower()
        return next((v for k, v in self.properties if k == name), None)


@dataclass(frozen=True, slots=True)
class AuthResults:
    """A parsed Authentication-Results value."""

    authserv_id: str
    results: tuple[MethodResult, ...] = ()

    def of(self, method: str) -> list[MethodResult]:
        return [r for r in self.results if r.method == method.lower()]


class _Parser:
    """A small RFC 8601 reader: CFWS, tokens, quoted strings, comments."""

    _SPECIALS = frozenset(' \t\r\n()";=')

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.comments: list[str] = []

    def peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def cfws(self) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r\n":
                self.pos += 1
            elif ch == "(":
                self.comments.append(self._comment())
            else:
                return

    def _comment(self) -> str:
        depth, out = 0, []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
                continue
            if ch == "(":
                depth += 1
                if depth == 1:
                    continue
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return "".join(out).strip()
            out.append(ch)
        raise ValueError("unterminated comment")

    def value(self, *, equals: bool = False) -> str | None:
        """A token (any run of non-special characters; ``equals``: "=" too, as in an
        unquoted base64 ``header.b``) or a quoted string."""
        if self.peek() == '"':
            self.pos += 1
            out = []
            while self.pos < len(self.text):
                ch = self.text[self.pos]
                self.pos += 1
                if ch == "\\" and self.pos < len(self.text):
                    out.append(self.text[self.pos])
                    self.pos += 1
                elif ch == '"':
                    return "".join(out)
                else:
                    out.append(ch)
            raise ValueError("unterminated quoted string")
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos] not in self._SPECIALS
                                             or (equals and self.text[self.pos] == "=")):
            self.pos += 1
        return self.text[start:self.pos] or None

    def expect(self, ch: str) -> None:
        self.cfws()
        if self.peek() != ch:
            raise ValueError(f"expected {ch!r} at {self.pos}")
        self.pos += 1


def parse_value(value: str) -> AuthResults:
    """Parse an Authentication-Results value. Raises ``ValueError`` when it is not
    RFC 8601 syntax. Method, result and property names are lower-cased."""
    p = _Parser(value)
    p.cfws()
    authserv_id = p.value()
    if not authserv_id:
        raise ValueError("no authserv-id")
    p.cfws()
    if p.peek().isdigit():  # authres-version
        p.value()
        p.cfws()
    results: list[MethodResult] = []
    while p.peek() == ";":
        p.pos += 1
        p.cfws()
        if p.pos >= len(p.text):
            break  # a trailing ";" is tolerated
        method = (p.value() or "").lower()
        p.cfws()
        if method == "none" and p.peek() != "=":
            continue
        if not method:
            raise ValueError(f"no method at {p.pos}")
        p.expect("=")
        p.cfws()
        result = (p.value() or "").lower()
        if not result:
            raise ValueError(f"no result for {method}")
        p.comments.clear()
        p.cfws()
        reason = p.comments[0] if p.comments else ""
        props: list[tuple[str, str]] = []
        while p.pos < len(p.text) and p.peek() != ";":
            name = (p.value() or "").lower()
            if not name:
                raise ValueError(f"unexpected {p.peek()!r} at {p.pos}")
            p.expect("=")
            p.cfws()
            prop = p.value(equals=True)
            if prop is None:
                raise ValueError(f"no value for {name}")
            if name == "reason":
                reason = prop
            else:
                props.append((name, prop))
            p.cfws()
        results.append(MethodResult(method.split("/")[0], result, reason, tuple(props)))
    p.cfws()
    if p.pos < len(p.text):
        raise ValueError(f"unexpected {p.text[p.pos:p.pos + 10]!r}")
    return AuthResults(authserv_id, tuple(results))


def trusted_results(raw: bytes, trusted_ids: Iterable[str], *,
                    above_received: int | None = None) -> list[AuthResults]:
    """The parsed Authentication-Results fields of ``raw`` written by one of
    ``trusted_ids`` (case-insensitive), topmost first; unparsable ones are skipped.

    ``above_received=N``: only the fields above the N-th Received field, i.e. those
    the N trusted relays that handed the message on added themselves; one lower down
    was in the message before it reached them, and anyone can write that one."""
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    found = []
    fields, _rest = _split_header(raw)
    received = 0
    for field in fields:
        parsed = _field_name_value(field)
        if parsed and parsed[0] == "received":
            received += 1
            if above_received is not None and received >= above_received:
                break
            continue
        if not parsed or parsed[0] != HEADER_NAME.lower():
            continue
        if authserv_id_of(parsed[1]).lower() not in trusted:
            continue
        try:
            found.append(parse_value(parsed[1]))
        except ValueError:
            continue
    return found
