"""The attachment check in the mail flow: outbound over real loopback SMTP, inbound
through the engine and the policy (the inbound listener arrives with issue 4)."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import signal
import tarfile
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from gateway.checks import default_checks
from gateway.checks.attachments import AttachmentCheck, reload_on_sighup
from gateway.config import Config
from gateway.engine import Engine
from gateway.model import Direction, Envelope, Message
from gateway.scan.engine import Scanner, Verdict
from gateway.testing import CapturingUpstream, GatewayThread, eicar
from tests.conftest import connect
from tests.samples_builder import (
    make_appledouble,
    make_docx,
    make_docx_from_template,
    make_nested_zips,
    make_odp,
    make_ods,
    make_odt,
    make_pdf,
    make_pdf_form,
    make_pdf_form_with_scripts,
    make_pdf_image_only,
    make_pdf_with_attachment,
    make_png,
    make_pptx,
    make_restricted_pdf_with_objstm,
    make_rtf,
    make_url_shortcut,
    make_xlsx,
    make_zip,
    parse_mail,
)

MakeGW = Callable[..., GatewayThread]
CONFRERE = "secretariat@clinique-exemple.fr"


def mail(to: str, subject: str, body: str,
         attachments: Sequence[tuple[str, bytes, str]] = (), *,
         sender: str = "Camille Kiné <camille@cabinet-kine.fr>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="cabinet-kine.fr")
    msg.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def send(gw: GatewayThread, rcpts: list[str], raw: bytes) -> tuple[int, str]:
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, text = c.data(raw)
    return code, text.decode("utf-8")


# --- outbound, over SMTP -----------------------------------------------------------------

def test_outbound_eicar_zip_is_refused_with_a_french_explanation(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gw = make_gateway(relay_config)
    archive = make_zip({"factures/facture-185057800608491.com": eicar()})
    code, text = send(gw, [CONFRERE], mail(CONFRERE, "Factures", "Bonjour, ci-joint.",
                                           [("factures.zip", archive, "application/zip")]))
    assert code == 550
    assert text.startswith("5.7.1 Message refusé par vigie")
    assert "factures.zip/factures/facture-18505••••••••91.com" in text
    assert "fichier de test antivirus EICAR" in text
    assert "retirez cette pièce jointe" in text
    assert text.index("Message refusé") < text.index("Message refused")
    assert "EICAR antivirus test file" in text
    assert "185057800608491" not in text  # a long number in a file name is masked
    assert upstream.messages == []
    assert "ATT_MALICIOUS" in caplog.text
    assert "185057800608491" not in caplog.text


def test_outbound_ordinary_docx_and_pdf_pass(make_gateway: MakeGW, relay_config: Config,
                                             upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    raw = mail(CONFRERE, "Courrier", "Bonjour, voici le courrier et la facture.", [
        ("courrier.docx", make_docx(["Cher confrère,", "Bien cordialement."]),
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("facture.pdf", make_pdf(["Facture n° 2025-001", "Montant : 48,39 €"]),
         "application/pdf")])
    code, _ = send(gw, [CONFRERE], raw)
    assert code == 250
    assert len(upstream.messages) == 1
    assert b"X-Vigie-Verdict" not in upstream.messages[0].content


def test_outbound_password_protected_zip_is_delivered(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    # sending a patient's file in an encrypted zip is good practice, not an attack
    gw = make_gateway(relay_config)
    raw = mail(CONFRERE, "Dossier", "Mot de passe communiqué par téléphone.", [
        ("dossier.zip", make_zip({"bilan.pdf": make_pdf(["x"])}, password=True),
         "application/zip")])
    code, _ = send(gw, [CONFRERE], raw)
    assert code == 250
    assert len(upstream.messages) == 1


# --- inbound, through the engine and the policy --------------------------------------------

def inbound(raw: bytes) -> Message:
    return Message(raw, Envelope("expediteur@exemple.com", ["camille@cabinet-kine.fr"],
                                 direction=Direction.INBOUND, queue_id="q1"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path_factory.mktemp("data"))
    return Engine(cfg)


async def test_inbound_malicious_attachment_is_held(engine: Engine) -> None:
    raw = mail("camille@cabinet-kine.fr", "Votre facture", "Voir pièce jointe.", [
        ("facture.pdf.exe", b"MZ" + bytes(58) + b"\x40\0\0\0PE\0\0" + bytes(200),
         "application/octet-stream")], sender="Compta <compta@exemple.com>")
    message = inbound(raw)
    decision = await engine.screen(message)
    assert decision.action == "hold"
    assert "ATT_MALICIOUS" in decision.symbols
    assert decision.reply is not None and decision.reply.code == 250


async def test_inbound_suspicious_attachment_is_tagged_with_the_reason(engine: Engine) -> None:
    odt = make_odt(["Bonjour"])
    buf = io.BytesIO(odt)
    import zipfile
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("Basic/Standard/Module1.xml", "<script:module/>")
    raw = mail("camille@cabinet-kine.fr", "Planning", "Ci-joint le planning.", [
        ("planning.odt", buf.getvalue(), "application/vnd.oasis.opendocument.text")],
        sender="Secrétariat <secretariat@exemple.com>")
    message = inbound(raw)
    decision = await engine.screen(message)
    assert decision.action == "tag"
    assert decision.symbols == ["ATT_SUSPICIOUS"]
    finding = next(f for f in decision.findings if f.symbol == "ATT_SUSPICIOUS")
    assert "« planning.odt » : document avec des macros" in finding.reasons[0].fr
    out = engine.prepare(message, decision)
    assert b"X-Vigie-Verdict: tag; score=0; symbols=ATT_SUSPICIOUS" in out
    assert b"Subject: [SUSPECT] Planning" in out  # [inbound] tag_subject_prefix
    assert "document avec des macros" in out.decode("utf-8", "replace")  # the banner says why


async def test_inbound_eicar_in_attached_message_is_held(engine: Engine) -> None:
    inner = EmailMessage()
    inner["Subject"] = "fwd"
    inner.set_content("voir")
    inner.add_attachment(eicar(), maintype="application", subtype="octet-stream",
                         filename="outil.txt")
    outer = EmailMessage()
    outer["From"] = "a@exemple.com"
    outer["To"] = "camille@cabinet-kine.fr"
    outer["Subject"] = "Transfert"
    outer["Date"] = formatdate()
    outer["Message-ID"] = make_msgid()
    outer.set_content("transfert")
    outer.add_attachment(inner)
    decision = await engine.screen(inbound(outer.as_bytes()))
    assert decision.action == "hold"


async def test_inbound_eml_attached_as_octet_stream_is_opened_and_held(engine: Engine) -> None:
    # review of issue 5, item 4: the same forward as a plain file, not message/rfc822
    inner = EmailMessage()
    inner["Subject"] = "facture"
    inner.set_content("voir")
    inner.add_attachment(make_zip({"facture.exe": b"MZ" + bytes(58) + b"\x40\0\0\0PE\0\0"
                                   + bytes(200)}), maintype="application", subtype="zip",
                         filename="facture.zip")
    raw = mail("camille@cabinet-kine.fr", "Tr: facture", "transfert", [
        ("facture.eml", inner.as_bytes(), "application/octet-stream")],
        sender="a@exemple.com")
    decision = await engine.screen(inbound(raw))
    assert decision.action == "hold"
    finding = next(f for f in decision.findings if f.symbol == "ATT_MALICIOUS")
    assert "facture.eml/facture.zip/facture.exe" in finding.reasons[0].fr


async def test_inbound_archive_not_inspected_is_tagged(engine: Engine) -> None:
    # review of issue 5, item 18: the recipient is told vigie could not look inside
    raw = mail("camille@cabinet-kine.fr", "Archives", "Ci-joint.", [
        ("archives.zip", make_nested_zips(7), "application/zip")],
        sender="Secrétariat <secretariat@exemple.com>")
    message = inbound(raw)
    decision = await engine.screen(message)
    assert decision.symbols == ["ATT_NOT_INSPECTED"]
    assert decision.action == "tag"
    out = parse_mail(engine.prepare(message, decision))
    assert out["Subject"].startswith("[SUSPECT]")
    body = out.get_body(("plain",))
    assert body is not None and "niveaux d'imbrication" in body.get_content()


# --- ordinary documents of a practice: zero false positive ----------------------------------

JPEG = (bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + bytes(range(64))
        + bytes.fromhex("ffc0000b080010001001011100ffd9"))
ICS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Cabinet//Agenda//FR\r\nBEGIN:VEVENT\r\n"
       "UID:2025-01-06-0900@cabinet-kine.fr\r\nDTSTART:20250106T090000\r\n"
       "DTEND:20250106T093000\r\nSUMMARY:Séance de kinésithérapie\r\n"
       "LOCATION:12 rue des Lilas\\, Lyon\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()
CSV = (b"date;patient;acte;montant\n2025-01-06;Durand;AMK 7.5;16,13\n"
       b"2025-01-07;Martin;AMC 8;17,20\n;;total;=SOMME(D2:D3)\n")
VCF = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dr Martin\r\nTEL:+33102030405\r\nEND:VCARD\r\n"
HTML = (b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Lettre</title></head><body>"
        b"<h1>Lettre d'information</h1><p>Formation le 12 mars : <a href=\"https://ordre."
        b"example/formation\">inscription</a></p><img src=\"cid:logo\" alt=\"\"></body></html>")


FACTURX = (b"<?xml version='1.0' encoding='UTF-8'?><rsm:CrossIndustryInvoice xmlns:rsm="
           b"'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100'/>")


def blank_bmp(width: int, height: int) -> bytes:
    """An uncompressed 24-bit white page, as a scanner saves it (zips at about 1000:1)."""
    import struct
    row = (width * 3 + 3) & ~3
    pixels = b"\xff" * (row * height)
    return (struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835,
                          0, 0) + pixels)


def deflated_zip(members: dict[str, bytes]) -> bytes:
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@functools.cache
def ordinary_documents() -> dict[str, bytes]:
    docs = {
        "bilan.pdf": make_pdf(["Bilan de kinésithérapie", "Séance du 6 janvier 2025"]),
        "compte-rendu.pdf": make_pdf(["Compte rendu"] * 120, compress=True),
        "ordonnance-scannee.pdf": make_pdf_image_only(2),
        "formulaire.pdf": make_pdf_form({"nom": "Durand", "date": "06/01/2025"}),
        "scan.png": make_png(64, 64), "photo.jpg": JPEG, "photo.jpeg": JPEG,
        "courrier.docx": make_docx(["Cher confrère,", "Je vous adresse Mme D."],
                                   header="Cabinet de kinésithérapie"),
        "factures.xlsx": make_xlsx([["date", "montant"], ["06/01/2025", 16.13]]),
        "presentation.pptx": make_pptx(["Prévention des chutes", "Exercices"]),
        "lettre.odt": make_odt(["Bonjour,", "À bientôt."]),
        "compta.ods": make_ods([["janvier", 1200.5]]), "atelier.odp": make_odp(["Atelier"]),
        "note.rtf": make_rtf("Note de service — réunion à 12 h"),
        "rendez-vous.ics": ICS, "recettes.csv": CSV, "contact.vcf": VCF,
        "lisez-moi.txt": "Horaires : lundi–vendredi 8 h–19 h\n".encode(),
        "lettre-info.html": HTML,
    }
    # review of issue 5: what a practice really has (and what was wrongly flagged)
    docs.update({
        "cerfa_demande.pdf": make_pdf_form_with_scripts(),  # field scripts K/F/V/C
        "cerfa_compresse.pdf": make_pdf_form_with_scripts(compress=True,
                                                          open_action=b"[3 0 R /Fit]"),
        "facture-facturx.pdf": make_pdf_with_attachment(["Facture 2025-001"], "factur-x.xml",
                                                        FACTURX),
        "courrier-modele.docx": make_docx_from_template(
            "file:///C:/Users/secretariat/AppData/Roaming/Microsoft/Templates/"
            "Courrier%20cabinet.dotm", ["Cher confrère,"]),
        "._radio.jpg": make_appledouble(),
        "Ameli.url": make_url_shortcut("https://www.ameli.fr/"),
        "vide.pdf": b"",
        "releve-securise.pdf": make_restricted_pdf_with_objstm(b"/OpenAction [3 0 R /Fit]"),
        "ancien-courrier.doc": make_docx(["Courrier enregistré en .doc"]),
        "scans-ordonnances.zip": deflated_zip({"ordonnance-scannee.bmp": blank_bmp(2480, 3508)}),
    })
    docs["dossier.zip"] = make_zip(dict(list(docs.items())[:10]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in list(docs.items())[10:]:
            info = tarfile.TarInfo(f"archives/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    docs["sauvegarde.tar.gz"] = buf.getvalue()
    return docs


@pytest.mark.parametrize("direction", ["inbound", "outbound", "file"])
def test_ordinary_documents_have_no_suspicious_or_malicious_finding(direction: str) -> None:
    scanner = Scanner()
    for name, data in ordinary_documents().items():
        report = scanner.scan_bytes(name, data, direction=direction)
        bad = [f for f in report.findings
               if f.verdict in (Verdict.SUSPICIOUS, Verdict.MALICIOUS, Verdict.ERROR)]
        assert bad == [], (name, bad)
        assert report.verdict is Verdict.CLEAN, (name, report.findings)


async def test_a_mail_with_every_ordinary_document_is_delivered_both_ways(
        engine: Engine) -> None:
    docs = ordinary_documents()
    raw = mail("camille@cabinet-kine.fr", "Documents", "Bonjour, voici les documents.",
               [(name, data, "application/octet-stream") for name, data in docs.items()],
               sender="Secrétariat <secretariat@exemple.com>")
    decision = await engine.screen(inbound(raw))
    assert [f.symbol for f in decision.findings if f.check == "attachments"] == []
    assert decision.action == "deliver"
    check = AttachmentCheck(Scanner())
    out = Message(raw, Envelope("camille@cabinet-kine.fr", [CONFRERE]))
    assert await check.run(out) == []


# --- configuration and SIGHUP ------------------------------------------------------------------

def test_scan_can_be_switched_off(tmp_path: Path) -> None:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path)
    assert any(isinstance(c, AttachmentCheck) for c in default_checks(cfg))
    cfg.scan.enabled = False
    assert not any(isinstance(c, AttachmentCheck) for c in default_checks(cfg))


async def test_sighup_reloads_the_yara_rules_and_a_broken_set_keeps_the_old_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "cabinet.yar"
    rules.write_text('rule marker_one { strings: $a = "MARQUEUR-UN" condition: $a }\n')
    check = AttachmentCheck(Scanner(yara_dir=str(tmp_path)))
    loop = asyncio.get_running_loop()
    reload_on_sighup(loop, [check])
    try:
        assert check.scanner.scan_bytes("a.txt", b"MARQUEUR-DEUX").verdict is Verdict.CLEAN
        rules.write_text('rule marker_two { strings: $a = "MARQUEUR-DEUX" condition: $a }\n')
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            await asyncio.sleep(0.02)
            if check.scanner.scan_bytes("a.txt", b"MARQUEUR-DEUX").verdict is Verdict.MALICIOUS:
                break
        assert check.scanner.scan_bytes("a.txt", b"MARQUEUR-DEUX").verdict is Verdict.MALICIOUS
        caplog.set_level(logging.ERROR, logger="vigie.scan")
        rules.write_text("rule broken {\n  condition: true and and\n}\n")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            await asyncio.sleep(0.02)
            if "NOT reloaded" in caplog.text:
                break
        assert "cabinet.yar, line 2" in caplog.text
        assert check.scanner.scan_bytes("a.txt", b"MARQUEUR-DEUX").verdict is Verdict.MALICIOUS
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def test_config_check_refuses_a_broken_local_rule_with_file_and_line(tmp_path: Path) -> None:
    import subprocess
    import sys
    rules = tmp_path / "yara"
    rules.mkdir()
    (rules / "cabinet.yar").write_text("rule ok { condition: true }\nrule broken {\n"
                                       "  condition: true and and\n}\n")
    conf = tmp_path / "vigie.toml"
    conf.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[scan]\n'
                    f'yara_dir = "{rules}"\n')
    proc = subprocess.run([sys.executable, "-m", "gateway", "config", "check", str(conf)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "cabinet.yar, ligne 3" in proc.stderr and "cabinet.yar, line 3" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.swaks
def test_swaks_eicar_attachment_is_refused(make_gateway: MakeGW, relay_config: Config,
                                           upstream: CapturingUpstream, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import PASSWORD, USER, require_program
    exe = require_program("swaks")
    gw = make_gateway(relay_config)
    sample = tmp_path / "ordonnance.pdf"
    sample.write_bytes(eicar())
    r = subprocess.run([exe, "--timeout", "20", "--server", f"127.0.0.1:{gw.port}", "--tls",
                        "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                        "--from", "camille@cabinet-kine.fr", "--to", CONFRERE,
                        "--header", "Subject: Ordonnance", "--attach-type",
                        "application/pdf", "--attach", f"@{sample}"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert "<~* 550-5.7.1 Message refusé par vigie" in r.stdout, r.stdout + r.stderr
    assert "fichier de test antivirus EICAR" in r.stdout
    assert upstream.messages == []


async def test_a_scan_that_fails_is_a_temporary_failure_never_a_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from gateway.scan import pdf as pdf_module

    def broken(*args: object) -> None:
        raise RuntimeError("Mme Durand 185057800608491")  # text that must not be logged

    monkeypatch.setattr(pdf_module, "scan_pdf", broken)
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path)
    engine = Engine(cfg)
    raw = mail("camille@cabinet-kine.fr", "Bilan", "Ci-joint.", [
        ("bilan.pdf", make_pdf(["Bilan"]), "application/pdf")], sender="a@exemple.com")
    decision = await engine.screen(inbound(raw))
    assert decision.action == "tempfail"
    assert "ATT_ERROR" in decision.symbols
    assert "RuntimeError" in caplog.text and "185057800608491" not in caplog.text


async def test_findings_carry_masked_per_file_details_and_the_time_limit_holds() -> None:
    check = AttachmentCheck(Scanner(), timeout=15)
    raw = mail("camille@cabinet-kine.fr", "x", "x", [
        ("bilan-185057800608491.pdf.exe", b"MZ" + bytes(300), "application/octet-stream"),
        ("note.txt", b"bonjour", "text/plain")], sender="a@exemple.com")
    findings = await check.run(inbound(raw))
    (malicious,) = [f for f in findings if f.symbol == "ATT_MALICIOUS"]
    (entry,) = malicious.extra["files"]
    assert entry["name"] == "bilan-18505••••••••91.pdf.exe"
    assert "185057800608491" not in repr(malicious)
    # past the message's time limit, the files left are reported, not scanned
    slow = AttachmentCheck(Scanner(), timeout=0.0)
    findings = await slow.run(inbound(raw))
    assert [f.symbol for f in findings] == ["ATT_NOT_INSPECTED"]
