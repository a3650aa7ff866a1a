"""The client IP and HELO for SPF when vigie sits behind trusted relays.

When the provider's MX or a local Postfix hands mail to vigie, the host that connected
is that relay, not the sender. The configuration lists the trusted relays (addresses or
networks); the real client is then read from the ``Received:`` field the last trusted
relay added. Only fields added by trusted hosts are believed: the walk starts at the
top (the newest field), and stops at the first host that is not trusted. Anything below
that point was written by hosts we do not control and may be forged.

Pure: takes the field values, returns an ``Origin`` or a ``NoOrigin`` with the reason.
A ``NoOrigin`` means SPF cannot be evaluated for this message (never a pass).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IP = r"[0-9A-Fa-f:.]+(?:%[0-9A-Za-z]+)?"
# `from HELO (RDNS [IP] ...)`: Postfix, Sendmail, OpenSMTPD, Gmail, Courier, and Exim
# with a verified host name (`from RDNS ([IP]:PORT helo=HELO)`). The first word is one
# token (a HELO argument has no space in these MTAs); the comment right after it is
# the relay's own.
_BRACKETED = re.compile(
    r"^from\s+(?P<first>\S+)\s+\((?:(?!HELO\s)(?P<rdns>[^\s()\[\]]+)\s+)?"
    r"\[(?:IPv6:)?(?P<ip>" + _IP + r")\](?::\d+)?(?P<rest>[^()]*(?:\([^()]*\)[^()]*)*)\)",
    re.IGNORECASE)
# Exim without a verified host name: `from [IP]:PORT (port=PORT helo=HELO)` or
# `from [IP]`; believed only when Exim signs the by clause (`with esmtp (Exim 4.96)`).
_EXIM_BARE = re.compile(
    r"^from\s+\[(?:IPv6:)?(?P<ip>" + _IP + r")\](?::\d+)?"
    r"(?:\s+\((?P<rest>[^()]*)\))?\s.*\(Exim\s", re.IGNORECASE)
# qmail: `from RDNS (HELO helo) (info@IP) by ...`; the HELO may hold anything, spaces
# and parentheses included, so the address is the last comment before `by`.
_QMAIL = re.compile(
    r"^from\s+(?P<rdns>\S+)\s+\(HELO\s(?P<helo>.*)\)\s+\((?:[^()\s@]*@)?(?P<ip>" + _IP
    + r")\)(?:\s+\(envelope-sender\s+<[^<>]*>\))?\s+by\s", re.IGNORECASE)
# Exchange / Microsoft 365, and qmail when HELO and host name agree:
# `from HELO (IP) by ...`.
_PAREN_IP = re.compile(
    r"^from\s+(?P<first>\S+)\s+\((?:[^()\s@]*@)?\[?(?P<ip>" + _IP + r")\]?\)(?:\s|$)",
    re.IGNORECASE)
_EXIM_HELO = re.compile(r"(?:^|\s)helo=(?P<helo>[^\s()]+)", re.IGNORECASE)
# A second field added on the same host for the same hop (qmail-queue's note).
_SAME_HOP = re.compile(r"^\(qmail\s+\d+\s+invoked\s+from\s+network\)", re.IGNORECASE)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class Origin:
    """The host that handed the message to the first trusted relay.

    ``helo`` is the name it gave in HELO/EHLO as the relay recorded it (``None`` when
    unknown); ``hops_skipped`` counts the ``Received:`` fields read to get there (0: the
    connecting host itself is the origin).
    """

    ip: str
    helo: str | None
    hops_skipped: int


@dataclass(frozen=True, slots=True)
class NoOrigin:
    """No origin could be established; SPF is then not evaluable (never a pass).

    Falsy, so ``if origin:`` reads naturally.
    """

    reason: str
    hops_skipped: int = 0

    def __bool__(self) -> Literal[False]:
        return False


@dataclass(frozen=True, slots=True)
class FromClause:
    """What one ``Received:`` field says about the host that handed the message on."""

    ip: str
    helo: str | None


def parse_trusted(entries: Iterable[str]) -> list[IPNetwork]:
    """Networks from configuration strings (``192.0.2.10``, ``2001:db8::/32``).

    Raises ``ValueError`` naming the bad entry.
    """
    out: list[IPNetwork] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return out


def parse_from_clause(value: str) -> FromClause | None:
    """The sending host's address and HELO in one ``Received:`` value, ``None`` when
    the field has no ``from`` clause in a known form."""
    text = " ".join(value.split())
    m = _BRACKETED.match(text)
    if m and _address(m["ip"]):
        exim_helo = _EXIM_HELO.search(m["rest"])
        helo = exim_helo["helo"] if exim_helo else m["first"]
        return FromClause(_address(m["ip"]), _clean_helo(helo))
    m = _QMAIL.match(text)
    if m and _address(m["ip"]):
        return FromClause(_address(m["ip"]), _clean_helo(m["helo"]))
    m = _PAREN_IP.match(text)
    if m and _address(m["ip"]):
        return FromClause(_address(m["ip"]), _clean_helo(m["first"]))
    m = _EXIM_BARE.match(text)
    if m and _address(m["ip"]):
        exim_helo = _EXIM_HELO.search(m["rest"] or "")
        return FromClause(_address(m["ip"]),
                          _clean_helo(exim_helo["helo"]) if exim_helo else None)
    return None


def origin_from_received(received: Sequence[str], connecting_ip: str,
                         trusted: Sequence[IPNetwork], connecting_helo: str | None = None
                         ) -> Origin | NoOrigin:
    """Walk the ``Received:`` values (topmost first, as they appear in the header)
    while the host that handed the message on is trusted.

    ``connecting_ip`` and ``connecting_helo`` are those of the SMTP session. A trusted
    relay's own loopback hops (a content filter on 127.0.0.1) are followed too.
    """
    ip = _address(connecting_ip)
    if not ip:
        return NoOrigin("the connecting address is not an IP address")
    helo = connecting_helo
    index = 0
    while _trusted(ip, trusted, loopback=index > 0):
        while index < len(received) and _SAME_HOP.match(received[index].strip()):
            index += 1
        if index >= len(received):
            return NoOrigin(f"the trusted relay {ip} added no Received field", index)
        clause = parse_from_clause(received[index])
        if clause is None:
            return NoOrigin(f"Received field {index + 1}, added by the trusted relay "
                            f"{ip}, has no from clause vigie can read", index)
        ip, helo = clause.ip, clause.helo
        index += 1
    return Origin(ip, helo, index)


def _trusted(ip: str, trusted: Sequence[IPNetwork], *, loopback: bool) -> bool:
    address = ipaddress.ip_address(ip)
    if loopback and any(address in net for net in _LOOPBACK):
        return True
    return any(address.version == net.version and address in net for net in trusted)


def _address(text: str) -> str:
    """The canonical text of an IP address ('' when it is not one); IPv4-mapped IPv6
    addresses (Courier's ``::ffff:192.0.2.1``) become IPv4."""
    candidate = text.strip().strip("[]")
    if candidate.lower().startswith("ipv6:"):
        candidate = candidate[5:]
    candidate = candidate.split("%", 1)[0]
    try:
        address: IPAddress = ipaddress.ip_address(candidate)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _clean_helo(helo: str) -> str | None:
    helo = helo.strip()
    return helo or None
