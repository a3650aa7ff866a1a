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
    EXIT_CLEAN,
    EXIT_ERROR,
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


def udev_label(mount: Mount, udev_data: Path = Path("/run/udev/data")) -> str:
    """The file system label in udev's database entry for the mount's device number
    (``b8:17``: ``E:ID_FS_LABEL_ENC=CLE\\x20CABINET``), or "". Read by device number,
    it works where /dev is private (``PrivateDevices=yes`` in vigie-usb-watch.service
    hides /dev/disk/by-label, not /run/udev)."""
    if mount.major == 0:
        return ""
    try:
        text = (udev_data / f"b{mount.major}:{mount.minor}").read_text(
            encoding="utf-8", errors="replace")
    except OSError:
        return ""
    values = dict(line[2:].split("=", 1) for line in text.splitlines()
                  if line.startswith("E:") and "=" in line)
    if values.get("ID_FS_LABEL_ENC"):
        return _unescape_udev(values["ID_FS_LABEL_ENC"])
    return values.get("ID_FS_LABEL", "")


def device_label(mount: Mount, by_label: Path = Path("/dev/disk/by-label"),
                 udev_data: Path = Path("/run/udev/data")) -> str:
    """The file system label udev knows for the mount's device (its database, else
    /dev/disk/by-label), else the mount point's last component (automounters name it
    after the label), else the device name."""
    label = udev_label(mount, udev_data)
    if label:
        return label
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
    """One medium scanned: where its reports are (None, with ``report_error``, when
    they could not be written: the run and its findings are still here), and the run."""

    mount: Mount
    label: str
    run: ScanRun
    json_path: Path | None
    html_path: Path | None
    report_error: str = ""

    @property
    def exit_code(self) -> int:
        """The run's (130 interrupted, 1 found, 2 error, 0 clean), and 2 instead of 0
        when the report could not be written: a clean key with no report to show is
        not a success."""
        code = self.run.exit_code()
        if self.report_error and code == EXIT_CLEAN:
            return EXIT_ERROR
        return code


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
    # The last read of the mount table failed (its strerror), else "": ``--once`` then
    # exits 2; the service keeps watching.
    mount_table_error: str = ""
    # Why the watcher stops ("SIGTERM"), set by whoever sets the stop event.
    stop_reason: str = ""
    _scanned: dict[int, tuple[int, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def read_mounts(self) -> list[Mount]:
        try:
            text = self.mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            self.mount_table_error = exc.strerror or str(exc)
            log.error("table des montages illisible : %s (%s) / mount table unreadable: "
                      "%s (%s)", self.mountinfo, exc.strerror, self.mountinfo, exc.strerror)
            return []
        self.mount_table_error = ""
        return parse_mountinfo(text)

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
            done.append(self.scan_mount(mount))
        return done

    def scan_mount(self, mount: Mount) -> UsbReport:
        label = self.label_of(mount)
        shown = safe_text(label)
        started = time.time()
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{stamp}-{_slug(label)}"
        log.info("clé USB « %s » détectée sur %s : analyse en cours / USB medium \"%s\" "
                 "detected on %s, scanning", shown, safe_text(mount.mount_point), shown,
                 safe_text(mount.mount_point))
        quarantine = None
        if self.quarantine_dir is not None:
            quarantine = QuarantineFolder(self._unique(self.quarantine_dir, base, ""))
        run = run_scan(self.scanner, [mount.mount_point], jobs=self.jobs,
                       quarantine=quarantine, stop=self._stop)
        json_path: Path | None = None
        html_path: Path | None = None
        error = ""
        try:
            os.makedirs(self.reports_dir, mode=0o700, exist_ok=True)
            json_path = self._unique(self.reports_dir, base, ".json")
            html_path = json_path.with_suffix(".html")
            report = run.to_json(kind="usb", mount=self.describe(mount, label))
            write_reports(report, json_path, html_path)
        except OSError as exc:
            # The findings must not be lost with the report: the log line below still
            # gives the counts, the callbacks still get the run, the exit code says it.
            error = exc.strerror or str(exc)
            if json_path is not None and not json_path.exists():
                json_path = None
            if html_path is not None and not html_path.exists():
                html_path = None
        result = UsbReport(mount, label, run, json_path, html_path, error)
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
        """The notification line, French then English, each half whole (counts and the
        report's path): never a file name (names on a patient's key can carry patient
        data)."""
        c = r.run.counts()
        kept = len(r.run.left_in_place)
        shown = safe_text(r.label)
        shown_report = r.html_path or r.json_path
        fields: dict[str, Any] = {
            "event": "usb_scan", "label": shown,
            "mount_point": safe_text(r.mount.mount_point),
            "report": str(shown_report) if shown_report else None, **c,
            "left_in_place": kept, "exit_code": r.exit_code}
        if r.report_error:
            fields["report_error"] = r.report_error
        flagged = c["suspicious"] + c["malicious"]
        level = logging.WARNING
        if r.run.interrupted:
            fr = f"analyse interrompue ({c['files']} fichiers analysés)"
            en = f"scan interrupted ({c['files']} files scanned)"
        elif flagged:
            fr = (f"{flagged} fichier(s) à risque ({c['malicious']} dangereux, "
                  f"{c['suspicious']} suspects)")
            en = (f"{flagged} risky file(s) found ({c['malicious']} malicious, "
                  f"{c['suspicious']} suspicious)")
            if self.quarantine_dir is not None:
                fr += f", {c['quarantined']} mis de côté"
                en += f", {c['quarantined']} quarantined"
                if kept:
                    fr += f" dont {kept} resté(s) sur la clé (lecture seule ?)"
                    en += f" of which {kept} still on the medium (read-only?)"
        elif c["not_inspected"] or c["errors"]:
            fr = (f"rien de dangereux, mais {c['not_inspected']} fichier(s) non inspecté(s) "
                  f"et {c['errors']} erreur(s) ({c['files']} fichiers)")
            en = (f"nothing dangerous, but {c['not_inspected']} file(s) not inspected and "
                  f"{c['errors']} error(s) ({c['files']} files)")
        else:
            fr = f"aucun fichier dangereux ({c['files']} fichiers)"
            en = f"clean ({c['files']} files)"
            level = logging.INFO
        if r.report_error:
            level = max(level, logging.ERROR)
            where_fr = f"rapport NON écrit dans {self.reports_dir} ({r.report_error})"
            where_en = f"report NOT written in {self.reports_dir} ({r.report_error})"
        else:
            where_fr = f"rapport : {shown_report}"
            where_en = f"report: {shown_report}"
        log.log(level, "clé USB « %s » : %s — %s / USB medium \"%s\": %s — %s",
                shown, fr, where_fr, shown, en, where_en, extra={"vigie": fields})

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
                 "removable media (%s); reports in %s", self.mountinfo, self.reports_dir,
                 self.mountinfo, self.reports_dir)
        said = threading.Thread(target=self._say_stopping, name="vigie-usb-stop",
                                daemon=True)
        said.start()
        while not self._stop.is_set():
            self.poll_once()
            self.wait_for_change(self.interval)
        said.join(1.0)
        log.info("surveillance des supports amovibles arrêtée / stopped watching removable "
                 "media")

    def _say_stopping(self) -> None:
        """Log the stop request the moment it comes (a key may be half scanned: its
        scan ends within a second, or when the file being read is done)."""
        self._stop.wait()
        why = f" ({self.stop_reason})" if self.stop_reason else ""
        log.info("arrêt demandé%s : fin de l'analyse en cours puis arrêt / stop "
                 "requested%s: finishing the current scan, then stopping", why, why)

    def stop(self) -> None:
        self._stop.set()
