"""The USB scan reports written by ``vigie usb watch`` (``<data_dir>/usb-reports/*.json``),
read tolerantly: a missing folder is no report, a malformed file is listed as such."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REPORTS = 200
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass
class FlaggedFile:
    path: str
    verdict: str
    reasons: list[str]
    moved: bool = False
    verdict_fr: str = ""


@dataclass
class UsbReport:
    name: str
    mount: str = ""
    label: str = ""
    started: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    flagged: list[FlaggedFile] = field(default_factory=list)
    error: str = ""  # set when the file could not be read


def _first(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if d.get(key) not in (None, ""):
            return d[key]
    return None


def _time_text(value: Any, tz: datetime.tzinfo | None = None) -> str:
    """A report's time in the console's zone (Europe/Paris), like every other page:
    `vigie usb watch` writes UTC (``2026-11-29T14:00:00Z``)."""
    tz = tz or datetime.UTC
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, tz).strftime("%d/%m/%Y %H:%M")
        except (OverflowError, OSError, ValueError):
            return str(value)
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            return value.replace("T", " ")[:19]
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.astimezone(tz).strftime("%d/%m/%Y %H:%M")
    return ""


def _reason_text(finding: Any) -> str:
    if isinstance(finding, str):
        return finding
    if isinstance(finding, dict):
        reason = finding.get("reason")
        if isinstance(reason, dict):
            text = reason.get("fr") or reason.get("en")
            if text:
                return str(text)
        for key in ("reason_fr", "reason", "message", "symbol"):
            if isinstance(finding.get(key), str):
                return str(finding[key])
    return json.dumps(finding, ensure_ascii=False)[:200]


FLAGGED_VERDICTS = {"suspicious", "malicious", "error", "not_inspected"}
COUNT_LABELS = {  # the counts of `vigie scan` / `vigie usb watch` reports
    "files": ("fichiers", "files"), "bytes": ("octets", "bytes"),
    "clean": ("propres", "clean"), "suspicious": ("suspects", "suspicious"),
    "malicious": ("dangereux", "malicious"), "not_inspected": ("non inspectés", "not inspected"),
    "errors": ("erreurs", "errors"), "skipped": ("ignorés", "skipped"),
    "quarantined": ("mis de côté", "moved aside"),
}


def _files(data: dict[str, Any]) -> list[FlaggedFile]:
    out: list[FlaggedFile] = []
    for entry in data.get("flagged") or data.get("files") or []:
        if not isinstance(entry, dict):
            continue
        verdict = str(entry.get("verdict", "")).lower()
        findings = entry.get("findings") or []
        if not isinstance(findings, list):
            findings = [findings]
        if "flagged" not in data and verdict not in FLAGGED_VERDICTS and not findings:
            continue  # a clean file of the full list
        out.append(FlaggedFile(
            path=str(_first(entry, "relative", "relpath", "path", "name", "file") or "?"),
            verdict=verdict or "?",
            reasons=[_reason_text(f) for f in findings],
            moved=bool(_first(entry, "quarantine", "quarantined", "moved", "moved_to")),
            verdict_fr=str(entry.get("verdict_fr") or "")))
    return out


def _counts(data: dict[str, Any]) -> dict[str, int]:
    counts = data.get("counts") or data.get("summary") or data.get("totals") or {}
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items()
            if isinstance(v, int) and not isinstance(v, bool)}


def read_report(path: Path, tz: datetime.tzinfo | None = None) -> UsbReport:
    report = UsbReport(name=path.name)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            report.error = "trop gros / too large"
            return report
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.error = type(exc).__name__
        return report
    if not isinstance(data, dict):
        report.error = "pas un objet JSON / not a JSON object"
        return report
    # `vigie usb watch` writes {"mount": {"mount_point", "device", "label", ...}}
    found = data.get("mount") if isinstance(data.get("mount"), dict) else data.get("device")
    device: dict[str, Any] = found if isinstance(found, dict) else {}
    top = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    roots = data.get("roots")
    report.mount = str(_first(device, "mount_point", "mount")
                       or _first(top, "mount_point", "mount", "mountpoint", "root")
                       or (roots[0] if isinstance(roots, list) and roots else "") or "")
    report.label = str(_first(data, "label", "device_label")
                       or _first(device, "label", "name") or "")
    report.started = _time_text(_first(data, "started", "started_at", "time", "finished"),
                                tz)
    report.counts = _counts(data)
    report.flagged = _files(data)
    return report


def list_reports(folder: Path, limit: int = MAX_REPORTS, tz: datetime.tzinfo | None = None
                 ) -> list[UsbReport]:
    """Newest first (file names start with a timestamp; mtime otherwise)."""
    try:
        paths = [p for p in folder.iterdir() if p.suffix == ".json" and p.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError:
        return []

    def key(p: Path) -> tuple[float, str]:
        try:
            return (p.stat().st_mtime, p.name)
        except OSError:
            return (0.0, p.name)

    paths.sort(key=key, reverse=True)
    return [read_report(p, tz) for p in paths[:limit]]
