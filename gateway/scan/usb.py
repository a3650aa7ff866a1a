"""``vigie usb watch``: notice removable media as they are mounted (the mount table),
scan each with the station, write its JSON + HTML report under the data folder and
say so in the log (French first). The report is what the web console lists.

The mount table path and the "is it removable?" test are injectable for tests.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.scan.station import (
    FileScanner,
    QuarantineFolder,
    ScanRun,
    run_scan,
    safe_text,
)
from gateway.scan.station_report import write_reports

log = logging.getLogger("vigie.usb")

MEDIA_PREFIXES = ("/media", "/run/media")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/self/mountinfo (proc(5))."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    options: str
    fstype: str
    source: str

    @property
    def device(self) -> tuple[int, int]:
        return (self.major, self.minor)


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field_: str) -> str:
    """The kernel writes space, tab, newline and backslash as \\040, \\011, \\012, \\134."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field_)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text; malformed lines are skipped."""
    out: list[Mount] = []
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
            major, minor = parts[2].split(":")
            out.append(Mount(int(parts[0]), int(parts[1]), int(major), int(minor),
                             _unescape(parts[3]), _unescape(parts[4]), parts[5],
                             parts[sep + 1], _unescape(parts[sep + 2])))
        except (ValueError, IndexError):
            continue
    return out


# --- is it removable? -------------------------------------------------------

def sysfs_removable(mount: Mount, sys_root: Path = Path("/sys")) -> bool:
    """The mount's block device is a removable disk, or sits on a USB bus (USB hard
    disks and many card readers say removable = 0)."""
    if mount.major == 0:  # virtual file systems (tmpfs, proc, overlay…)
        return False
    try:
        dev = (sys_root / "dev" / "block" / f"{mount.major}:{mount.minor}").resolve(
            strict=True)
    except OSError:
        return False
    disk = dev.parent if (dev / "partition").exists() else dev
    try:
        if (disk / "removable").read_text().strip() == "1":
            return True
    except OSError:
        pass
    return "/usb" in str(dev)


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def media_removable(*, extra_prefixes: Sequence[str] = (), sys_root: Path = Path("/sys")
                    ) -> Callable[[Mount], bool]:
    """The default test: a removable or USB block device (sysfs), or a device mounted
    under /media or /run/media (where desktop automounters and our udev unit put keys),
    or anything mounted under one of ``extra_prefixes``."""
    extra = tuple(os.path.abspath(p) for p in extra_prefixes)

    def test(mount: Mount) -> bool:
        if any(_under(mount.mount_point, p) for p in extra):
            return True
        if mount.mount_point == "/" or mount.fstype in ("proc", "sysfs", "tmpfs", "devtmpfs",
                                                        "cgroup2", "overlay", "autofs"):
            return False
        if sysfs_removable(mount, sys_root):
            return True
        return mount.source.startswith("/dev/") and any(
            _under(mount.mount_point, p) for p in MEDIA_PREFIXES)

    return test


def device_label(mount: Mount, by_label: Path = Path("/dev/disk/by-label")) -> str:
    """The file system label udev knows for the mount's device, else the mount point's
    last component (automounters name it after the label), else the device name."""
    try:
        real = os.path.realpath(mount.source)
        for link in by_label.iterdir():
            if os.path.realpath(link) == real:
                return _unescape_udev(link.name)
    except OSError:
        pass
    return os.path.basename(mount.mount_point.rstrip("/")) or os.path.basename(
        mount.source) or "support"


def _unescape_udev(name: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


def _slug(label: str) -> str:
    """A label fit for a file name: letters, digits, '.', '_', '-' (at most 40)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._-")[:40]
    return slug or "support"


# --- the watcher ------------------------------------------------------------

@dataclass
class UsbReport:
    """One medium scanned: where its reports are, and the run itself."""

    mount: Mount
    label: str
    run: ScanRun
    json_path: Path
    html_path: Path

    @property
    def exit_code(self) -> int:
        return self.run.exit_code()


Notify = Callable[[UsbReport], None]


@dataclass
class UsbWatcher:
    """Scans each removable medium once per mount (a medium unmounted and mounted again
    is scanned again). ``notify`` callbacks run after each report is written (the
    console will add one); the log line is always written."""

    scanner: FileScanner
    reports_dir: Path
    quarantine_dir: Path | None = None
    mountinfo: Path = Path("/proc/self/mountinfo")
    is_removable: Callable[[Mount], bool] = field(default_factory=media_removable)
    label_of: Callable[[Mount], str] = device_label
    jobs: int = 2
    interval: float = 2.0
    notify: list[Notify] = field(default_factory=list)
    _scanned: dict[int, tuple[int, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def read_mounts(self) -> list[Mount]:
        try:
            return parse_mountinfo(self.mountinfo.read_text(encoding="utf-8",
                                                            errors="surrogateescape"))
        except OSError as exc:
            log.error("table des montages illisible : %s (%s) / mount table unreadable",
                      self.mountinfo, exc.strerror)
            return []

    def new_media(self) -> list[Mount]:
        """Removable mounts not yet scanned; forgets mounts that went away."""
        mounts = self.read_mounts()
        present = {m.mount_id for m in mounts}
        for gone in [k for k in self._scanned if k not in present]:
            del self._scanned[gone]
        out: list[Mount] = []
        devices = set(self._scanned.values())
        for m in mounts:
            if m.mount_id in self._scanned or not self.is_removable(m):
                continue
            self._scanned[m.mount_id] = m.device
            if m.device in devices and m.major != 0:  # the same key mounted twice
                continue
            devices.add(m.device)
            out.append(m)
        return out

    def poll_once(self) -> list[UsbReport]:
        """Scan every removable medium mounted since the last call (all of them the
        first time)."""
        done: list[UsbReport] = []
        for mount in self.new_media():
            if self._stop.is_set():
                break
            report = self.scan_mount(mount)
            if report is not None:
                done.append(report)
        return done

    def scan_mount(self, mount: Mount) -> UsbReport | None:
        label = self.label_of(mount)
        shown = safe_text(label)
        started = time.time()
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{stamp}-{_slug(label)}"
        log.info("clé USB « %s » détectée sur %s : analyse en cours / USB medium %r "
                 "detected, scanning", shown, safe_text(mount.mount_point), shown)
        quarantine = None
        if self.quarantine_dir is not None:
            quarantine = QuarantineFolder(self._unique(self.quarantine_dir, base, ""))
        run = run_scan(self.scanner, [mount.mount_point], jobs=self.jobs,
                       quarantine=quarantine, stop=self._stop)
        try:
            os.makedirs(self.reports_dir, mode=0o700, exist_ok=True)
            json_path = self._unique(self.reports_dir, base, ".json")
            html_path = json_path.with_suffix(".html")
            report = run.to_json(kind="usb", mount=self.describe(mount, label))
            write_reports(report, json_path, html_path)
        except OSError as exc:
            log.error("clé USB « %s » : rapport non écrit dans %s (%s) / report not written",
                      shown, self.reports_dir, exc.strerror)
            return None
        result = UsbReport(mount, label, run, json_path, html_path)
        self._log(result)
        for callback in self.notify:
            try:
                callback(result)
            except Exception:
                log.exception("notification de la clé USB « %s » en échec / notification "
                              "failed", shown)
        return result

    @staticmethod
    def _unique(folder: Path, base: str, suffix: str) -> Path:
        """``folder/base+suffix``, or ``base-1``, ``base-2``… when taken (a report's JSON
        or HTML, or a quarantine folder)."""
        candidate, n = folder / f"{base}{suffix}", 1
        while candidate.exists() or (suffix and candidate.with_suffix(".html").exists()):
            candidate, n = folder / f"{base}-{n}{suffix}", n + 1
        return candidate

    @staticmethod
    def describe(mount: Mount, label: str) -> dict[str, Any]:
        return {"mount_point": safe_text(mount.mount_point), "device": safe_text(mount.source),
                "label": safe_text(label), "fstype": mount.fstype,
                "device_number": f"{mount.major}:{mount.minor}"}

    def _log(self, r: UsbReport) -> None:
        """The notification line: counts and the report's path, never a file name (names
        on a patient's key can carry patient data)."""
        c = r.run.counts()
        shown = safe_text(r.label)
        fields = {"event": "usb_scan", "label": shown, "mount_point":
                  safe_text(r.mount.mount_point), "report": str(r.json_path), **c}
        flagged = c["suspicious"] + c["malicious"]
        if r.run.interrupted:
            log.warning("clé USB « %s » : analyse interrompue (%d fichiers analysés) — rapport"
                        " : %s / USB medium %r: scan interrupted", shown, c["files"],
                        r.html_path, shown, extra={"vigie": fields})
        elif flagged:
            moved = (f", {c['quarantined']} mis de côté / quarantined"
                     if self.quarantine_dir is not None else "")
            log.warning("clé USB « %s » : %d fichier(s) à risque (%d dangereux, %d suspects)"
                        "%s — rapport : %s / USB medium %r: %d risky file(s) found",
                        shown, flagged, c["malicious"], c["suspicious"], moved, r.html_path,
                        shown, flagged, extra={"vigie": fields})
        elif c["not_inspected"] or c["errors"]:
            log.warning("clé USB « %s » : rien de dangereux, mais %d fichier(s) non inspecté(s)"
                        " et %d erreur(s) — rapport : %s / USB medium %r: nothing dangerous, "
                        "scan incomplete", shown, c["not_inspected"], c["errors"],
                        r.html_path, shown, extra={"vigie": fields})
        else:
            log.info("clé USB « %s » : aucun fichier dangereux (%d fichiers) — rapport : %s / "
                     "USB medium %r: clean", shown, c["files"], r.html_path, shown,
                     extra={"vigie": fields})

    def wait_for_change(self, timeout: float) -> None:
        """Until the mount table changes (POLLPRI on /proc/self/mountinfo) or
        ``timeout``; a plain file (tests) never signals, so it is re-read each time."""
        try:
            fd = os.open(self.mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._stop.wait(timeout)
            return
        try:
            os.read(fd, 1 << 16)  # the kernel signals changes after the first read
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            end = time.monotonic() + timeout
            while not self._stop.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                if poller.poll(min(left, 0.25) * 1000):
                    time.sleep(0.2)  # let the automounter finish (several mounts at once)
                    break
        finally:
            os.close(fd)

    def run(self, stop: threading.Event | None = None) -> None:
        """Watch until ``stop`` is set (SIGTERM in the service)."""
        if stop is not None:
            self._stop = stop
        log.info("surveillance des supports amovibles (%s) ; rapports dans %s / watching "
                 "removable media", self.mountinfo, self.reports_dir)
        while not self._stop.is_set():
            self.poll_once()
            self.wait_for_change(self.interval)

    def stop(self) -> None:
        self._stop.set()
