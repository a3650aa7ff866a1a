"""Broken and random inputs: the engine always answers, never raises, never errs."""

from __future__ import annotations

import io
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.scan.engine import Scanner, Verdict
from gateway.testing import eicar
from tests.samples_builder import make_docx, make_odt, make_pdf, make_rtf, make_zip

SCANNER = Scanner()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("a/eicar.txt")
        info.size = len(eicar())
        tf.addfile(info, io.BytesIO(eicar()))
    return buf.getvalue()


SEEDS = [make_zip({"a.txt": b"x" * 300, "b/c.pdf": make_pdf(["x"])}), make_docx(["Bonjour"]),
         make_odt(["Bonjour"]), make_pdf(["Bilan"], compress=True), make_rtf("Bonjour"),
         _tar(), b"<html><script>var b = new Blob([1]);</script></html>"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_files_never_break_the_engine(seed: bytes, data: st.DataObject) -> None:
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) // 2, len(raw)))
    name = data.draw(st.sampled_from(["a.zip", "b.docx", "c.pdf", "d.rtf", "e.tar.gz", "f"]))
    report = SCANNER.scan_bytes(name, bytes(raw[:cut]))
    assert report.verdict is not Verdict.ERROR, report.findings


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4096), st.text(max_size=40))
def test_random_bytes_and_names(data: bytes, name: str) -> None:
    report = SCANNER.scan_bytes(name, data)
    assert report.verdict is not Verdict.ERROR, report.findings
