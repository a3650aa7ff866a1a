"""Patient-data assessment over extracted text: NIRs, diagnoses, markers, identifiers. Pure.

Levels: a NIR is patient data by itself (its own confidence). A diagnosis is
*medium* when it may be about someone — in an attached document, next to words
that point at a person («votre», «Mme», «souffre»…), or simply not worded as
general information («prévenir», «nos conseils», «atelier»…) — and *high* next to a
patient identifier (a NIR, or a date of birth introduced as such). A diagnosis
in general information (a newsletter: «prévenir la tendinite») or in a
signature's list of specialities is not patient data. Document markers
(ordonnance, bilan…) count in attachments, or beside a diagnosis or identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.detect.extract import TextChunk
from gateway.detect.fold import fold
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
    written: str = ""  # the words as the sender wrote them


@dataclass(frozen=True)
class AssessRules:
    nir: NirRules
    birth_context: ContextWords
    weak_markers: frozenset[str]  # canonical lexicon terms that do not count alone
    personal_context: ContextWords = field(default_factory=lambda: ContextWords(()))
    general_context: ContextWords = field(default_factory=lambda: ContextWords(()))
    personal_window: int = 120


@dataclass
class Assessment:
    nirs: list[FoundNir] = field(default_factory=list)
    diagnoses: list[FoundTerm] = field(default_factory=list)
    markers: list[FoundTerm] = field(default_factory=list)
    weak_markers: list[FoundTerm] = field(default_factory=list)
    birthdates: list[Located] = field(default_factory=list)
    general: list[FoundTerm] = field(default_factory=list)  # health words about no one

    @property
    def identifier(self) -> bool:
        return bool(self.nirs or self.birthdates)

    @property
    def level(self) -> str:
        level = "none"
        if self.nirs:
            level = "high" if any(n.nir.confidence == "high" for n in self.nirs) else "medium"
        if self.diagnoses or (self.markers and self.attached_markers):
            level = "high" if self.identifier else max(level, "medium", key=LEVELS.index)
        return level

    @property
    def attached_markers(self) -> bool:
        return any(m.container not in TEXT_CONTAINERS for m in self.markers) or bool(
            self.diagnoses or self.nirs or self.birthdates)

    def distinct_matricules(self) -> list[str]:
        return sorted({n.nir.matricule for n in self.nirs})


# Text the sender typed in the mail itself, as opposed to attached documents.
TEXT_CONTAINERS = frozenset({"subject", "text", "html"})
_LINE = re.compile(r"[^\n]*")


def _fold_key(text: str) -> str:
    return text.casefold()


# What a signature's first lines say: the practitioner's profession.
_PROFESSION = re.compile(r"(?i)kin[ée]|masseur|ost[ée]opath|physioth[ée]rap|orthophon|"
                         r"p[ée]dicure|podolog|ergoth[ée]rap|psychomotric|infirmi")
_SIGNATURE_LINES = 6  # a list of specialities sits among the last lines of a text


def _speciality_lines(text: str, terms: list[TermMatch]) -> set[int]:
    """Start offsets of terms sitting in a signature's list of specialities («Camille
    Martin, masseur-kinésithérapeute» then «Rééducation périnéale - Kinésithérapie
    respiratoire - Scoliose»): among the last lines of the text, below or on a line
    naming the profession, mostly health words, with no «Diagnostic :»-like label
    and no final full stop. A list of diagnoses typed in the body («Lombalgie
    chronique, sciatique gauche.») is not one."""
    out: set[int] = set()
    lines = [m for m in _LINE.finditer(text) if m.group(0).strip()]
    tail = lines[-_SIGNATURE_LINES:]
    for i, line in enumerate(tail):
        written = line.group(0).strip()
        if ":" in written or written.endswith((".", "!", "?")):  # a label, a sentence
            continue
        inside = [t for t in terms if line.start() <= t.start < line.end()]
        if len(inside) < 2:
            continue
        words = len(re.findall(r"\w+", line.group(0)))
        covered = sum(len(re.findall(r"\w+", text[t.start:t.end])) for t in inside)
        if covered * 2 < words:
            continue
        # the profession on a short line above (a name line), or on this one
        above = [m.group(0) for m in tail[max(0, i - 3):i]
                 if len(m.group(0).split()) <= 12]
        own = _strip_terms(line.group(0), inside, line.start())
        if any(_PROFESSION.search(a) for a in above) or _PROFESSION.search(own):
            out.update(t.start for t in inside)
    return out


def _strip_terms(line: str, terms: list[TermMatch], offset: int) -> str:
    """``line`` without the text of its terms («Kinésithérapie respiratoire» names a
    speciality, not the practitioner)."""
    for t in sorted(terms, key=lambda t: t.start, reverse=True):
        a, b = t.start - offset, t.end - offset
        line = line[:a] + " " * (b - a) + line[b:]
    return line


def _signature_start(text: str) -> int:
    """Where a signature block begins (RFC 3676 «-- » line), or the text's length."""
    m = re.search(r"(?m)^-- ?$", text)
    return m.start() if m else len(text)


def assess(chunks: Sequence[TextChunk], rules: AssessRules, lexicon: Lexicon,
           *, bulk: bool = False) -> Assessment:
    """``bulk``: a mail to many recipients (a newsletter): health words in its text
    are general information unless an identifier says otherwise."""
    out = Assessment()
    weak = {_fold_key(w) for w in rules.weak_markers}
    for chunk in chunks:
        text = chunk.text
        if not text:
            continue
        folded = fold(text)  # both detectors scan the same folded bytes
        for nir in find_nirs(text, rules.nir, folded):
            out.nirs.append(FoundNir(chunk.source, chunk.container, nir))
        terms = lexicon.find(text, folded)
        typed = chunk.container in TEXT_CONTAINERS
        listed = _speciality_lines(text, terms) if typed else set()
        signature = _signature_start(text) if typed else len(text)
        for term in terms:
            found = FoundTerm(chunk.source, chunk.container, term, text[term.start:term.end])
            if typed and (term.start in listed or term.start >= signature):
                out.general.append(found)
            elif term.kind in ("diagnosis", "cim10"):
                window = text[max(0, term.start - rules.personal_window):
                              term.end + rules.personal_window]
                # about someone, unless it reads as general information with no
                # one named («nos conseils pour prévenir la tendinite»)
                personal = not typed or (not bulk and (
                    bool(rules.personal_context.find(window))
                    or not rules.general_context.find(window)))
                (out.diagnoses if personal else out.general).append(found)
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
    """The terms as the sender wrote them (one spelling each), to quote back."""
    seen: dict[str, str] = {}
    for f in found:
        written = " ".join((f.written or f.term.term).split())
        seen.setdefault(written.casefold(), written)
    return list(seen.values())
