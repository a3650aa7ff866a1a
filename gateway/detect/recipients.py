"""Recipient classification: mssante, webmail, trusted or other. Pure.

Domains are IDNA- and case-normalised; a subdomain belongs to its parent's class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MSSANTE_SUFFIX = "mssante.fr"
PATIENT_DOMAIN = "patient.mssante.fr"


def normalise_domain(domain: str) -> str:
    """Lower-case, no trailing dot, Unicode labels in their ASCII (punycode) form."""
    domain = domain.strip().strip(".").lower()
    if not domain:
        return ""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


@dataclass(frozen=True)
class RecipientClasses:
    webmail: frozenset[str]
    trusted: frozenset[str] = frozenset()

    @classmethod
    def build(cls, webmail: Iterable[str], trusted: Iterable[str] = ()) -> RecipientClasses:
        return cls(frozenset(normalise_domain(d) for d in webmail if d.strip()),
                   frozenset(normalise_domain(d) for d in trusted if d.strip()))

    def classify(self, address: str) -> str:
        """'mssante' | 'trusted' | 'webmail' | 'other' for one address."""
        _, at, domain = address.rpartition("@")
        domain = normalise_domain(domain if at else "")
        if not domain:
            return "other"
        parents = _parents(domain)
        if domain == MSSANTE_SUFFIX or domain.endswith("." + MSSANTE_SUFFIX):
            return "mssante"
        if any(p in self.trusted for p in parents):
            return "trusted"
        if any(p in self.webmail for p in parents):
            return "webmail"
        return "other"


def domain_of(address: str) -> str:
    _, at, domain = address.rpartition("@")
    return normalise_domain(domain) if at else ""
