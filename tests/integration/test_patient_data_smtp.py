"""The outbound patient-data guard as a practitioner meets it, over real loopback SMTP."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from gateway.audit import AuditLog
from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread
from tests.conftest import connect
from tests.quarantine_helpers import held_messages
from tests.samples_builder import make_pdf

MakeGW = Callable[..., GatewayThread]
NIR = "185057800608491"
NIR_TEXT = "1 85 05 78 006 084 91"
MASKED = "1 85 05 •• ••• ••• 91"


def mail(to: str, subject: str, body: str,
         attachments: Sequence[tuple[str, bytes, str]] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Camille Kiné <camille@cabinet-kine.fr>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="cabinet-kine.fr")
    msg.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


BILAN = (f"Bonjour,\n\nVoici le bilan de Mme Durand, numéro de sécurité sociale {NIR_TEXT}.\n"
         "Lombalgie chronique, reprise des séances lundi.\n\nCamille")


def send(gw: GatewayThread, rcpts: list[str], raw: bytes) -> tuple[int, str]:
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, text = c.data(raw)
    return code, text.decode("utf-8")


def test_nir_and_diagnosis_to_gmail_are_refused_with_a_useful_french_reply(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gw = make_gateway(relay_config)
    code, text = send(gw, ["mme.durand@gmail.com"],
                      mail("Mme Durand <mme.durand@gmail.com>", "Votre bilan", BILAN))
    assert code == 550
    assert text.startswith("5.7.1 Message refusé")
    assert MASKED in text
    assert "«lombalgie»" in text.casefold() or "lombalgie" in text.casefold()
    assert "mme.durand@gmail.com" in text
    assert f"{NIR}@patient.mssante.fr" in text
    assert "INS qualifié" in text
    assert "[envoi-non-securise]" in text
    assert text.index("Message refusé") < text.index("Message refused")
    # the number itself appears only inside the suggested MSSanté address
    assert text.replace(f"{NIR}@patient.mssante.fr", "").count(NIR) == 0
    assert NIR_TEXT not in text
    assert upstream.messages == []
    assert NIR not in caplog.text and NIR_TEXT not in caplog.text
    assert "mme.durand" not in caplog.text
    assert "PATIENT_DATA_WEBMAIL_HIGH" in caplog.text


def test_same_mail_to_mssante_is_delivered(make_gateway: MakeGW, relay_config: Config,
                                           upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    to = "jean.dupont@masseur-kinesitherapeute.mssante.fr"
    code, _ = send(gw, [to], mail(to, "Bilan", BILAN))
    assert code == 250
    assert len(upstream.messages) == 1


def test_one_webmail_recipient_among_secure_ones_blocks_the_mail(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    code, text = send(gw, ["jean.dupont@medecin.mssante.fr", "patient@orange.fr"],
                      mail("patient@orange.fr", "Bilan", BILAN))
    assert code == 550
    assert "patient@orange.fr" in text and "jean.dupont@medecin" not in text
    assert upstream.messages == []


def test_mail_without_patient_data_goes_to_gmail(make_gateway: MakeGW, relay_config: Config,
                                                 upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    code, _ = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Rendez-vous", "Bonjour, je vous confirme le rendez-vous de "
        "mardi 14 h. Tél. 01 85 05 78 00. Facture n° 2024-118 réglée. Cordialement."))
    assert code == 250
    assert len(upstream.messages) == 1


def test_nir_inside_a_pdf_attachment_is_found(make_gateway: MakeGW, relay_config: Config,
                                              upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    pdf = make_pdf(["BILAN DIAGNOSTIC KINESITHERAPIQUE", f"N° sécurité sociale : {NIR_TEXT}",
                    "Gonarthrose bilatérale"])
    code, text = send(gw, ["patient@free.fr"], mail(
        "patient@free.fr", "Document", "Bonjour, ci-joint le document.",
        [("bilan.pdf", pdf, "application/pdf")]))
    assert code == 550
    assert "bilan.pdf" in text and MASKED in text
    assert upstream.messages == []


def test_diagnosis_alone_is_medium_and_refused_by_default(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    code, text = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Exercices", "Bonjour, pour votre tendinopathie de la coiffe, "
        "faites les exercices deux fois par jour."))
    assert code == 550
    assert "patient.mssante.fr" in text  # the generic advice: no NIR to build the address
    assert upstream.messages == []


@pytest.mark.parametrize("body", [
    # short diagnosis lines look like a signature's list of specialities: they are not
    "Bilan kinésithérapique : lombalgie chronique.",
    "Lombalgie chronique, sciatique gauche.",
    "Diagnostic : lombalgie, tendinite de la coiffe des rotateurs.",
    "BPCO, AVC",
    "PTG du genou gauche, rééducation après entorse de la cheville",
    "Compte rendu ci-dessous.\nCamille Martin, kinésithérapeute\nLombalgie chronique.",
    # «je propose» is what a practitioner writes to a patient, not a newsletter
    "Pour la lombalgie, je propose 10 séances supplémentaires.",
    "Sciatique gauche en amélioration. Je propose un rendez-vous mardi.",
])
def test_short_diagnosis_lines_to_gmail_are_refused(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        body: str) -> None:
    gw = make_gateway(relay_config)
    code, text = send(gw, ["patient@gmail.com"], mail("patient@gmail.com", "Suivi", body))
    assert code == 550, text
    assert upstream.messages == []


def test_level_actions_are_configurable(make_gateway: MakeGW, relay_config: Config,
                                        upstream: CapturingUpstream) -> None:
    relay_config.policy = {"symbols": {"PATIENT_DATA_WEBMAIL_MEDIUM": {"action": "hold"}}}
    gw = make_gateway(relay_config)
    code, text = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Exercices", "Pour votre lombalgie, marchez tous les jours."))
    assert code == 250 and "retenu" in text
    assert upstream.messages == []
    [held] = held_messages(relay_config)
    assert held.summary.category == "patient_data"
    assert "lombalgie" not in repr(held.summary)  # no content in the listing metadata


def test_consent_override_delivers_without_the_marker_and_is_audited(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    raw = mail("patient@gmail.com", "Votre bilan [envoi-non-securise]", BILAN)
    code, _ = send(gw, ["patient@gmail.com"], raw)
    assert code == 250
    assert len(upstream.messages) == 1
    delivered = upstream.messages[0].content
    assert b"envoi-non-securise" not in delivered
    assert b"\r\nSubject: Votre bilan\r\n" in delivered
    entries = AuditLog(relay_config.audit_log).entries()
    assert len(entries) == 1
    e = entries[0]
    assert e["event"] == "override" and e["recipient_domains"] == ["gmail.com"]
    assert e["sender"] == "camille@cabinet-kine.fr" and e["who"] == "camille"
    assert "PATIENT_DATA_OVERRIDE" in e["symbols"]
    text = relay_config.audit_log.read_text()
    assert NIR not in text and "lombalgie" not in text.lower() and "bilan" not in text.lower()


def test_confrere_mssante_address_from_contacts(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("nom;prénom;email;mssante\nDupont;Jean;;"
                        "jean.dupont@medecin.mssante.fr\n", encoding="utf-8")
    relay_config.patient_data.contacts_file = str(contacts)
    gw = make_gateway(relay_config)
    code, text = send(gw, ["jdupont75@gmail.com"], mail(
        "Dr Jean DUPONT <jdupont75@gmail.com>", "Patient commun",
        "Cher confrère, Mme X présente une capsulite rétractile de l'épaule droite."))
    assert code == 550
    assert "jean.dupont@medecin.mssante.fr" in text


def test_vigie_check_reports_it_all(tmp_path: Path) -> None:
    eml = tmp_path / "bilan.eml"
    eml.write_bytes(mail("patient@gmail.com", "Bilan", BILAN))
    r = subprocess.run([sys.executable, "-m", "gateway", "check", str(eml), "--rcpt",
                        "patient@gmail.com", "--json"], capture_output=True, text=True,
                       timeout=60, check=False, env={"XDG_DATA_HOME": str(tmp_path),
                                                     "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["action"] == "reject"
    assert out["suggestions"] == [f"{NIR}@patient.mssante.fr"]
    symbols = {f["symbol"] for f in out["findings"]}
    assert {"PD_NIR", "PD_DIAGNOSIS", "PATIENT_DATA_WEBMAIL_HIGH"} <= symbols
    nir = next(f for f in out["findings"] if f["symbol"] == "PD_NIR")
    assert nir["evidence"] == [MASKED]
    assert NIR_TEXT not in r.stdout


@pytest.mark.parametrize("body", [
    "Bonjour, je vous confirme le rendez-vous de mardi. Merci d'apporter votre ordonnance "
    "et votre carte vitale.\n\nCamille Martin, masseur-kinésithérapeute\n"
    "Rééducation périnéale - Kinésithérapie respiratoire - Traitement de la scoliose",
    "Pensez à renouveler votre ordonnance avant la fin du mois.",
    "Le cabinet propose la kinésithérapie respiratoire pour les bébés.",
    "Saison de la bronchiolite : le cabinet est ouvert le week-end.",
    "Reprise du sport après une entorse : nos conseils.",
    "5 exercices pour prévenir la tendinite du coude.",
    "Documents à apporter : prescription médicale, carte vitale.",
    "Bonjour,\nà mardi !\n-- \nCamille, kinésithérapeute — lombalgie, sciatique, "
    "cervicalgie, capsulite",
    "Bonjour,\nà mardi !\nCamille Martin\nMasseur-kinésithérapeute D.E.\n"
    "Kinésithérapie du sport, rééducation périnéale, drainage lymphatique",
])
def test_everyday_practice_mail_to_a_patient_is_not_refused(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        body: str) -> None:
    gw = make_gateway(relay_config)
    code, text = send(gw, ["c.leroy@orange.fr"], mail("c.leroy@orange.fr", "Cabinet", body))
    assert code == 250, text


def test_a_refusal_stays_readable_with_hundreds_of_patients(
        make_gateway: MakeGW, relay_config: Config, tmp_path: Path) -> None:
    from gateway.detect.nir import nir_key

    rows = ["nom;nir;diagnostic"]
    for i in range(300):
        first = f"1850578006{i:03d}"
        rows.append(f"Patient {i};{first}{nir_key(first):02d};lombalgie")
    gw = make_gateway(relay_config)
    bcc = [f"p{i}@gmail.com" for i in range(40)]
    code, text = send(gw, bcc, mail("moi@gmail.com", "Liste", "Voici la liste.",
                                    [("Dupont_185057800608491.csv",
                                      "\n".join(rows).encode(), "text/csv")]))
    assert code == 550
    assert all(len(line.encode()) <= 512 for line in text.split("\n"))
    assert "185057800608491" not in text  # not even through the file name
    assert "(+" in text


def test_accented_override_marker_and_nia(make_gateway: MakeGW, relay_config: Config,
                                          upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    code, _ = send(gw, ["patient@gmail.com"],
                   mail("patient@gmail.com", "[envoi-non-sécurisé] Votre bilan", BILAN))
    assert code == 250
    assert b"envoi-non" not in upstream.messages[0].content
    from gateway.detect.nir import nir_key

    nia = "8850599216084"
    code, _ = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "NIA", f"Votre NIA : {nia}{nir_key(nia):02d}"))
    assert code == 550


def test_unreadable_attachment_to_webmail_is_refused_unless_overridden(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    from tests.samples_builder import make_png, make_zip

    gw = make_gateway(relay_config)
    locked = make_zip({"bilan.txt": b"secret"}, password=True)
    code, text = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Documents", "Bonjour, voici les documents.",
        [("dossier.zip", locked, "application/zip")]))
    assert code == 550 and "dossier.zip" in text and "[envoi-non-securise]" in text
    # a photo alone is reported, not refused
    code, _ = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Photo", "La photo de l'exercice.",
        [("exercice.png", make_png(), "image/png")]))
    assert code == 250
    code, _ = send(gw, ["patient@gmail.com"], mail(
        "patient@gmail.com", "Documents [envoi-non-securise]", "Bonjour.",
        [("dossier.zip", locked, "application/zip")]))
    assert code == 250
    assert len(upstream.messages) == 2
    assert AuditLog(relay_config.audit_log).entries()[-1]["level"] == "uninspected"
