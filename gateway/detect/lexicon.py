"""French health-term detector: diagnoses, procedures, health documents and CIM-10 codes.

The rules file is read and compiled once (``Lexicon.load`` / ``Lexicon.default``; the
compiled prefilter is also kept in the user's cache directory); ``find`` is pure: it
does no I/O and returns offsets into the text it was given. Matching is whole-word,
accent-, case- and plural-insensitive (exact case for abbreviations), tolerant of
hyphens, apostrophes and line breaks; see the header of ``rules/lexicon_fr.toml``.

How it stays fast (C passes over the text, Python only per hit):

1. fold: one byte per character (``latin-1`` encode with ``?`` for anything else,
   then ``bytes.translate``: lower case, accents dropped, NBSP → space), so folded
   offsets *are* original offsets; decomposed (NFD) text takes a slower path with
   an offset map;
2. prefilter: one Hyperscan database of every form (between two boundary characters,
   separators capped at ``_HS_SEP_MAX`` characters; exact-case forms spelt as
   case-insensitive ones) scans the folded text once and reports where a form may
   start and end. Ordinary text usually stops here;
3. match: the trie-shaped regex of every form runs only in those spans, so the longest
   form wins and the per-entry filters apply as if it ran over the whole text;
   exact-case abbreviations (PTG, AVC…) have their own small regex over the original
   text, run in the spans of theirs;
   CIM-10 codes are read forward from each context word, within the same sentence.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import os
import platform
import re
import threading
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import hyperscan

from gateway.config import ConfigError
from gateway.detect.fold import WORD_CLASS, Folded, fold

__all__ = ["Entry", "Lexicon", "TermMatch"]

KINDS = ("diagnosis", "marker")
_NO_CONTEXT, _WINDOW, _NEXT = 0, 1, 2  # CIM-10 context: none, code in the window, code next
CONTEXT_NEAR = 300  # a weak term needs another health term this close (characters)
_MAX_EXPANSIONS = 256
# The prefilter sees at most this many separator characters between two words of a
# form (the trie itself has no cap, but only runs where the prefilter saw a form).
_HS_SEP_MAX = 16

# --- folding: see gateway.detect.fold --------------------------------------------------
_W = WORD_CLASS


# --- surface forms -> regex atoms ------------------------------------------------------
_OE = r"(?:oe|\x9c|\?)"
_AE = r"(?:ae|\xe6|\?)"
_PLURAL = "[sx]?"
_AL = "(?:ux|ls?)"
_SEP_SPACE = r"[\s>\-?]+"
_SEP_HYPHEN = r"[\s>\-?]*"
_SEP_APOS = r"[\s'?]+"
_X_SEP_SPACE = r"[\s\-\u2010\u2011]+"
_X_SEP_HYPHEN = r"[\s\-\u2010\u2011]*"
_X_SEP_APOS = r"\s*['’]\s*"
_END = f"(?![{_W}])"
_X_END = r"(?![^\W_])"
_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"
_FUNCTION_WORDS_TEXT = ("a au aux d de des du en et l la le les ou par pour sa sans se ses son sur"
                        " sous un une")
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
_TOKEN = re.compile(r"(?P<word>[A-Za-z0-9]+)|(?P<hyphen>\s*-\s*)|(?P<apos>\s*'\s*)"
                    r"|(?P<space>\s+)|(?P<punct>\s*[/.&+]\s*)")
_GROUP = re.compile(r"\(([^()]*)\)")


def _ascii_term(text: str) -> str:
    """Accents dropped and ligatures spelt out, for the matcher and the checks."""
    text = (text.replace("’", "'").replace("‘", "'").replace("œ", "oe").replace("Œ", "OE")
            .replace("æ", "ae").replace("Æ", "AE").replace("\u2010", "-").replace("\u2011", "-"))
    text = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _expand(form: str) -> list[str]:
    """``"prothèse (totale|) de hanche"`` → both forms; ``"(a)"`` means optional."""
    m = _GROUP.search(form)
    if m is None:
        if "(" in form or ")" in form:
            raise ValueError("parenthèse non fermée", "unbalanced parenthesis")
        return [" ".join(form.split())]
    alternatives = m.group(1).split("|")
    if len(alternatives) == 1:
        alternatives.append("")
    out: list[str] = []
    for alt in alternatives:
        out.extend(_expand(form[:m.start()] + alt + form[m.end():]))
        if len(out) > _MAX_EXPANSIONS:
            raise ValueError(f"plus de {_MAX_EXPANSIONS} formes après développement",
                             f"more than {_MAX_EXPANSIONS} forms once expanded")
    return out


def _inflects(word: str) -> bool:
    return not (len(word) < 2 or word.isdigit() or word in _FUNCTION_WORDS
                or word[-1] in "sxz")


def _word_atoms(word: str, *, exact: bool, inflect: bool) -> list[str]:
    if exact:
        return [re.escape(word)]
    atoms: list[str] = []
    i = 0
    while i < len(word):
        pair = word[i:i + 2]
        if pair in ("oe", "ae"):
            atoms.append(_OE if pair == "oe" else _AE)
            i += 2
        else:
            atoms.append(word[i])
            i += 1
    if inflect and _inflects(word):
        if word.endswith("al"):
            atoms[-1] = _AL
        else:
            atoms.append(_PLURAL)
    return atoms


def _atoms(form: str, *, exact: bool) -> tuple[str, ...]:
    """Regex atoms of one surface form (letters, plural marks, separators)."""
    text = _ascii_term(form)
    if not exact:
        text = text.lower()
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            break
        tokens.append((m.lastgroup or "", m.group()))
        pos = m.end()
    if pos != len(text) or not tokens:
        bad = text[pos:pos + 1] or form
        raise ValueError(f"caractère non pris en charge « {bad} »",
                         f"unsupported character {bad!r}")
    if tokens[0][0] != "word" or tokens[-1][0] != "word":
        raise ValueError("doit commencer et finir par une lettre ou un chiffre",
                         "must start and end with a letter or a digit")
    atoms: list[str] = []
    for i, (kind, value) in enumerate(tokens):
        if kind == "word":
            elided = i + 1 < len(tokens) and tokens[i + 1][0] == "apos"
            atoms.extend(_word_atoms(value, exact=exact, inflect=not elided))
        elif kind == "space":
            atoms.append(_X_SEP_SPACE if exact else _SEP_SPACE)
        elif kind == "hyphen":
            atoms.append(_X_SEP_HYPHEN if exact else _SEP_HYPHEN)
        elif kind == "apos":
            atoms.append(_X_SEP_APOS if exact else _SEP_APOS)
        else:
            atoms.append(r"\s*" + re.escape(value.strip()) + r"\s*")
    return tuple(atoms)


def _trie_regex(paths: Iterable[tuple[tuple[str, ...], int]], end: str) -> tuple[str, list[int]]:
    """One regex for many atom paths, and the leaf behind each capturing group.

    Each path ends in an empty group ``()``: group ``k`` (``m.lastindex``) is path
    ``leaves[k - 1]``. At every node the branch that ends a path comes last, so the
    longest form wins.
    """
    root: dict[str, Any] = {}
    for atoms, leaf in paths:
        node = root
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = leaf
    order: list[int] = []

    def emit(node: dict[str, Any]) -> str:
        # literal letters before optional atoms: "analyses médicales" is tried before
        # "analyse" + [sx]? gives up with a shorter match
        children = sorted(((a, c) for a, c in node.items() if a), key=lambda ac: len(ac[0]) > 1)
        alternatives = [atom + emit(child) for atom, child in children]
        if "" in node:
            order.append(node[""])
            alternatives.append("()" + end)
        if len(alternatives) == 1:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"

    return emit(root), order


# --- public types -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TermMatch:
    term: str       # the canonical entry as written in the rules file (e.g. "lombalgie", "PTG")
    category: str   # e.g. "rachis", "epaule", "marqueur", "cim10"
    kind: str       # "diagnosis" | "marker" | "cim10"
    start: int      # offsets in the ORIGINAL text given to find()
    end: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One lexicon entry as read from the rules file (``forms`` are expanded)."""

    term: str
    category: str
    kind: str
    forms: tuple[str, ...]
    exact_case: bool = False
    weak: bool = False


@dataclass(frozen=True, slots=True)
class _Leaf:
    """What one matched form means."""

    entry: int | None           # index in entries; None: a CIM-10 context word only
    cim_context: int            # _NO_CONTEXT, _WINDOW (code within the window) or _NEXT


@dataclass(frozen=True, slots=True)
class _Filter:
    next: re.Pattern[bytes] | None
    prev: re.Pattern[bytes] | None


@dataclass(slots=True)
class _Hit:
    start: int
    end: int
    entry: int | None           # None: a CIM-10 code
    code: str = ""


# An ICD-10 code: letter, two digits, optional .d / .dd or one more digit. Not part of a
# longer token, of a legal article number ("L162-1") or of a dotted number.
_CIM_CODE = re.compile(r"(?<![^\W_])[A-Z][0-9]{2}(?:\.[0-9]{1,2}|[0-9])?(?![\w\-/]|[.,][0-9])")
_CIM_LEAD = re.compile(r"[^\w\n]{0,4}")  # between an adjacent context word and its code
_SENTENCE_END = re.compile(r"[.!?…]\s+(?=[A-ZÀ-Ý][a-zà-ÿ'’])|\n[ \t]*\n")


def _phrase_regex(phrases: Sequence[str]) -> str:
    """Alternation of folded phrases; the word ``#`` stands for a number."""
    alternatives = []
    for phrase in phrases:
        words = [_NUMBER if w == "#" else "".join(_atoms(w, exact=False))
                 for w in phrase.split()]
        alternatives.append(_SEP_SPACE.join(words))
    return "(?:" + "|".join(alternatives) + ")"


def _unless_next(phrases: Sequence[str]) -> re.Pattern[bytes]:
    return re.compile(f"[^{_W}]{{0,3}}{_phrase_regex(phrases)}{_END}".encode("latin-1"))


def _unless_prev(phrases: Sequence[str]) -> re.Pattern[bytes]:
    return re.compile(
        f"(?<![{_W}]){_phrase_regex(phrases)}[^{_W}]{{0,3}}\\Z".encode("latin-1"))


# --- the prefilter ------------------------------------------------------------------------
def _hs_form(atoms: Sequence[str]) -> str:
    """A form's atoms for Hyperscan: the same, with separator runs capped."""
    parts: list[str] = []
    for atom in atoms:
        if atom in (_SEP_SPACE, _SEP_HYPHEN, _SEP_APOS):
            parts.append(atom[:-1] + f"{{{int(atom[-1] == '+')},{_HS_SEP_MAX}}}")
        elif atom.startswith(r"\s*") and atom.endswith(r"\s*"):  # "/", "&", "." or "+"
            parts.append(rf"\s{{0,{_HS_SEP_MAX}}}{atom[3:-3]}\s{{0,{_HS_SEP_MAX}}}")
        else:
            parts.append(atom)
    return "".join(parts)


def _cache_dir() -> Path:
    """Where compiled databases are kept: systemd's CacheDirectory= as it is, else
    $XDG_CACHE_HOME/vigie (an absolute path only, as the XDG spec says), else
    ~/.cache/vigie."""
    systemd = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if systemd and os.path.isabs(systemd):
        return Path(systemd)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg if os.path.isabs(xdg) else Path.home() / ".cache") / "vigie"


@functools.lru_cache(maxsize=8)
def _hs_database(expressions: tuple[bytes, ...]) -> hyperscan.Database:
    """Compiled once per set of expressions: the packaged lexicon takes about 2 s, so the
    result is kept in the cache directory too (best effort: a cache that cannot be read
    or written only costs the compile)."""
    digest = hashlib.sha256("\0".join((metadata.version("hyperscan"), platform.machine(),
                                        platform.python_version())).encode())
    for expression in expressions:
        digest.update(expression + b"\0")
    path = _cache_dir() / f"lexicon-{digest.hexdigest()[:32]}.hsdb"
    with contextlib.suppress(OSError, hyperscan.error):
        db = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
        hyperscan.Scratch(db)  # fails on a database made for another CPU
        return db
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=list(expressions), ids=list(range(len(expressions))),
               elements=len(expressions), flags=hyperscan.HS_FLAG_SOM_LEFTMOST)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp.write_bytes(hyperscan.dumpb(db))
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a cache that cannot be written leaves nothing behind
    return db


class _Prefilter:
    """One Hyperscan database over the padded folded text: each form between two
    boundary characters, reported with its leftmost start; the case-insensitive forms
    first (expression ``i`` is form ``i``), then the exact-case ones spelt as
    case-insensitive forms (a superset of what they match)."""

    def __init__(self, forms: Sequence[tuple[str, ...]],
                 exact_forms: Sequence[tuple[str, ...]]) -> None:
        bound = f"[^{_W}]"
        expressions = tuple(f"{bound}{_hs_form(atoms)}{bound}".encode("latin-1")
                            for atoms in [*forms, *exact_forms])
        self.count = len(forms)
        self.db = _hs_database(expressions) if expressions else None
        self._local = threading.local()

    def windows(self, padded: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Merged spans of ``padded`` where a case-insensitive form may lie, and where
        an exact-case one may."""
        if self.db is None:
            return [], []
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # a scratch space per thread: scans may run in parallel
            scratch = self._local.scratch = hyperscan.Scratch(self.db)
        spans: list[tuple[int, int]] = []
        exact: list[tuple[int, int]] = []
        count = self.count

        def on_match(ident: int, start: int, end: int, _flags: int, _context: object
                     ) -> bool:
            (spans if ident < count else exact).append((start, end))
            return False

        self.db.scan(padded, match_event_handler=on_match, scratch=scratch)
        return _merge(spans), _merge(exact)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans, overlapping ones joined, starts clamped at 0."""
    if not spans:
        return []
    spans.sort()
    merged: list[tuple[int, int]] = []
    start, end = spans[0]
    for s, e in spans:
        if s < end:
            if e > end:
                end = e
        else:
            merged.append((max(0, start), end))
            start, end = s, e
    merged.append((max(0, start), end))
    return merged


# --- the lexicon --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Compiled:
    main: re.Pattern[bytes]            # [boundary char] + trie of case-insensitive forms
    main_leaves: tuple[_Leaf, ...]     # by group number - 1
    exact: re.Pattern[str] | None      # trie of exact-case forms, over the original text
    exact_leaves: tuple[_Leaf, ...]
    prefilter: _Prefilter              # Hyperscan: where forms end, exact-case words
    filters: Mapping[int, _Filter]
    cim_window: int
    cim_stop: re.Pattern[bytes] | None


class Lexicon:
    """A compiled French health lexicon; build it with ``load`` or ``default``."""

    def __init__(self, entries: Sequence[Entry], compiled: _Compiled) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._c = compiled

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<Lexicon {len(self.entries)} entries>"

    # --- building ------------------------------------------------------------------
    @classmethod
    def default(cls) -> Lexicon:
        """The packaged French lexicon (``rules/lexicon_fr.toml``), compiled once."""
        return _default()

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read and compile a rules file; a bad file raises ``ConfigError``."""
        file = str(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("fichier de lexique introuvable", "lexicon file not found",
                              file=file) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"lecture impossible ({exc})", f"cannot read it ({exc})",
                              file=file) from None
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ConfigError(f"syntaxe TOML incorrecte ({exc})", f"TOML syntax error ({exc})",
                              file=file, line=int(m.group(1)) if m else None) from None
        return cls.from_data(data, file=file, source=raw)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, file: str = "lexicon_fr.toml",
                  source: str = "") -> Lexicon:
        """Compile already-parsed rules (the TOML document as a mapping)."""
        return _Builder(file, source).build(data)

    # --- matching ------------------------------------------------------------------
    def find(self, text: str, folded_text: Folded | None = None) -> list[TermMatch]:
        """Every health term and CIM-10 code in ``text``, in order of position
        (``folded_text``: ``fold(text)``, when the caller has it already)."""
        if not text:
            return []
        c = self._c
        f = folded_text if folded_text is not None else fold(text)
        folded, index = f.data, f.index
        padded = b" " + folded + b" "  # every form lies between two boundary characters
        windows, exact_windows = c.prefilter.windows(padded)
        hits: list[_Hit] = []
        contexts: list[tuple[int, int]] = []  # CIM-10 context words: (end offset, kind)
        if windows:
            self._scan(folded, padded, windows, hits, contexts)
        if index is not None:
            hits = [_Hit(*_to_original(h.start, h.end, index, text), h.entry) for h in hits]
            contexts = [(_to_original(e, e, index, text)[0], k) for e, k in contexts]
        if c.exact is not None and exact_windows:
            # padded offsets, less one: text offsets (the whole text when they differ)
            spans = [(0, len(text))] if index is not None else \
                [(max(0, start - 1), end - 1) for start, end in exact_windows]
            hits.extend(self._find_exact(text, folded, index, spans))
        if contexts:
            hits.extend(self._find_codes(text, contexts))
        return self._finish(hits) if hits else []

    def _scan(self, folded: bytes, padded: bytes, windows: Iterable[tuple[int, int]],
              hits: list[_Hit], contexts: list[tuple[int, int]]) -> None:
        c = self._c
        leaves = c.main_leaves
        for start, end in windows:
            for m in c.main.finditer(padded, start, end):
                # m is [boundary char][form] in padded offsets = [form] in folded offsets
                leaf = leaves[(m.lastindex or 1) - 1]
                f_start, f_end = m.start(), m.end() - 1
                if leaf.cim_context and (c.cim_stop is None
                                         or c.cim_stop.match(folded, f_end) is None):
                    contexts.append((f_end, leaf.cim_context))
                if leaf.entry is not None and self._passes(leaf.entry, folded, f_start, f_end):
                    hits.append(_Hit(f_start, f_end, leaf.entry))

    def _passes(self, entry: int, folded: bytes, start: int, end: int) -> bool:
        rule = self._c.filters.get(entry)
        if rule is None:
            return True
        if rule.next is not None and rule.next.match(folded, end):
            return False
        return not (rule.prev is not None
                    and rule.prev.search(folded, max(0, start - 60), start))

    def _find_exact(self, text: str, folded: bytes, index: list[int] | None,
                    spans: Iterable[tuple[int, int]]) -> Iterator[_Hit]:
        """Exact-case forms in ``spans`` of the text (each holds its forms whole)."""
        c = self._c
        assert c.exact is not None
        search = c.exact.search
        pos = 0
        for span_start, span_end in spans:
            pos = max(pos, span_start)
            while (m := search(text, pos, span_end)) is not None:
                start, end = m.start(), m.end()
                pos = start + 1
                if start and (text[start - 1].isalnum()
                              or unicodedata.combining(text[start - 1])):
                    continue
                entry = c.exact_leaves[(m.lastindex or 1) - 1].entry
                assert entry is not None
                f_start, f_end = start, end
                if index is not None:
                    f_start = bisect.bisect_left(index, start)
                    f_end = bisect.bisect_left(index, end)
                if self._passes(entry, folded, f_start, f_end):
                    pos = end
                    yield _Hit(start, end, entry)

    def _find_codes(self, text: str, contexts: list[tuple[int, int]]) -> Iterator[_Hit]:
        """CIM-10 codes right after an ``adjacent`` context word, or at most ``window``
        characters after a ``context`` word in the same sentence; a list goes on."""
        seen: set[int] = set()
        window = self._c.cim_window
        searched = -1  # codes were looked for up to here already (same sentence)
        for pos, kind in sorted(contexts):
            if kind == _NEXT:
                lead = _CIM_LEAD.match(text, pos)
                m = _CIM_CODE.match(text, lead.end() if lead else pos)
                if m is None:
                    continue
                if m.start() not in seen:
                    seen.add(m.start())
                    yield _Hit(m.start(), m.end(), None, m.group())
                pos = m.end()
            limit = pos + window
            if limit <= searched:
                continue
            pos = max(pos, searched)
            while True:
                stop = _SENTENCE_END.search(text, pos, limit)
                if stop is not None:
                    limit = stop.start()
                m = _CIM_CODE.search(text, pos, min(len(text), limit + 12))
                if m is None or m.start() > limit:
                    searched = limit
                    break
                if m.start() not in seen:
                    seen.add(m.start())
                    yield _Hit(m.start(), m.end(), None, m.group())
                pos, limit = m.end(), m.end() + window  # a list of codes goes on

    def _finish(self, hits: list[_Hit]) -> list[TermMatch]:
        entries = self.entries
        if any(h.entry is not None and entries[h.entry].weak for h in hits):
            strong = sorted(h.start for h in hits
                            if h.entry is None or not entries[h.entry].weak)
            hits = [h for h in hits
                    if h.entry is None or not entries[h.entry].weak or _near(strong, h)]
        hits.sort(key=lambda h: (h.start, -h.end))
        out: list[TermMatch] = []
        reach = -1
        for h in hits:
            if h.end <= reach:  # inside a longer match already reported
                continue
            reach = h.end
            if h.entry is None:
                out.append(TermMatch(h.code, "cim10", "cim10", h.start, h.end))
            else:
                e = entries[h.entry]
                out.append(TermMatch(e.term, e.category, e.kind, h.start, h.end))
        return out


def _near(strong: list[int], hit: _Hit) -> bool:
    i = bisect.bisect_left(strong, hit.start - CONTEXT_NEAR)
    return i < len(strong) and strong[i] <= hit.end + CONTEXT_NEAR


def _to_original(start: int, end: int, index: list[int], text: str) -> tuple[int, int]:
    o_start = index[start]
    o_end = index[end - 1] + 1 if end > start else o_start
    while o_end < len(text) and unicodedata.combining(text[o_end]):
        o_end += 1
    return o_start, o_end


def _words(form: str) -> str:
    """The folded words of a form between spaces, for whole-word ``in`` tests."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", _ascii_term(form).lower())) + " "


@functools.cache
def _default() -> Lexicon:
    from gateway.policy import rules_dir  # imported late: policy pulls in more than we need

    return Lexicon.load(rules_dir() / "lexicon_fr.toml")


# --- reading the rules file -----------------------------------------------------------
_ENTRY_KEYS = frozenset({"term", "variants", "kind", "exact_case", "unless_next",
                         "unless_prev", "context"})


class _Builder:
    def __init__(self, file: str, source: str) -> None:
        self.file = file
        self.source = source
        self.entries: list[Entry] = []
        self.leaves: list[_Leaf] = []
        self.main_paths: dict[tuple[str, ...], int] = {}
        self.exact_paths: dict[tuple[str, ...], int] = {}
        self.filters: dict[int, _Filter] = {}
        self.leaf_forms: dict[int, str] = {}
        self.exact_prefilter: list[tuple[str, ...]] = []  # exact forms, case-insensitive

    def error(self, key: str, fr: str, en: str, needle: str = "") -> ConfigError:
        line = None
        if needle and self.source:
            pos = self.source.find(needle)
            if pos >= 0:
                line = self.source.count("\n", 0, pos) + 1
        return ConfigError(fr, en, file=self.file, key=key, line=line)

    def build(self, data: Mapping[str, Any]) -> Lexicon:
        for section in data:
            if section not in ("group", "cim10"):
                raise self.error(f"[{section}]", "section inconnue (group, cim10)",
                                 "unknown section (group, cim10)", f"[{section}")
        groups = data.get("group")
        if not isinstance(groups, list) or not groups:
            raise self.error("[[group]]", "aucun groupe de termes", "no group of terms")
        for number, group in enumerate(groups, 1):
            self.read_group(number, group)
        window, stop = self.read_cim(data.get("cim10", {}))
        main, main_order = _trie_regex(self.main_paths.items(), _END)
        exact = None
        exact_order: list[int] = []
        if self.exact_paths:
            pattern, exact_order = _trie_regex(self.exact_paths.items(), _X_END)
            exact = re.compile(pattern)
        compiled = _Compiled(
            main=re.compile(f"[^{_W}]{main}".encode("latin-1")),
            main_leaves=tuple(self.leaves[i] for i in main_order),
            exact=exact, exact_leaves=tuple(self.leaves[i] for i in exact_order),
            prefilter=_Prefilter(list(self.main_paths), self.exact_prefilter),
            filters=self.filters,
            cim_window=window, cim_stop=stop)
        return Lexicon(self.entries, compiled)

    def read_group(self, number: int, group: Any) -> None:
        where = f"[[group]] n°{number}"
        if not isinstance(group, dict):
            raise self.error(where, "doit être une table", "must be a table")
        category = group.get("category")
        if not isinstance(category, str) or not re.fullmatch(r"[a-z0-9_]+", category):
            raise self.error(f"{where} category",
                             "category manquante ou invalide (minuscules ASCII, chiffres, _)",
                             "missing or invalid category (ASCII lower case, digits, _)")
        where = f'[[group]] "{category}"'
        for key in group:
            if key not in ("category", "kind", "entries"):
                raise self.error(f"{where} {key}", "clé inconnue (category, kind, entries)",
                                 "unknown key (category, kind, entries)")
        kind = group.get("kind", "diagnosis")
        if kind not in KINDS:
            raise self.error(f"{where} kind", "kind doit valoir diagnosis ou marker",
                             "kind must be diagnosis or marker")
        entries = group.get("entries")
        if not isinstance(entries, list) or not entries:
            raise self.error(f"{where} entries", "liste entries vide ou absente",
                             "entries list empty or missing")
        for item in entries:
            self.read_entry(where, category, kind, item)

    def read_entry(self, where: str, category: str, group_kind: str, item: Any) -> None:
        if isinstance(item, str):
            item = {"term": item}
        if not isinstance(item, dict):
            raise self.error(f"{where} entries",
                             f"entrée invalide {item!r} : texte ou table attendu",
                             f"invalid entry {item!r}: a string or a table expected")
        term = item.get("term")
        if not isinstance(term, str) or not term.strip():
            raise self.error(f"{where} entries", f"entrée sans « term » : {item!r}",
                             f"entry without 'term': {item!r}")
        key = f'{where} › "{term}"'
        needle = f'"{term}"'

        def bad(fr: str, en: str) -> ConfigError:
            return self.error(key, fr, en, needle)

        for name in item:
            if name not in _ENTRY_KEYS:
                raise bad(f"clé inconnue « {name} » ({', '.join(sorted(_ENTRY_KEYS))})",
                          f"unknown key '{name}' ({', '.join(sorted(_ENTRY_KEYS))})")
        kind = item.get("kind", group_kind)
        if kind not in KINDS:
            raise bad("kind doit valoir diagnosis ou marker", "kind must be diagnosis or marker")
        exact = item.get("exact_case", False)
        if not isinstance(exact, bool):
            raise bad("exact_case doit valoir true ou false", "exact_case must be true or false")
        context = item.get("context", "")
        if context not in ("", "health"):
            raise bad('context ne peut valoir que "health"', 'context can only be "health"')
        lists: dict[str, list[str]] = {}
        for name in ("variants", "unless_next", "unless_prev"):
            value = item.get(name, [])
            if not isinstance(value, list) or not all(
                    isinstance(v, str) and v.strip() for v in value):
                raise bad(f"{name} doit être une liste de textes non vides",
                          f"{name} must be a list of non-empty strings")
            lists[name] = value
        if "(" in term or ")" in term or "#" in term:
            raise bad("le terme canonique s'écrit sans ( ) ni # (utilisez variants)",
                      "the canonical term takes no ( ) or # (use variants)")
        if exact and not any(ch.isupper() for ch in term):
            raise bad("exact_case sans majuscule dans le terme",
                      "exact_case but the term has no capital letter")
        forms: list[str] = []
        for raw in [term, *lists["variants"]]:
            try:
                expanded = _expand(raw)
            except ValueError as exc:
                raise bad(f"forme « {raw} » : {exc.args[0]}",
                          f"form '{raw}': {exc.args[1]}") from None
            forms.extend(f for f in expanded if f not in forms)
        index = len(self.entries)
        for form in forms:
            self.add_form(index, form, exact, bad)
        try:
            next_re = _unless_next(lists["unless_next"]) if lists["unless_next"] else None
            prev_re = _unless_prev(lists["unless_prev"]) if lists["unless_prev"] else None
        except ValueError as exc:
            raise bad(f"unless_next/unless_prev : {exc.args[0]}",
                      f"unless_next/unless_prev: {exc.args[1]}") from None
        if next_re is not None or prev_re is not None:
            self.filters[index] = _Filter(next_re, prev_re)
        self.entries.append(Entry(term, category, kind, tuple(forms), exact, context == "health"))

    def add_form(self, index: int, form: str, exact: bool,
                 bad: Callable[[str, str], ConfigError]) -> None:
        try:
            atoms = _atoms(form, exact=exact)
        except ValueError as exc:
            raise bad(f"forme « {form} » : {exc.args[0]}",
                      f"form '{form}': {exc.args[1]}") from None
        paths = self.exact_paths if exact else self.main_paths
        other = paths.get(atoms)
        if other is not None:
            owner = self.leaves[other].entry
            if owner == index:
                return
            name = self.entries[owner].term if owner is not None else "?"
            raise bad(f"la forme « {form} » est déjà celle de l'entrée « {name} »",
                      f"form '{form}' already belongs to entry '{name}'")
        paths[atoms] = len(self.leaves)
        if exact:
            self.exact_prefilter.append(_atoms(form, exact=False))
        else:
            self.leaf_forms[len(self.leaves)] = form
        self.leaves.append(_Leaf(index, _NO_CONTEXT))

    def set_context(self, leaf: int, kind: int) -> None:
        """Make a leaf a CIM-10 context; the window kind wins over "code next"."""
        old = self.leaves[leaf]
        best = kind if old.cim_context == _NO_CONTEXT else min(kind, old.cim_context)
        self.leaves[leaf] = _Leaf(old.entry, best)

    def read_cim(self, cim: Any) -> tuple[int, re.Pattern[bytes] | None]:
        if not isinstance(cim, dict):
            raise self.error("[cim10]", "doit être une table", "must be a table")
        keys = ("context", "adjacent", "window", "not_before")
        for key in cim:
            if key not in keys:
                raise self.error(f"[cim10] {key}", f"clé inconnue ({', '.join(keys)})",
                                 f"unknown key ({', '.join(keys)})")
        window = cim.get("window", 60)
        if not isinstance(window, int) or isinstance(window, bool) or not 0 < window <= 1000:
            raise self.error("[cim10] window", "doit être un entier entre 1 et 1000",
                             "must be an integer from 1 to 1000")
        words: dict[str, list[str]] = {}
        for name in ("context", "adjacent", "not_before"):
            value = cim.get(name, [])
            if not isinstance(value, list) or not all(
                    isinstance(v, str) and v.strip() for v in value):
                raise self.error(f"[cim10] {name}", "doit être une liste de textes non vides",
                                 "must be a list of non-empty strings")
            words[name] = value
        context_words: list[tuple[str, int]] = []
        for name, kind in (("context", _WINDOW), ("adjacent", _NEXT)):
            for word in words[name]:
                try:
                    atoms = _atoms(word, exact=False)
                except ValueError as exc:
                    raise self.error(f'[cim10] {name} "{word}"', str(exc.args[0]),
                                     str(exc.args[1]), f'"{word}"') from None
                context_words.append((_words(word), kind))
                leaf = self.main_paths.get(atoms)
                if leaf is None:
                    self.main_paths[atoms] = len(self.leaves)
                    self.leaves.append(_Leaf(None, kind))
                else:
                    self.set_context(leaf, kind)
        # A form that holds a context word ("bilan diagnostic …") is a context too.
        for leaf_index, form in self.leaf_forms.items():
            form_words = _words(form)
            for context, kind in context_words:
                if context in form_words:
                    self.set_context(leaf_index, kind)
        stop = None
        if words["not_before"]:
            try:
                stop = _unless_next(words["not_before"])
            except ValueError as exc:
                raise self.error("[cim10] not_before", str(exc.args[0]),
                                 str(exc.args[1])) from None
        return window, stop
