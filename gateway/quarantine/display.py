"""Text from a mail made safe to show: Unicode direction controls made visible.

A file name like ``ordonnance.pdf\\u202egpj.exe`` displays as «ordonnance.pdfexe.jpg»
and reverses the rest of the line around it. Wherever a file name, subject, sender
or reason is shown (console, one-click pages, digest, CLI), these controls are
replaced by a visible marker such as ``«U+202E»``, so what is shown is what is there.
"""

from __future__ import annotations

import re

# LRM, RLM, ALM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")


def visible(text: str) -> str:
    """``text`` with every direction control shown as «U+XXXX»."""
    if not _BIDI.search(text):
        return text
    return _BIDI.sub(lambda m: f"«U+{ord(m.group()):04X}»", text)
