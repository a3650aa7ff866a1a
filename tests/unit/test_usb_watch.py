"""``vigie usb watch``: the mount table parser, the removable test, and the watcher over a
mountinfo file that gains a line pointing at a real folder, scanned by the real engine."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.scan.engine import Scanner
from gateway.scan.usb import (
    Mount,
    UsbReport,
    UsbWatcher,
    device_label,
    media_removable,
    parse_mountinfo,
    sysfs_removable,
)

BASE = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "24 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=4010060k\n"
    "25 22 0:24 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=805000k\n"
)


def mount_line(mount_id: int, point: Path | str, dev: str = "8:17",
               source: str = "/dev/sdb1", fstype: str = "vfat") -> str:
    escaped = str(point).replace("\\", "\\134").replace(" ", "\\040")
    return (f"{mount_id} 22 {dev} / {escaped} rw,nosuid,nodev,relatime shared:300 - "
            f"{fstype} {source} rw,fmask=0022\n")


def test_parse_mountinfo_fields_and_escapes() -> None:
    text = BASE + mount_line(300, "/media/vigie/CLE USB") + "garbage line\n"
    mounts = parse_mountinfo(text)
    assert [m.mount_point for m in mounts] == ["/", "/proc", "/dev", "/run",
                                               "/media/vigie/CLE USB"]
    key = mounts[-1]
    assert key == Mount(300, 22, 8, 17, "/", "/media/vigie/CLE USB",
                        "rw,nosuid,nodev,relatime", "vfat", "/dev/sdb1")
    # optional fields may be absent or several
    (m,) = parse_mountinfo("40 22 8:33 / /mnt rw - ext4 /dev/sdc1 rw\n")
    assert (m.fstype, m.source) == ("ext4", "/dev/sdc1")
    (m,) = parse_mountinfo("40 22 8:33 / /mnt rw shared:1 master:2 - ext4 /dev/sdc1 rw\n")
    assert m.fstype == "ext4"


def test_sysfs_removable_reads_the_disk_of_a_partition(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    usb = sys_root / "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host2/block/sdb"
    sata = sys_root / "devices/pci0000:00/0000:00:17.0/ata1/host0/block/sda"
    hdd = sys_root / "devices/pci0000:00/0000:00:17.0/ata2/host1/block/sdc"
    for disk, removable in ((usb, "0"), (sata, "0"), (hdd, "1")):
        (disk / f"{disk.name}1").mkdir(parents=True)
        (disk / f"{disk.name}1" / "partition").write_text("1\n")
        (disk / "removable").write_text(removable + "\n")
    links = sys_root / "dev" / "block"
    links.mkdir(parents=True)
    (links / "8:17").symlink_to(usb / "sdb1")
    (links / "8:1").symlink_to(sata / "sda1")
    (links / "8:33").symlink_to(hdd / "sdc1")

    def m(dev: str) -> Mount:
        major, minor = dev.split(":")
        return Mount(1, 0, int(major), int(minor), "/", "/mnt/x", "rw", "vfat", "/dev/x")

    assert sysfs_removable(m("8:17"), sys_root)  # on a USB bus (says removable 0)
    assert not sysfs_removable(m("8:1"), sys_root)  # the internal disk
    assert sysfs_removable(m("8:33"), sys_root)  # removable = 1
    assert not sysfs_removable(m("8:99"), sys_root)  # unknown device
    assert not sysfs_removable(m("0:45"), sys_root)  # tmpfs and friends


def test_media_removable_fallbacks(tmp_path: Path) -> None:
    test = media_removable(extra_prefixes=[str(tmp_path / "keys")], sys_root=tmp_path)
    mounts = parse_mountinfo(
        BASE
        + mount_line(30, "/media/camille/CLE", dev="8:17")
        + mount_line(31, "/run/media/camille/CLE2", dev="8:33")
        + mount_line(32, "/media/tmp", dev="0:50", source="tmpfs", fstype="tmpfs")
        + mount_line(33, tmp_path / "keys" / "k1", dev="0:51", source="none")
        + mount_line(34, "/srv/data", dev="8:49", source="/dev/sdd1"))
    assert [m.mount_id for m in mounts if test(m)] == [30, 31, 33]


def test_device_label_from_udev_links_or_mount_point(tmp_path: Path) -> None:
    by_label = tmp_path / "by-label"
    by_label.mkdir()
    dev = tmp_path / "sdb1"
    dev.write_text("")
    (by_label / "CLE\\x20CABINET").symlink_to(dev)
    m = Mount(1, 0, 8, 17, "/", "/media/x/KEY", "rw", "vfat", str(dev))
    assert device_label(m, by_label) == "CLE CABINET"
    other = Mount(1, 0, 8, 17, "/", "/media/x/KEY", "rw", "vfat", "/dev/nothere")
    assert device_label(other, by_label) == "KEY"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    """A "USB key": a real folder with ordinary files and one file that the engine
    flags by its name alone (a right-to-left override hiding «.exe»)."""
    root = tmp_path / "media" / "CLE"
    (root / "Ordonnances").mkdir(parents=True)
    (root / "Ordonnances" / "ordonnance.txt").write_text("Ordonnance : 10 séances\n")
    (root / "photo.txt").write_text("rien\n")
    (root / "facture\u202efdp.exe").write_bytes(b"MZ\x90\x00" + b"\0" * 60)
    return root


def make_watcher(tmp_path: Path, mountinfo: Path, **kw: object) -> UsbWatcher:
    return UsbWatcher(Scanner.from_config(Config()), reports_dir=tmp_path / "data" /
                      "usb-reports", quarantine_dir=tmp_path / "data" / "usb-quarantine",
                      mountinfo=mountinfo, label_of=lambda m: Path(m.mount_point).name,
                      is_removable=media_removable(extra_prefixes=[str(tmp_path / "media")]),
                      interval=0.05, jobs=2, **kw)  # type: ignore[arg-type]


def test_watcher_scans_a_mount_that_appears(tmp_path: Path, key: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(BASE)
    got: list[UsbReport] = []
    watcher = make_watcher(tmp_path, mountinfo, notify=[got.append])
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    caplog.set_level(logging.INFO, logger="vigie.usb")
    thread.start()
    try:
        time.sleep(0.2)
        assert got == []  # nothing removable yet
        with mountinfo.open("a") as fh:
            fh.write(mount_line(300, key))
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the same mount is not scanned twice
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    (r,) = got
    assert r.json_path is not None and r.html_path is not None and not r.report_error
    assert r.json_path.parent == tmp_path / "data" / "usb-reports"
    assert r.json_path.name.endswith("-CLE.json") and r.html_path.exists()
    report = json.loads(r.json_path.read_text())
    assert report["format"] == "vigie-scan-report" and report["kind"] == "usb"
    assert report["mount"] == {"mount_point": str(key), "device": "/dev/sdb1",
                               "label": "CLE", "fstype": "vfat", "device_number": "8:17"}
    assert report["counts"]["files"] == 3 and report["counts"]["malicious"] == 1
    assert report["counts"]["quarantined"] == 1 and report["started"] <= report["finished"]
    (flagged,) = [f for f in report["files"] if f["verdict"] != "CLEAN"]
    assert flagged["findings"][0]["symbol"] == "SCAN_RTLO"
    assert flagged["path"].endswith("facture\\u202efdp.exe")
    assert not (key / "facture\u202efdp.exe").exists()  # moved aside, with its record
    manifest = json.loads((Path(report["quarantine_dir"]) / "manifest.json").read_text())
    assert len(manifest["entries"]) == 1
    html = r.html_path.read_text()
    assert "clé « CLE »" in html and "1 fichier(s) à risque" in html
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "vigie.usb"]
    assert any("clé USB « CLE » : 1 fichier(s) à risque (1 dangereux, 0 suspects)" in line
               for line in lines)
    assert not any("facture" in line or "ordonnance" in line for line in lines)  # no names


def test_watcher_forgets_unmounted_media_and_scans_them_again(tmp_path: Path,
                                                              key: Path) -> None:
    (key / "facture\u202efdp.exe").unlink()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(BASE + mount_line(300, key))
    watcher = make_watcher(tmp_path, mountinfo)
    (first,) = watcher.poll_once()
    assert first.exit_code == 0 and first.run.counts()["files"] == 2
    assert watcher.poll_once() == []  # still mounted: not scanned again
    mountinfo.write_text(BASE)
    assert watcher.poll_once() == []
    mountinfo.write_text(BASE + mount_line(301, key) + mount_line(302, key))  # bind too
    (again,) = watcher.poll_once()
    assert again.json_path != first.json_path
    assert len(list((tmp_path / "data" / "usb-reports").glob("*.json"))) == 2


def test_watcher_survives_an_unreadable_mount_table(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    watcher = make_watcher(tmp_path, tmp_path / "absent")
    assert watcher.poll_once() == []
    assert any("table des montages illisible" in r.getMessage() for r in caplog.records)
    assert watcher.mount_table_error  # `--once` exits 2 on it
    (tmp_path / "absent").write_text(BASE)
    assert watcher.poll_once() == [] and watcher.mount_table_error == ""


def test_device_label_from_the_udev_database_when_dev_is_private(tmp_path: Path) -> None:
    """Under PrivateDevices=yes /dev/disk/by-label is empty: the label comes from udev's
    database (/run/udev/data/b<major>:<minor>), by device number."""
    udev = tmp_path / "udev-data"
    udev.mkdir()
    (udev / "b8:17").write_text("S:disk/by-label/CLE\\x20CABINET\nE:ID_FS_TYPE=vfat\n"
                                "E:ID_FS_LABEL=CLE_CABINET\nE:ID_FS_LABEL_ENC=CLE\\x20CABINET\n")
    (udev / "b8:33").write_text("E:ID_FS_LABEL=SANS_ENC\n")
    no_dev = tmp_path / "no-by-label"  # what the sandbox leaves
    m = Mount(1, 0, 8, 17, "/", "/media/vigie/sdb1", "rw", "vfat", "/dev/sdb1")
    assert device_label(m, no_dev, udev) == "CLE CABINET"
    m2 = Mount(1, 0, 8, 33, "/", "/media/vigie/sdc1", "rw", "vfat", "/dev/sdc1")
    assert device_label(m2, no_dev, udev) == "SANS_ENC"
    m3 = Mount(1, 0, 8, 49, "/", "/media/vigie/sdd1", "rw", "vfat", "/dev/sdd1")
    assert device_label(m3, no_dev, udev) == "sdd1"  # no entry: the mount point's name


def usb_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [rec.getMessage() for rec in caplog.records if rec.name == "vigie.usb"]


def test_report_not_written_keeps_the_findings(tmp_path: Path, key: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The reports folder cannot be made: the counts are still logged, the callbacks
    still told, and the exit code still says what was found (1), or 2 for a clean key
    whose report is missing."""
    caplog.set_level(logging.INFO, logger="vigie.usb")
    blocker = tmp_path / "pas-un-dossier"
    blocker.write_text("a file where the reports folder should be")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(BASE + mount_line(300, key))
    got: list[UsbReport] = []
    watcher = make_watcher(tmp_path, mountinfo, notify=[got.append])
    watcher.reports_dir = blocker / "usb-reports"
    watcher.quarantine_dir = None
    (r,) = watcher.poll_once()
    assert got == [r] and r.json_path is None and r.html_path is None
    assert r.report_error and r.exit_code == 1
    assert r.run.counts()["malicious"] == 1
    (line,) = [x for x in usb_lines(caplog) if "rapport NON écrit" in x]
    assert "1 fichier(s) à risque (1 dangereux, 0 suspects)" in line
    assert "1 risky file(s) found (1 malicious, 0 suspicious)" in line
    assert "report NOT written in" in line and "facture" not in line

    (key / "facture\u202efdp.exe").unlink()
    mountinfo.write_text(BASE + mount_line(301, key))
    (clean,) = watcher.poll_once()
    assert clean.run.exit_code() == 0 and clean.exit_code == 2


def test_log_line_english_half_is_whole(tmp_path: Path, key: Path,
                                        caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both halves carry the counts and the report's path; a label is escaped once
    (``\\u202e``, not ``\\\\u202e``); a copy whose original stayed (read-only key) is
    said to be still on the key."""
    import os

    caplog.set_level(logging.INFO, logger="vigie.usb")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(BASE + mount_line(300, key))
    watcher = make_watcher(tmp_path, mountinfo)
    watcher.label_of = lambda m: "Clé\u202eexe.pdf"
    real_unlink = os.unlink

    def read_only(path: str, *a: object, **k: object) -> None:
        if "facture" in str(path):
            raise OSError(30, "Read-only file system", path)
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", read_only)
    (r,) = watcher.poll_once()
    monkeypatch.undo()
    assert (key / "facture\u202efdp.exe").exists()
    (line,) = [x for x in usb_lines(caplog) if "à risque" in x]
    fr, en = line.split(" / USB medium ")
    assert fr.startswith("clé USB « Clé\\u202eexe.pdf » : 1 fichier(s) à risque")
    assert "1 mis de côté dont 1 resté(s) sur la clé" in fr and str(r.html_path) in fr
    assert en.startswith('"Clé\\u202eexe.pdf": 1 risky file(s) found (1 malicious, '
                         '0 suspicious), 1 quarantined of which 1 still on the medium')
    assert en.endswith(f"report: {r.html_path}")
    assert "\\\\u202e" not in line and "\u202e" not in line
    (detected,) = [x for x in usb_lines(caplog) if "détectée" in x]
    assert '"Clé\\u202eexe.pdf" detected on' in detected and "\\\\u202e" not in detected
