"""Outcomes and findings: what a check reports, never what happens to the mail."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """What a check concluded about one aspect of a message (rspamd-like)."""

    PASS = "PASS"  # noqa: S105 - an outcome, not a password
    FAIL = "FAIL"
    SOFTFAIL = "SOFTFAIL"
    NONE = "NONE"
    TEMPERROR = "TEMPERROR"
    PERMERROR = "PERMERROR"
    HIT = "HIT"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Reason:
    """A human explanation, French first, English available."""

    fr: str
    en: str

    def to_json(self) -> dict[str, str]:
        return {"fr": self.fr, "en": self.en}


@dataclass(frozen=True, slots=True)
class Finding:
    """One named symbol emitted by a check, with reasons and *masked* evidence.

    Evidence must never hold patient data in clear: checks mask before they
    build a Finding.
    """

    check: str
    symbol: str
    outcome: Outcome
    reasons: tuple[Reason, ...] = ()
    evidence: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "symbol": self.symbol,
            "outcome": self.outcome.value,
            "reasons": [r.to_json() for r in self.reasons],
            "evidence": list(self.evidence),
        }
