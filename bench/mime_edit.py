"""Warning banner benchmark: byte surgery against re-serialising with ``email``.

For a few message shapes (a short Gmail-like mail, an Outlook-like mail with a
10 MB PDF, a 25 MB mail with several attachments), time ``add_banner`` and, in
the same process, a baseline that does what one would write with the standard
library: parse with ``email``, ``set_content`` on the text parts, ``as_bytes``.
Prints time per message, the ratio, the peak Python memory (tracemalloc) and
whether the bytes outside the edited parts stayed identical. Asserts nothing.
Run: ``python bench/mime_edit.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.mime_edit import add_banner

BANNER = ("⚠ vigie : ce message prétend venir d'un confrère mais n'a pas été envoyé "
          "depuis son adresse habituelle.\n"
          "Ne répondez pas et ne cliquez sur rien avant d'avoir vérifié par téléphone.")


def build(attachments: list[int]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Dr Martin <dr.martin@confrere-kine.fr>"
    msg["To"] = "camille@cabinet-kine.fr"
    msg["Subject"] = "Bilan"
    text = "Bonjour Camille,\n\nVoici le bilan de la séance de mardi.\n" * 20
    msg.set_content(text, charset="iso-8859-1", cte="quoted-printable")
    msg.add_alternative("<html><body><p>" + text.replace("\n", "<br>\n") + "</p></body></html>",
                        subtype="html", cte="quoted-printable")
    rng = os.urandom  # incompressible, like a scanned PDF
    for i, size in enumerate(attachments):
        msg.add_attachment(rng(size), maintype="application", subtype="pdf",
                           filename=f"piece-{i}.pdf")
    return msg.as_bytes(policy=policy.SMTP)


def baseline(raw: bytes) -> bytes:
    """The naive way: parse, rewrite the text parts, serialise the whole tree again."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    for part in msg.walk():
        if part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            assert isinstance(part, EmailMessage)
            subtype = part.get_content_subtype()
            prefix = BANNER + "\n\n" if subtype == "plain" else "<div>" + BANNER + "</div>"
            part.set_content(prefix + part.get_content(), subtype=subtype)
    return msg.as_bytes(policy=policy.SMTP)


def attachments_identical(before: bytes, after: bytes) -> bool:
    old = [p for p in BytesParser(policy=policy.default).parsebytes(before).walk()
           if p.get_filename()]
    new = [p for p in BytesParser(policy=policy.default).parsebytes(after).walk()
           if p.get_filename()]
    return len(old) == len(new) and all(
        str(a) == str(b) for a, b in zip(old, new, strict=True))


def measure(fn: Callable[[bytes], object], raw: bytes, rounds: int) -> tuple[float, float]:
    """(seconds per call, peak MB of Python allocations during one call)."""
    fn(raw)  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        fn(raw)
    elapsed = (time.perf_counter() - start) / rounds
    tracemalloc.start()
    fn(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    shapes = [("short mail", [], 200), ("outlook + 10 MB PDF", [10_000_000], 5),
              ("25 MB, 5 attachments", [5_000_000] * 5, 3)]
    print(f"{'message':24} {'size':>9} {'add_banner':>11} {'baseline':>11} {'ratio':>7} "
          f"{'peak MB':>8} {'base MB':>8}  attachments identical (ours / baseline)")
    for name, sizes, rounds in shapes:
        rounds = max(1, rounds // 5) if args.quick else rounds
        raw = build(sizes)
        ours = add_banner(raw, BANNER)
        assert ours.added, ours.problem
        t_ours, m_ours = measure(lambda r: add_banner(r, BANNER), raw, rounds)
        t_base, m_base = measure(baseline, raw, rounds)
        same_ours = attachments_identical(raw, ours.raw)
        same_base = attachments_identical(raw, baseline(raw))
        print(f"{name:24} {len(raw) / 1e6:7.2f}MB {t_ours * 1e3:9.2f}ms {t_base * 1e3:9.2f}ms "
              f"{t_base / t_ours:6.1f}x {m_ours:8.1f} {m_base:8.1f}  {same_ours} / {same_base}")


if __name__ == "__main__":
    main()
