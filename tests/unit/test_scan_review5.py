"""Fixes from the issue-5 review: false positives on ordinary files and missed
detections, on real files of real formats made here at test time."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from gateway.scan.engine import FileReport, ScanLimits, Scanner, Verdict
from tests.samples_builder import (
    make_appledouble,
    make_docx,
    make_docx_from_template,
    make_mail,
    make_pdf,
    make_pdf_form_with_scripts,
    make_pdf_with_attachment,
    make_png,
    make_restricted_pdf_with_objstm,
    make_url_shortcut,
    make_xlsx,
    make_zip,
)

PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def pdf_objects(*objects: bytes) -> bytes:
    body = b"%PDF-1.4\n"
    for i, obj in enumerate(objects, start=1):
        body += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


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


# --- 1: PDF scripts are judged by what starts them ------------------------------------------

def test_cerfa_form_field_scripts_are_clean(scanner: Scanner) -> None:
    for trigger in ("K", "F", "V", "C"):
        report = scanner.scan_bytes("cerfa.pdf", make_pdf_form_with_scripts([trigger]))
        assert report.findings == [], (trigger, report.findings)
    # all four, the scripts in compressed streams, and an ordinary "fit the page" zoom
    # at opening: still an ordinary form
    form = make_pdf_form_with_scripts(compress=True, open_action=b"[3 0 R /Fit]")
    assert scanner.scan_bytes("cerfa_12345.pdf", form).findings == []


def test_pdf_scripts_run_at_opening_are_flagged_field_scripts_only_when_hidden(
        scanner: Scanner) -> None:
    # the document-level name tree runs its scripts when the file opens
    names = pdf_objects(b"<< /Type /Catalog /Pages 2 0 R /Names << /JavaScript 3 0 R >> >>",
                        PAGES, b"<< /Names [(init) 4 0 R] >>",
                        b"<< /S /JavaScript /JS (app.alert\\('x'\\);) >>")
    report = scanner.scan_bytes("js_open.pdf", names)
    assert symbols(report) == {"SCAN_PDF_JS"} and report.verdict is Verdict.SUSPICIOUS
    # so does a page's /AA /O; obfuscated, it is malicious
    page = pdf_objects(b"<< /Type /Catalog /Pages 2 0 R >>",
                       b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                       b"<< /Type /Page /Parent 2 0 R /AA << /O 4 0 R >> >>",
                       b"<< /S /JavaScript /JS (eval\\(unescape\\('%61'\\)\\)) >>")
    report = scanner.scan_bytes("page.pdf", page)
    assert report.verdict is Verdict.MALICIOUS and symbols(report) == {"SCAN_PDF_JS"}
    # a field script that hides what it does is suspicious, never malicious
    hidden = make_pdf_form_with_scripts(["K"]).replace(
        b"AFNumber_Keystroke", b"eval(String.fromCharCode(97))//")
    report = scanner.scan_bytes("cerfa.pdf", hidden)
    assert report.verdict is Verdict.SUSPICIOUS


def test_pdf_launch_and_an_embedded_program_are_malicious_an_invoice_xml_is_not(
        scanner: Scanner) -> None:
    launch = pdf_objects(b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /Launch "
                         b"/F (cmd.exe) >> >>", PAGES)
    assert scanner.scan_bytes("a.pdf", launch).verdict is Verdict.MALICIOUS
    facturx = make_pdf_with_attachment(["Facture 2025-001"], "factur-x.xml", (
        b"<?xml version='1.0' encoding='UTF-8'?><rsm:CrossIndustryInvoice xmlns:rsm="
        b"'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100'/>"))
    report = scanner.scan_bytes("facture.pdf", facturx)
    assert report.findings == [] and report.children == 1
    program = make_pdf_with_attachment(["Facture"], "lecteur.exe", b"MZ" + bytes(400))
    report = scanner.scan_bytes("facture.pdf", program)
    assert report.verdict is Verdict.MALICIOUS
    assert "facture.pdf/lecteur.exe" in {f.path for f in report.findings}


# --- 2: a template of the practice is not a remote template ---------------------------------

@pytest.mark.parametrize(("target", "remote"), [
    ("file:///C:/Users/secretariat/AppData/Roaming/Microsoft/Templates/Courrier%20cabinet.dotm",
     False),
    ("C:\\Users\\secretariat\\Documents\\Modèles\\Ordonnance.dotx", False),
    ("file:///D|/Modeles/Lettre.dotx", False),
    ("Normal.dotm", False),
    ("https://modeles.example/t.dotm", True),
    ("\\\\192.0.2.7\\partage\\t.dotm", True),
    ("file://serveur/partage/t.dotm", True),
    ("file:////serveur/partage/t.dotm", True),
])
def test_docx_template_remote_only_off_this_computer(scanner: Scanner, target: str,
                                                     remote: bool) -> None:
    report = scanner.scan_bytes("courrier.docx", make_docx_from_template(target))
    if remote:
        assert symbols(report) == {"SCAN_REMOTE_TEMPLATE"}
        assert report.verdict is Verdict.MALICIOUS
    else:
        assert report.findings == [], report.findings


def test_rtf_local_template_is_clean_a_share_is_not(scanner: Scanner) -> None:
    local = rb"{\rtf1\ansi{\*\template C:\\Users\\a\\Modeles\\Lettre.dot}Bonjour}"
    assert scanner.scan_bytes("note.rtf", local).findings == []
    share = rb"{\rtf1\ansi{\*\template \\\\serveur\\partage\\t.dot}Bonjour}"
    assert symbols(scanner.scan_bytes("note.rtf", share)) == {"SCAN_REMOTE_TEMPLATE"}


# --- 4: a message saved as a file is opened ---------------------------------------------------

def test_eml_file_is_parsed_and_its_attachments_scanned(scanner: Scanner) -> None:
    inner = make_mail(subject="Facture", attachments=[
        ("facture.zip", make_zip({"facture.exe": b"MZ" + bytes(400)}), "application/zip")])
    report = scanner.scan_bytes("message_recu.eml", inner.as_bytes())
    assert report.verdict is Verdict.MALICIOUS
    assert "message_recu.eml/facture.zip/facture.exe" in {f.path for f in report.findings}
    clean = make_mail(attachments=[("bilan.pdf", make_pdf(["Bilan"]), "application/pdf")])
    report = scanner.scan_bytes("Tr: bilan.eml", clean.as_bytes())
    assert report.findings == [] and report.children == 1


async def test_eml_attached_as_octet_stream_is_opened_by_the_attachment_check() -> None:
    from gateway.checks.attachments import AttachmentCheck
    from gateway.model import Envelope, Message
    inner = make_mail(attachments=[
        ("facture.zip", make_zip({"facture.exe": b"MZ" + bytes(400)}), "application/zip")])
    outer = make_mail(subject="Tr: facture", attachments=[
        ("facture.eml", inner.as_bytes(), "application/octet-stream")],
        sender="secretariat@exemple.com", to="camille@cabinet-kine.fr")
    raw = outer.as_bytes().replace(b"\n", b"\r\n")
    findings = await AttachmentCheck(Scanner()).run(
        Message(raw, Envelope("secretariat@exemple.com", ["camille@cabinet-kine.fr"])))
    assert [f.symbol for f in findings] == ["ATT_MALICIOUS"]


# --- 6: ordinary USB-key debris ------------------------------------------------------------

def test_usb_key_debris_and_office_confusions_are_clean(scanner: Scanner) -> None:
    files = {
        "._radio.jpg": make_appledouble(),
        "Ameli.url": make_url_shortcut("https://www.ameli.fr/"),
        "Doctolib.url": b"[InternetShortcut]\r\nURL=https://pro.doctolib.fr/\r\n",
        "vide.pdf": b"", "vide.docx": b"",
        "ancien_format.doc": make_docx(["Courrier"]),
        "lettre.docx": rb"{\rtf1\ansi Bonjour\par}",
        "export.xlsx": b"date;montant\n06/01/2025;16,13\n",
        "tableau.xls": make_xlsx([["date", "montant"]]),
        "note.rtf": make_docx(["Note"]),
    }
    for name, data in files.items():
        report = scanner.scan_bytes(name, data, direction="file")
        assert report.findings == [], (name, report.findings)


@pytest.mark.parametrize(("url", "icon", "verdict"), [
    ("file://192.0.2.7/partage/facture.exe", None, Verdict.MALICIOUS),
    ("\\\\192.0.2.7\\partage\\facture.hta", None, Verdict.MALICIOUS),
    ("file:///C:/Users/Public/", None, Verdict.SUSPICIOUS),
    ("search-ms:query=facture&crumb=location:\\\\192.0.2.7\\p", None, Verdict.SUSPICIOUS),
    ("https://www.ameli.fr/", "\\\\192.0.2.7\\icones\\a.ico", Verdict.SUSPICIOUS),
])
def test_url_shortcuts_to_shares_programs_or_odd_protocols_are_flagged(
        scanner: Scanner, url: str, icon: str | None, verdict: Verdict) -> None:
    report = scanner.scan_bytes("Ameli.url", make_url_shortcut(url, icon=icon))
    assert symbols(report) == {"SCAN_SHORTCUT"} and report.verdict is verdict


def test_a_program_named_url_is_still_malicious(scanner: Scanner) -> None:
    report = scanner.scan_bytes("Ameli.url", b"MZ" + bytes(400))
    assert report.verdict is Verdict.MALICIOUS


# --- 23: French agreement -------------------------------------------------------------------

def test_password_protected_archive_is_protegee(scanner: Scanner) -> None:
    report = scanner.scan_bytes("dossier.zip", make_zip({"a.pdf": b"x"}, password=True))
    assert "archive zip protégée par mot de passe" in report.findings[0].reason.fr


# --- 9: ClamAV down is a note, not "not inspected" ------------------------------------------

def test_clamav_down_leaves_the_other_verdicts_and_warns_once(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import socket
    import threading

    from gateway.testing import eicar
    # a clamd that hangs up at once: every connection is counted
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def hang_up() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        caplog.set_level(logging.INFO, logger="vigie.scan")
        scanner = Scanner(clamd=f"127.0.0.1:{server.getsockname()[1]}", clamd_timeout=2)
        clean = scanner.scan_bytes("bilan.pdf", make_pdf(["Bilan"]), direction="file")
        assert clean.verdict is Verdict.CLEAN
        assert [f.symbol for f in clean.findings] == ["SCAN_CLAMAV_UNAVAILABLE"]
        assert "ClamAV" in clean.findings[0].reason.fr
        bad = scanner.scan_bytes("eicar.com", eicar(), direction="file")
        assert bad.verdict is Verdict.MALICIOUS
        for i in range(50):
            assert scanner.scan_bytes(f"n{i}.txt", b"note").verdict is Verdict.CLEAN
        assert len(accepted) == 1  # not a connection attempt per file
    finally:
        stop.set()
        thread.join()
        server.close()
    warnings = [r.getMessage() for r in caplog.records if "ClamAV" in r.getMessage()
                and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].index("injoignable") < warnings[0].index("not reachable")


# --- 10: big files are judged on what can be read without loading them ---------------------

def test_big_media_files_are_judged_on_type_and_yara_not_uninspected(
        tmp_path: Path) -> None:
    rules = tmp_path / "yara"
    rules.mkdir()
    (rules / "cabinet.yar").write_text(
        'rule marqueur { strings: $a = "MARQUEUR-MALVEILLANT" condition: $a }\n')
    scanner = Scanner(yara_dir=str(rules))
    scanner.whole_file = 64 * 1024  # as if these were bigger than what is read whole
    video = tmp_path / "video_seance.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(200_000))
    photo = tmp_path / "radio.png"
    photo.write_bytes(make_png(400, 400) + bytes(200_000))
    for path in (video, photo):
        report = scanner.scan_path(path)
        assert report.findings == [] and report.verdict is Verdict.CLEAN, report.findings
    # YARA still runs over the whole file, in place
    hidden = tmp_path / "film.mp4"
    hidden.write_bytes(video.read_bytes() + b"MARQUEUR-MALVEILLANT" + bytes(1000))
    assert scanner.scan_path(hidden).verdict is Verdict.MALICIOUS
    # a big PDF is read by parts only: said so
    big_pdf = tmp_path / "dossier.pdf"
    big_pdf.write_bytes(make_pdf(["x"] * 8000))
    assert big_pdf.stat().st_size > scanner.whole_file
    report = scanner.scan_path(big_pdf)
    assert report.verdict is Verdict.NOT_INSPECTED
    assert "YARA" in report.findings[0].reason.fr


# --- 22: YARA rules: a verdict typo is refused, serve refuses before its banner --------------

def test_unknown_yara_verdict_is_refused_with_file_and_line(tmp_path: Path) -> None:
    from gateway.scan.engine import ScanConfigError
    (tmp_path / "cabinet.yar").write_text(
        'rule ok { meta: verdict = "suspicious" condition: false }\n'
        "rule typo {\n  meta:\n    verdict = \"dangerous\"\n  condition: false\n}\n")
    with pytest.raises(ScanConfigError) as info:
        Scanner(yara_dir=str(tmp_path))
    assert info.value.file is not None and info.value.file.endswith("cabinet.yar")
    assert info.value.line == 4
    assert "dangerous" in info.value.fr and "dangerous" in info.value.en


def test_serve_refuses_broken_rules_before_saying_it_listens(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    rules = tmp_path / "yara"
    rules.mkdir()
    (rules / "cabinet.yar").write_text("rule broken {\n  condition: true and and\n}\n")
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    conf = tmp_path / "vigie.toml"
    conf.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[submission]\n'
                    f'listen = ["127.0.0.1:{ports[0]}"]\nlisten_tls = ["127.0.0.1:{ports[1]}"]\n'
                    f'[scan]\nyara_dir = "{rules}"\n')
    proc = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(conf)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "cabinet.yar, ligne 2" in proc.stderr and "cabinet.yar, line 2" in proc.stderr
    assert "soumission sur" not in proc.stderr and "submission on" not in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_sighup_log_lines_are_french_first(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from gateway.checks.attachments import AttachmentCheck
    caplog.set_level(logging.INFO, logger="vigie.scan")
    rules = tmp_path / "cabinet.yar"
    rules.write_text("rule ok { condition: false }\n")
    check = AttachmentCheck(Scanner(yara_dir=str(tmp_path)))
    check.reload()
    rules.write_text("rule broken {\n  condition: true and and\n}\n")
    check.reload()
    lines = [r.getMessage() for r in caplog.records]
    ok = next(m for m in lines if "YARA rules reloaded" in m)
    assert ok.index("rechargées") < ok.index("reloaded")
    refused = next(m for m in lines if "NOT reloaded" in m)
    assert refused.index("NON rechargées") < refused.index("NOT reloaded")


# --- 23: a right-to-left override never reaches a reply raw ----------------------------------

async def test_rtl_override_in_a_file_name_is_written_out_in_reasons() -> None:
    from gateway.checks.attachments import AttachmentCheck
    from gateway.model import Envelope, Message
    from gateway.testing import eicar
    msg = make_mail(subject="Facture", attachments=[
        ("facture\u202efdp.exe", eicar(), "application/octet-stream")],
        sender="camille@cabinet-kine.fr", to="secretariat@clinique-exemple.fr")
    raw = msg.as_bytes().replace(b"\n", b"\r\n")
    findings = await AttachmentCheck(Scanner()).run(
        Message(raw, Envelope("camille@cabinet-kine.fr", ["secretariat@clinique-exemple.fr"])))
    (malicious,) = [f for f in findings if f.symbol == "ATT_MALICIOUS"]
    text = " ".join(r.fr + r.en for r in malicious.reasons) + repr(malicious.extra)
    assert "\u202e" not in text
    assert "facture\\u202efdp.exe" in text


# --- 18 (its cost): a "secured" PDF opening without a password is read, not uninspected ------

def test_restricted_pdf_with_object_streams_is_read_whole(scanner: Scanner) -> None:
    # inbound "not inspected" is now tagged: an ordinary secured statement must not be
    report = scanner.scan_bytes("releve.pdf", make_restricted_pdf_with_objstm())
    assert report.findings == [] and report.verdict is Verdict.CLEAN
    hostile = make_restricted_pdf_with_objstm(
        b"/OpenAction << /S /JavaScript /JS (eval\\(unescape\\('%61'\\)\\)) >>")
    report = scanner.scan_bytes("releve.pdf", hostile)
    assert report.verdict is Verdict.MALICIOUS and symbols(report) == {"SCAN_PDF_JS"}
