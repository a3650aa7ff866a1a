"""The state of one scan: findings so far, and the budgets every format reader spends.

One ``Walk`` per scanned file (an attachment, a file of a USB key). Format readers
add findings and hand nested files back through ``child``; none of them may
expand more bytes, open more files or go deeper than the limits allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.scan.report import FileFinding, Verdict
from gateway.verdict import Reason

if TYPE_CHECKING:
    from gateway.scan.engine import ScanLimits

# Below this many expanded bytes a member that expands past what its header declares is
# only a broken file, not a forged one.
RATIO_FLOOR = 1024 * 1024
CHUNK = 1024 * 1024


class Stop(Exception):
    """The walk is over (a bomb, a budget spent): no more files are opened."""


class Walk:
    def __init__(self, limits: ScanLimits, direction: str, top_size: int,
                 child: Callable[[Walk, str, str, bytes, int], None]) -> None:
        self.limits = limits
        self.direction = direction
        self.top_size = max(top_size, 1)
        self.findings: list[FileFinding] = []
        self.files = 0
        self.expanded = 0
        self.deadline = time.monotonic() + limits.timeout
        self.stopped = False
        self._child = child

    # --- findings ------------------------------------------------------
    def add(self, symbol: str, verdict: Verdict, fr: str, en: str, path: str) -> None:
        finding = FileFinding(symbol, verdict, Reason(fr, en), path)
        if finding not in self.findings:
            self.findings.append(finding)

    def limit(self, path: str, fr: str, en: str) -> None:
        self.add("SCAN_LIMIT", Verdict.NOT_INSPECTED, f"inspection incomplète : {fr}",
                 f"incomplete inspection: {en}", path)

    def bomb(self, path: str, fr: str, en: str) -> None:
        self.add("SCAN_BOMB", Verdict.MALICIOUS, f"bombe de décompression : {fr}",
                 f"decompression bomb: {en}", path)
        self.stopped = True
        raise Stop

    # --- budgets -------------------------------------------------------
    def check_time(self, path: str) -> None:
        if time.monotonic() > self.deadline:
            self.limit(path, f"délai de {self.limits.timeout:g} s dépassé",
                       f"{self.limits.timeout:g} s time limit reached")
            self.stopped = True
            raise Stop

    def room(self) -> int:
        return max(self.limits.max_expanded - self.expanded, 0)

    def spent(self, path: str, amount: int, consumed: int | None) -> None:
        """``amount`` more bytes expanded for ``path``, from ``consumed`` compressed ones."""
        self.expanded += amount
        if self.expanded > self.limits.max_expanded:
            if self.expanded / self.top_size > self.limits.max_ratio:
                self.bomb(path, f"plus de {_mib(self.limits.max_expanded)} à décompresser "
                          f"pour un fichier de {_mib(self.top_size)}",
                          f"more than {_mib(self.limits.max_expanded, True)} to expand from a "
                          f"{_mib(self.top_size, True)} file")
            self.limit(path, f"plus de {_mib(self.limits.max_expanded)} à décompresser",
                       f"more than {_mib(self.limits.max_expanded, True)} to expand")
            self.stopped = True
            raise Stop

    def is_bomb(self, expanded: int, compressed: int) -> bool:
        """A ratio past the limit makes a bomb only with a size past ``max_expanded``.

        A blank page scanned uncompressed zips at 1000:1 and is harmless; what
        hurts is the size a high ratio builds, so the ratio alone never decides.
        """
        return (expanded > self.limits.max_expanded
                and expanded > self.limits.max_ratio * max(compressed, 1))

    def ratio(self, path: str, expanded: int, consumed: int) -> None:
        """Called with a member's running size before ``spent``: a member that alone
        passes the byte budget at a ratio past the limit is a bomb, not a limit."""
        if self.is_bomb(expanded, consumed):
            self.bomb(path, f"taux de compression supérieur à {self.limits.max_ratio}:1 "
                      f"et plus de {_mib(self.limits.max_expanded)} à décompresser",
                      f"compression ratio above {self.limits.max_ratio}:1 and more than "
                      f"{_mib(self.limits.max_expanded, True)} to expand")

    def child(self, path: str, name: str, data: bytes, depth: int) -> None:
        """Scan a file found inside another (an archive member, an embedded object)."""
        if self.stopped:
            raise Stop
        self.check_time(path)
        if depth > self.limits.max_depth:
            self.limit(path, f"plus de {self.limits.max_depth} niveaux d'imbrication",
                       f"more than {self.limits.max_depth} levels of nesting")
            return
        self.files += 1
        if self.files > self.limits.max_files:
            self.limit(path, f"plus de {self.limits.max_files} fichiers",
                       f"more than {self.limits.max_files} files")
            self.stopped = True
            raise Stop
        self._child(self, path, name, data, depth)


def _mib(n: int, en: bool = False) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} " + ("MiB" if en else "Mio")
    if n >= 1024:
        return f"{n / 1024:.0f} " + ("KiB" if en else "kio")
    return f"{n} " + ("bytes" if en else "o")
