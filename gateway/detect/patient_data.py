"""Patient-data assessment over extracted text: NIRs, diagnoses, markers, identifiers. Pure.

Levels: a NIR is patient data by itself (its own confidence); a diagnosis or a
strong document marker is *medium*, *high* next to a patient identifier (a
NIR, or a date of birth introduced as such).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.detect.extract import TextChunk
from gateway.detect.lexicon import Lexicon, TermMatch
from gateway.detect.nir import ContextWords, NirMatch, NirRules, find_nirs

LEVELS = ("none", "medium", "high")

# Starts with a plain \d so that the regex engine can skip to digits quickly;
# the ranges and the "no digit before" rule are checked in Python on the few hits.
_DATE = re.compile(r"\d(?<!\d\d)\d?[/.\-]\d\d?[/.\-](?:19|20)\d\d(?!\d)")


def _is_date(text: str) -> bool:
    day, month, _ = re.split(r"[/.\-]", text)
    return 1 <= int(day) <= 31 and 1 <= int(month) <= 12


@dataclass(frozen=True)
class Located:
    """A match and the chunk it was found in."""

    source: str
    container: str


@dataclass(frozen=True)
class FoundNir(Located):
    nir: NirMatch


@dataclass(frozen=True)
class FoundTerm(Located):
    term: TermMatch


@dataclass(frozen=True)
class AssessRules:
    nir: NirRules
    birth_context: ContextWords
    weak_markers: frozenset[str]  # canonical lexicon terms that do not count alone


@dataclass
class Assessment:
    nirs: list[FoundNir] = field(default_factory=list)
    diagnoses: list[FoundTerm] = field(default_factory=list)
    markers: list[FoundTerm] = field(default_factory=list)
    weak_markers: list[FoundTerm] = field(default_factory=list)
    birthdates: list[Located] = field(default_factory=list)

    @property
    def identifier(self) -> bool:
        return bool(self.nirs or self.birthdates)

    @property
    def level(self) -> str:
        level = "none"
        if self.nirs:
            level = "high" if any(n.nir.confidence == "high" for n in self.nirs) else "medium"
        if self.diagnoses or self.markers:
            level = "high" if self.identifier else max(level, "medium", key=LEVELS.index)
        return level

    def distinct_matricules(self) -> list[str]:
        return sorted({n.nir.matricule for n in self.nirs})


def _fold_key(text: str) -> str:
    return text.casefold()


def assess(chunks: Sequence[TextChunk], rules: AssessRules, lexicon: Lexicon) -> Assessment:
    out = Assessment()
    weak = {_fold_key(w) for w in rules.weak_markers}
    for chunk in chunks:
        text = chunk.text
        if not text:
            continue
        for nir in find_nirs(text, rules.nir):
            out.nirs.append(FoundNir(chunk.source, chunk.container, nir))
        for term in lexicon.find(text):
            found = FoundTerm(chunk.source, chunk.container, term)
            if term.kind in ("diagnosis", "cim10"):
                out.diagnoses.append(found)
            elif _fold_key(term.term) in weak:
                out.weak_markers.append(found)
            else:
                out.markers.append(found)
        for m in _DATE.finditer(text):
            if not _is_date(m.group(0)):
                continue
            before = text[max(0, m.start() - 40):m.start()]
            if rules.birth_context.find(before):
                out.birthdates.append(Located(chunk.source, chunk.container))
    return out


def unique_terms(found: Iterable[FoundTerm]) -> list[str]:
    seen: dict[str, None] = {}
    for f in found:
        seen.setdefault(f.term.term, None)
    return list(seen)
