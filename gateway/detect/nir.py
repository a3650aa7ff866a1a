"""NIR / NIA / matricule INS in free text: every written form, structure and key checked.

Pure. Confidence: valid key + context word = high; valid key alone = medium;
13 characters without key only next to a strong context word (medium). A
valid number next to words naming another identifier (IBAN, SIRET, facture…)
and no NIR word is not reported.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import hyperscan

from gateway.detect.fold import WORD_CLASS, Folded, fold

# The prefilter (Hyperscan) reads the folded bytes of gateway.detect.fold: characters
# beyond latin-1 are "?" there, NBSP a space, «É» an «e»; its classes below are a
# superset of what the regex's match in each of those spellings.
_SPACES = (" \u00a0\u202f", r" \xa0?")
_DASHES = (r".\-\u2010\u2011\u2013\u2014", r".\-?")
_CLE = ("cl[eé]|CL[EÉ]|Cl[eé]", r"cl[e\xe9]|CL[E\xc9]|Cl[e\xe9]")
_BREAK_RUN = 8  # spaces or quoting marks around a line break inside a number


def _separators(variant: int, *, breaks: bool = True) -> tuple[str, str]:
    """A separator at a group boundary, and the one that introduces the key.

    1-3 spaces (incl. NBSP and narrow NBSP), dots or dashes, or a line break (with
    e-mail quoting "> " after it). Before the key no tab: tabs separate table cells,
    and a number in the next cell is not a key; the key may be written «(clé 36)» or
    «clé : 36». ``variant`` 0 is for ``re``, 1 for Hyperscan (folded bytes).
    """
    sp, da, cle = _SPACES[variant], _DASHES[variant], _CLE[variant]
    n = _BREAK_RUN
    sep = rf"[ \t{sp[1:]}{da}]{{1,3}}"
    sep_key = rf"[{sp}{da}]{{1,3}}"
    if breaks:
        sep += rf"|[ \t]{{0,{n}}}\r?\n[> \t]{{0,{n}}}"
        sep_key += rf"|[ ]{{0,{n}}}\r?\n[> ]{{0,{n}}}"
    sep, sep_key = f"(?:{sep})", f"(?:{sep_key})"
    key_sep = (rf"(?:{sep_key}?\(?[{sp}]{{0,3}}(?:{cle})[{sp}]{{0,3}}:?[{sp}]{{0,3}}"
               rf"|{sep_key}?\(?)")
    return sep, key_sep


def _nir_pattern(variant: int, *, breaks: bool = True) -> str:
    """The NIR regex (``variant`` 0) or its prefilter for Hyperscan (1: the same without
    look-arounds or group names, over folded bytes)."""
    sep, key_sep = _separators(variant, breaks=breaks)
    if variant == 0:
        # The look-behind comes after the first character so that the regex engine can
        # skip ahead with its fast first-character scan (about 1.5x faster).
        head, end = r"(?P<s>[1-478])(?<![0-9A-Za-z][1-478])", r"(?!\d)"
        yy, mm, dep, com, order, key = (f"(?P<{name}>" for name in
                                        ("yy", "mm", "dep", "com", "ord", "key"))
    else:
        head, end = "[1-478]", ""
        yy = mm = dep = com = order = key = "(?:"
    return (rf"{head}{sep}?{yy}\d\d){sep}?{mm}\d\d){sep}?{dep}\d\d|2[ABab]){sep}?"
            rf"{com}\d{{3}}){sep}?{order}\d{{3}})(?:{key_sep}{key}\d\d)\)?)?{end}")


_NIR_RE = re.compile(_nir_pattern(0))
# What follows a 13-character match when it was in fact a 15-digit number whose
# key did not check: exactly two more digits.
_AFTER_KEYLESS = re.compile(rf"{_separators(0)[1]}\d\d(?!\d)")
# The widest match: the first digit, five separators (a line break between two runs
# of spaces), twelve digits, the key's introduction («… ( clé : »), the key and ")".
_MAX_WIDTH = 1 + 5 * (2 * _BREAK_RUN + 2) + 12 + (2 * _BREAK_RUN + 2 + 1 + 3 + 3 + 3 + 1 + 3) \
    + 2 + 1

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


def _slow_fold(text: str) -> str:
    """Lower case, accents and other non-ASCII marks dropped (C-speed passes only)."""
    text = text.casefold().replace("’", "'").replace("œ", "oe")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _latin1_tables() -> tuple[bytes, bytes, frozenset[str]]:
    """``_slow_fold`` as one ``bytes.translate`` for the latin-1 characters that fold to
    at most one character; the others (ß, æ, ¼…) are left to ``_slow_fold``."""
    table = bytearray(range(256))
    delete = bytearray()
    multi: set[str] = set()
    for code in range(256):
        folded = _slow_fold(chr(code))
        if len(folded) == 1:
            table[code] = ord(folded)
        elif not folded:
            delete.append(code)
        else:
            multi.add(chr(code))
    return bytes(table), bytes(delete), frozenset(multi)


_TABLE, _DELETE, _MULTI = _latin1_tables()
_MULTI_RE = re.compile("[" + re.escape("".join(sorted(_MULTI))) + "]")


def _fold(text: str) -> str:
    """Lower case, accents and other non-ASCII marks dropped (C-speed passes only)."""
    if text.isascii():
        return text.lower()
    try:  # the typographic apostrophe is the one common character beyond latin-1
        data = text.replace("’", "'").encode("latin-1")
    except UnicodeEncodeError:
        return _slow_fold(text)
    if _MULTI_RE.search(text):
        return _slow_fold(text)
    return data.translate(_TABLE, _DELETE).decode("ascii")


def _trie(words: Iterable[str], atom: Callable[[str], str] = re.escape,
          end: str = r"(?![0-9a-z])", leaves: list[str] | None = None) -> str:
    """One regex for ``words``, each ending on a word boundary (``end``), the longest
    first at each node. ``atom`` spells one character; with ``leaves``, each word ends
    in an empty group: group ``k`` is word ``leaves[k - 1]``."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = word

    def emit(node: dict[str, Any]) -> str:
        branches = [atom(ch) + emit(child) for ch, child in node.items() if ch]
        if "" in node:
            if leaves is not None:
                leaves.append(node[""])
                branches.append("()" + end)
            else:
                branches.append(end)
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(root)


def _folded_atom(ch: str) -> str:
    """One character of a context word in the folded bytes (gateway.detect.fold): an
    apostrophe or a space may also be a "?" (’, narrow NBSP)."""
    return f"[{re.escape(ch)}?]" if ch in " '" else re.escape(ch)


class ContextWords:
    """A set of words/phrases matched accent- and case-insensitively on word boundaries:
    in a string (``find``), or in the folded bytes of a whole text (``search``, with
    the words folded by ``gateway.detect.fold`` too)."""

    def __init__(self, words: Iterable[str]) -> None:
        words = [w for w in words if w.strip()]
        folded = [w for w in sorted({_fold(w) for w in words}, key=len, reverse=True) if w]
        # A trie of the words (re tries the alternatives of a group one by one), longest
        # first at each node; the look-ahead on first characters lets re skip ahead.
        first = "".join(sorted({re.escape(w[0]) for w in folded}))
        self.pattern = re.compile(
            f"(?=[{first}])(?<![0-9a-z]){_trie(folded)}") if folded else None
        # The same words in folded bytes; a match names its word as ``find`` does.
        names = {fold(w).data.decode("latin-1"): _fold(w) for w in words}
        spelt = sorted((k for k, v in names.items() if k and v), key=len, reverse=True)
        leaves: list[str] = []
        body = _trie(spelt, _folded_atom, f"(?![{WORD_CLASS}])", leaves)
        self._names = [names[w] for w in leaves]
        first_bytes = "".join(sorted({_folded_atom(w[0])[1:-1] if w[0] in " '"
                                      else re.escape(w[0]) for w in spelt}))
        self.folded_pattern = re.compile(
            f"(?=[{first_bytes}])(?<![{WORD_CLASS}]){body}".encode("latin-1")
        ) if spelt else None

    def find(self, text: str) -> str:
        if self.pattern is None:
            return ""
        m = self.pattern.search(_fold(text))
        return m.group(0) if m else ""

    def search(self, folded: bytes, low: int, high: int) -> str:
        """The first word in ``folded[low:high]``, the bytes around it in view."""
        if self.folded_pattern is None:
            return ""
        m = self.folded_pattern.search(folded, max(0, low), high)
        return self._names[(m.lastindex or 1) - 1] if m else ""


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


class _Prefilter:
    """Where ``_NIR_RE`` may match, found by Hyperscan in one pass.

    Expression 0 is the regex without line breaks, reported with its leftmost start;
    expression 1 is a line break after a digit (or the A/B of a Corsican department)
    and before a digit or a key («(», «clé»), around which a number written over two
    lines may lie (``_MAX_WIDTH`` either side).
    """

    def __init__(self) -> None:
        # The look-arounds of the regex become characters to consume, so that a run
        # of digits is reported once, not at each of its digits.
        # Over folded bytes, where an accented letter before a number reads as a
        # letter: only a digit before it rules a start out.
        number = f"(?:^|[^0-9]){_nir_pattern(1, breaks=False)}(?:[^0-9]|$)"
        expressions = [number.encode("ascii"),
                       (rf"[0-9abAB][ \t]{{0,{_BREAK_RUN}}}\r?\n[> \t]{{0,{_BREAK_RUN}}}"
                        rf"\(?[ \xa0?]{{0,3}}[\dcC]").encode("ascii")]
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(expressions=expressions, ids=[0, 1], elements=2,
                        flags=[hyperscan.HS_FLAG_SOM_LEFTMOST] * 2)
        self._local = threading.local()

    def windows(self, data: bytes) -> list[tuple[int, int]]:
        """Merged spans of the text whose folded bytes (gateway.detect.fold, one per
        character) are ``data``, that hold every match of ``_NIR_RE``, each ending
        where no digit follows (so that ``(?!\\d)`` reads the real next character)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # a scratch space per thread: scans may run in parallel
            scratch = self._local.scratch = hyperscan.Scratch(self.db)
        size = len(data)
        out: list[tuple[int, int]] = []

        def on_match(ident: int, start: int, end: int, _flags: int, _context: object
                     ) -> bool:
            # Mostly reported in order of end; a number over two lines reaches back.
            if ident:
                start, end = max(0, start - _MAX_WIDTH), min(size, end + _MAX_WIDTH)
            # Never end just before a digit: the regex may take the character the
            # prefilter consumed as its boundary (a key's «)»), and its (?!\d) must
            # then read the digit that follows.
            while end < size and 48 <= data[end] <= 57:
                end += 1
            while out and start <= out[-1][1]:
                last_start, last_end = out.pop()
                start, end = min(start, last_start), max(end, last_end)
            out.append((start, end))
            return False

        self.db.scan(data, match_event_handler=on_match, scratch=scratch)
        if any(a[1] >= b[0] for a, b in itertools.pairwise(out)):  # order not guaranteed
            out.sort()
            merged = out[:1]
            for start, end in out[1:]:
                if start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
                else:
                    merged.append((start, end))
            out = merged
        return out


_PREFILTER = _Prefilter()


def _matches(text: str, folded: Folded | None = None) -> Iterator[re.Match[str]]:
    """The matches of ``_NIR_RE.finditer(text)``, looked for only where they can be:
    a match is one the prefilter reports (or holds a line break it reports), its
    window holds it whole, and the look-behind reads before the window. Decomposed
    text (an offset map) is scanned whole."""
    f = folded if folded is not None else fold(text)
    finditer = _NIR_RE.finditer
    if f.index is not None:
        yield from finditer(text)
        return
    for start, end in _PREFILTER.windows(f.data):
        yield from finditer(text, start, end)


def find_nirs(text: str, rules: NirRules, folded_text: Folded | None = None
              ) -> list[NirMatch]:
    """Every NIR-like number of ``text`` reported with its confidence
    (``folded_text``: ``fold(text)``, when the caller has it already)."""
    out: list[NirMatch] = []
    f = folded_text if folded_text is not None else fold(text)
    data = f.data
    context, strong, negative = rules.context, rules.strong, rules.negative
    before, after, negative_window = (rules.window_before, rules.window_after,
                                      rules.negative_window)
    word: Callable[[ContextWords, int, int], str]
    if f.index is None:
        finditer = _NIR_RE.finditer
        matches: Iterable[re.Match[str]] = itertools.chain.from_iterable(
            finditer(text, start, end) for start, end in _PREFILTER.windows(data))

        def word(words: ContextWords, low: int, high: int) -> str:
            return words.search(data, low, high)
    else:  # decomposed text: offsets differ, read the words in the text itself
        matches = _NIR_RE.finditer(text)

        def word(words: ContextWords, low: int, high: int) -> str:
            return words.find(text[max(0, low):high])
    for m in matches:
        s, yy, mm, dep, com, order, key = m.groups()
        keyless = key is None
        if keyless and _AFTER_KEYLESS.match(text, m.end()):
            continue  # a 15-digit number with a key we did not accept (wrong format)
        if not structure_ok(s, mm, dep, com, order, keyless=keyless):
            continue
        value13 = f"{s}{yy}{mm}{dep.upper()}{com}{order}"
        if not keyless and nir_key(value13) != int(key):
            continue
        start, end = m.span()
        low, high = max(0, start - before), end + after
        if keyless:
            found = word(strong, low, start) or word(strong, end, high)
            if found:
                out.append(NirMatch(value13, start, end, "medium", False, found))
            continue
        found = word(context, low, start) or word(context, end, high)
        if not found and "cl" in m.group(0).lower():
            found = "clé"  # the key was introduced by «clé»: that is context enough
        if found:
            out.append(NirMatch(value13 + key, start, end, "high", True, found))
        elif s in "78":
            continue  # a NIA (7/8) only next to a context word: random numbers look alike
        elif not word(negative, start - negative_window, start):
            out.append(NirMatch(value13 + key, start, end, "medium", True, ""))
    return out
