"""Fixes from the issue-5 review: false positives on ordinary files and missed
detections, on real files of real formats made here at test time."""

from __future__ import annotations

import io
import zipfile

import pytest

from gateway.scan.engine import FileReport, ScanLimits, Scanner, Verdict


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def symbols(report: FileReport) -> set[str]:
    return {f.symbol for f in report.findings}


def blank_bmp(width: int, height: int) -> bytes:
    """An uncompressed 24-bit white page, as a scanner saves it."""
    import struct
    row = (width * 3 + 3) & ~3
    pixels = b"\xff" * (row * height)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835,
                       0, 0)
    return header + info + pixels


def deflated(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --- 5: a high ratio alone is not a bomb --------------------------------------------------

def test_zip_of_a_blank_uncompressed_scan_is_clean_not_a_bomb(scanner: Scanner) -> None:
    page = blank_bmp(2480, 3508)  # A4 at 300 dpi: 26 MB, zips at about 1000:1
    archive = deflated({"scan_ordonnance.bmp": page})
    assert len(page) > 200 * len(archive) * 4
    report = scanner.scan_bytes("scans.zip", archive)
    assert report.findings == [] and report.verdict is Verdict.CLEAN
    # the same ratio past the byte budget is still a bomb, declared or found inflating
    small = Scanner(ScanLimits(max_expanded=16 * 1024 * 1024))
    assert symbols(small.scan_bytes("scans.zip", archive)) == {"SCAN_BOMB"}
