"""The folded text both detectors scan: one byte per character, so that folded offsets
are original offsets (lower case, latin-1 accents dropped, NBSP as a space).

Characters beyond latin-1 become "?" (an œ, an ’, a narrow NBSP, a non-breaking
hyphen…): patterns accept "?" where one of those can stand. Decomposed text (NFD,
macOS mail, some PDFs) loses its combining marks and keeps a map back to the
original offsets.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Word bytes of the folded text: a-z, 0-9, \x9c (œ), \xe6 (æ); anything else is a
# boundary. As a regex character class body, and as a set.
WORD_CLASS = r"a-z0-9\x9c\xe6"
WORD_BYTES = frozenset([*range(ord("a"), ord("z") + 1), *range(ord("0"), ord("9") + 1),
                        0x9C, 0xE6])


def _fold_table() -> bytes:
    table = bytearray(range(256))
    for c in range(ord("A"), ord("Z") + 1):
        table[c] = c + 32
    groups = {
        "a": "ÀÁÂÃÄÅàáâãäåª", "c": "Çç", "d": "Ðð", "e": "ÈÉÊËèéêë", "i": "ÌÍÎÏìíîï",
        "n": "Ññ", "o": "ÒÓÔÕÖØòóôõöøº", "u": "ÙÚÛÜùúûüµ", "y": "Ýýÿ", "t": "Þþ", "s": "ß",
    }
    for base, chars in groups.items():
        for ch in chars:
            table[ord(ch)] = ord(base)
    table[0xC6] = 0xE6  # Æ -> æ
    table[0x8C] = 0x9C  # Œ / œ as cp1252 bytes read as latin-1
    for ch in "\x92\xb4`":  # ’ read as latin-1, acute accent and backtick used as apostrophes
        table[ord(ch)] = ord("'")
    table[0xA0] = ord(" ")  # NBSP
    return bytes(table)


TABLE = _fold_table()


@dataclass(frozen=True, slots=True)
class Folded:
    """``data[i]`` is character ``i`` of the text folded, unless ``index`` is set:
    then it is character ``index[i]`` (``index[-1]`` is the text's length)."""

    data: bytes
    index: list[int] | None = None


def fold(text: str) -> Folded:
    """The folded bytes of ``text`` (see the module's docstring)."""
    if text.isascii():
        return Folded(text.encode("ascii").translate(TABLE))
    if unicodedata.is_normalized("NFC", text):
        return Folded(text.encode("latin-1", "replace").translate(TABLE))
    # Decomposed accents: drop combining marks, keep a map.
    keep: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.combining(ch):
            continue
        keep.append(ch)
        index.append(i)
    index.append(len(text))
    return Folded("".join(keep).encode("latin-1", "replace").translate(TABLE), index)
