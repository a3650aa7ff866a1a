"""YARA: the project's rules (``yara/*.yar``) plus a local folder, compiled once.

Matching runs in the caller's thread (yara-python releases the GIL) under a
timeout. A rule set that does not compile is refused with the file and the line;
the caller keeps the rules it had.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.scan.report import ScanConfigError, Verdict
from gateway.scan.walk import Walk

# yara-python, looked up at run time: for mypy, "yara" is this repository's rules folder.
yara: Any = importlib.import_module("yara")

_VERDICTS = {"malicious": Verdict.MALICIOUS, "suspicious": Verdict.SUSPICIOUS}


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: Any  # yara.Rules
    files: tuple[str, ...]


def own_rules_dir() -> Path:
    """The project's ``yara/`` folder: installed as gateway/yara_rules, or the checkout's.

    Found by path, not imported: a ``yara/__init__.py`` would shadow yara-python
    for anything run from the repository root.
    """
    import gateway
    base = Path(gateway.__file__).resolve().parent
    for folder in (base / "yara_rules", base.parent / "yara"):
        if any(folder.glob("*.yar")):
            return folder
    return base / "yara_rules"


def rule_files(local_dir: str = "") -> list[Path]:
    """The project's rule files, then the local folder's (*.yar, *.yara), sorted."""
    files = sorted(own_rules_dir().glob("*.yar"))
    if local_dir:
        folder = Path(local_dir).expanduser()
        files += sorted(p for p in folder.iterdir()
                        if p.suffix in (".yar", ".yara") and p.is_file())
    return files


_ERROR = re.compile(r"^(?P<file>.*?)\((?P<line>\d+)\): (?P<msg>.*)$")


def compile_rules(local_dir: str = "") -> RuleSet:
    """Compile every rule file; a mistake is a ScanConfigError with its file and line."""
    files = rule_files(local_dir)
    sources: dict[str, str] = {}
    for i, path in enumerate(files):
        sources[f"r{i}_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}"] = str(path)
    try:
        rules = yara.compile(filepaths=sources)
    except yara.SyntaxError as exc:
        m = _ERROR.match(str(exc))
        if m:
            raise ScanConfigError(f"règle YARA invalide : {m['msg']}",
                                  f"invalid YARA rule: {m['msg']}", file=m["file"],
                                  line=int(m["line"])) from None
        raise ScanConfigError(f"règle YARA invalide : {exc}", f"invalid YARA rule: {exc}"
                              ) from None
    except yara.Error as exc:
        raise ScanConfigError(f"règles YARA illisibles : {exc}", f"unreadable YARA rules: {exc}"
                              ) from None
    for path in files:
        check_meta(path)
    return RuleSet(rules, tuple(str(f) for f in files))


_VERDICT_META = re.compile(r"^\s*verdict\s*=\s*(.*?)\s*(?://.*)?$")


def check_meta(path: Path) -> None:
    """A rule's ``verdict`` must be "malicious" or "suspicious": a typo such as
    "dangerous" is refused with its file and line, never guessed at."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # yara just read it; gone since: the next reload says so
    # comments out, their line breaks kept so that line numbers stay right
    text = re.sub(r"/\*.*?\*/", lambda c: "\n" * c.group(0).count("\n"), text, flags=re.DOTALL)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("//"):
            continue
        m = _VERDICT_META.match(line)
        if m is None:
            continue
        value = m.group(1).strip('"').lower()
        if value not in _VERDICTS:
            raise ScanConfigError(
                f"verdict inconnu {m.group(1)} : attendu \"malicious\" ou \"suspicious\"",
                f"unknown verdict {m.group(1)}: expected \"malicious\" or \"suspicious\"",
                file=str(path), line=number)


def match(walk: Walk, ruleset: RuleSet, path: str, data: bytes) -> None:
    """Add a SCAN_YARA finding per matching rule (its meta says the verdict and why)."""
    try:
        matches = ruleset.rules.match(data=data, timeout=max(1, round(walk.limits.yara_timeout)))
    except yara.TimeoutError:
        walk.limit(path, "délai de l'analyse YARA dépassé", "YARA scan timed out")
        return
    except yara.Error:
        walk.limit(path, "analyse YARA impossible", "YARA scan failed")
        return
    for m in matches:
        meta = m.meta
        verdict = _VERDICTS.get(str(meta.get("verdict", "malicious")).lower(), Verdict.MALICIOUS)
        fr = str(meta.get("fr") or meta.get("description") or m.rule)
        en = str(meta.get("en") or meta.get("description") or m.rule)
        walk.add("SCAN_YARA", verdict, f"{fr} (règle {m.rule})", f"{en} (rule {m.rule})", path)
