"""NIR / NIA / matricule INS in free text: every written form, structure and key checked.

Pure. Confidence: valid key + context word = high; valid key alone = medium;
13 characters without key only next to a strong context word (medium). A
valid number next to words naming another identifier (IBAN, SIRET, facture…)
and no NIR word is not reported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# One separator at a group boundary: spaces (incl. NBSP and narrow NBSP),
# dots, dashes, or a line break (with e-mail quoting "> " after it).
_SEP = r"(?:[ \t\u00a0\u202f.\-\u2010\u2011\u2013\u2014]{1,3}|[ \t]*\r?\n[> \t]*)"
# Before the key no tab: tabs separate table cells, and a number in the next
# cell is not a key.
_SEP_KEY = r"(?:[ \u00a0\u202f.\-\u2010\u2011\u2013\u2014]{1,3}|[ ]*\r?\n[> ]*)"
_KEY_SEP = (r"(?:" + _SEP_KEY + r"?\(?[ \u00a0\u202f]*(?:cl[eé]|CL[EÉ]|Cl[eé])[ \u00a0\u202f]*"
            r":?[ \u00a0\u202f]*|" + _SEP_KEY + r"?\(?)")
_NIR_RE = re.compile(
    # The look-behind comes after the first character so that the regex engine can
    # skip ahead with its fast first-character scan (about 1.5x faster).
    r"(?P<s>[1-478])(?<![0-9A-Za-z][1-478])" + _SEP + r"?"
    r"(?P<yy>\d\d)" + _SEP + r"?"
    r"(?P<mm>\d\d)" + _SEP + r"?"
    r"(?P<dep>\d\d|2[ABab])" + _SEP + r"?"
    r"(?P<com>\d{3})" + _SEP + r"?"
    r"(?P<ord>\d{3})"
    r"(?:" + _KEY_SEP + r"(?P<key>\d\d)\)?)?"
    r"(?!\d)"
)
# What follows a 13-character match when it was in fact a 15-digit number whose
# key did not check: exactly two more digits.
_AFTER_KEYLESS = re.compile(r"(?:" + _KEY_SEP + r")\d\d(?!\d)")

_VALID_MONTHS = frozenset(f"{m:02d}" for m in (*range(1, 13), *range(20, 43), *range(50, 100)))
MASK = "•"


@dataclass(frozen=True, slots=True)
class NirMatch:
    value: str        # 15 characters (13 when written without key), upper case, no separators
    start: int
    end: int
    confidence: str   # "high" | "medium"
    has_key: bool
    context: str      # the context word that was found ("" when none)

    @property
    def masked(self) -> str:
        return mask(self.value)

    @property
    def matricule(self) -> str:
        """The 15-character matricule INS (the key computed when it was not written)."""
        return self.value if self.has_key else self.value + f"{nir_key(self.value):02d}"


def nir_key(first13: str) -> int:
    digits = first13[:5] + first13[5:7].upper().replace("2A", "19").replace("2B", "18") \
        + first13[7:13]
    return 97 - int(digits) % 97


def mask(value: str) -> str:
    """'185057800608436' -> '1 85 05 •• ••• ••• 36' (place and order hidden)."""
    head = f"{value[0]} {value[1:3]} {value[3:5]} {MASK * 2} {MASK * 3} {MASK * 3}"
    return head + (f" {value[13:15]}" if len(value) >= 15 else "")


_LONG_NUMBER = re.compile(r"\d(?:[\d ._\-]?(?:\d|2[ABab])){8,}")


def mask_numbers(text: str) -> str:
    """Hide the middle of every long number in a file name or path (a NIR can be
    written there): 'Dupont_185057800608491.pdf' -> 'Dupont_18505••••••••91.pdf'."""
    def hide(m: re.Match[str]) -> str:
        s = m.group(0)
        return s[:5] + MASK * (len(s) - 7) + s[-2:]
    return _LONG_NUMBER.sub(hide, text)


def structure_ok(s: str, mm: str, dep: str, com: str, order: str, *, keyless: bool) -> bool:
    # 7/8: old provisional numbers (13 characters) and NIAs (built like a NIR, key
    # included): both accepted, with or without key, but only next to a context
    # word (find_nirs), as random numbers would otherwise pass too often.
    if mm not in _VALID_MONTHS:
        return False
    if order == "000":
        return False
    dep = dep.upper()
    if dep in ("2A", "2B"):
        return com != "000"
    d = int(dep)
    if 1 <= d <= 96:
        return com != "000"
    if d in (97, 98):
        return com[0] != "0" and not (d == 97 and com[0] == "9")
    if d == 99:
        return com != "000"
    return False


def is_valid_nir(text: str) -> bool:
    """A 15-character NIR (no separators) with a valid structure and key."""
    value = text.strip().upper()
    if not re.fullmatch(r"[1-478]\d{4}(?:\d\d|2[AB])\d{8}", value):
        return False
    if not structure_ok(value[0], value[3:5], value[5:7], value[7:10], value[10:13],
                        keyless=False):
        return False
    return nir_key(value) == int(value[13:15])


def _fold(text: str) -> str:
    """Lower case, accents and other non-ASCII marks dropped (C-speed passes only)."""
    text = text.casefold().replace("’", "'").replace("œ", "oe")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class ContextWords:
    """A set of words/phrases matched accent- and case-insensitively on word boundaries."""

    def __init__(self, words: Iterable[str]) -> None:
        folded = sorted({_fold(w) for w in words if w.strip()}, key=len, reverse=True)
        self.pattern = re.compile(
            r"(?<![0-9a-z])(?:" + "|".join(re.escape(w) for w in folded) + r")(?![0-9a-z])"
        ) if folded else None

    def find(self, text: str) -> str:
        if self.pattern is None:
            return ""
        m = self.pattern.search(_fold(text))
        return m.group(0) if m else ""


@dataclass(frozen=True)
class NirRules:
    context: ContextWords
    strong: ContextWords
    negative: ContextWords
    window_before: int = 200
    window_after: int = 60
    # Words naming another identifier count only right before the number
    # («facture n° …», «IBAN …»), not anywhere in the paragraph.
    negative_window: int = 40


def find_nirs(text: str, rules: NirRules) -> list[NirMatch]:
    """Every NIR-like number of ``text`` reported with its confidence."""
    out: list[NirMatch] = []
    for m in _NIR_RE.finditer(text):
        key = m.group("key")
        keyless = key is None
        if keyless and _AFTER_KEYLESS.match(text, m.end()):
            continue  # a 15-digit number with a key we did not accept (wrong format)
        value13 = f"{m.group('s')}{m.group('yy')}{m.group('mm')}{m.group('dep').upper()}" \
                  f"{m.group('com')}{m.group('ord')}"
        if not structure_ok(m.group("s"), m.group("mm"), m.group("dep"), m.group("com"),
                            m.group("ord"), keyless=keyless):
            continue
        if not keyless and nir_key(value13) != int(key):
            continue
        before = text[max(0, m.start() - rules.window_before):m.start()]
        after = text[m.end():m.end() + rules.window_after]
        window = before + " " + after
        if keyless:
            word = rules.strong.find(window)
            if not word:
                continue
            out.append(NirMatch(value13, m.start(), m.end(), "medium", False, word))
            continue
        word = rules.context.find(window)
        if not word and "cl" in m.group(0).lower():
            word = "clé"  # the key was introduced by «clé»: that is context enough
        if word:
            out.append(NirMatch(value13 + key, m.start(), m.end(), "high", True, word))
        elif m.group("s") in "78":
            continue  # a NIA (7/8) only next to a context word: random numbers look alike
        elif not rules.negative.find(text[max(0, m.start() - rules.negative_window):m.start()]):
            out.append(NirMatch(value13 + key, m.start(), m.end(), "medium", True, ""))
    return out
