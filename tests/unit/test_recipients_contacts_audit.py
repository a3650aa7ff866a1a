"""Recipient classes, the contacts CSV, subject-marker removal and the audit log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.audit import AuditLog
from gateway.config import ConfigError
from gateway.detect.recipients import RecipientClasses, normalise_domain
from gateway.directory import Contacts, fold_name
from gateway.model import remove_from_subject

CLASSES = RecipientClasses.build(["gmail.com", "orange.fr", "wanadoo.fr"], ["cabinet-kine.fr"])


@pytest.mark.parametrize(("address", "cls"), [
    ("patient@gmail.com", "webmail"),
    ("Patient@GMAIL.COM", "webmail"),
    ("x@gmail.com.", "webmail"),
    ("x@smtp.orange.fr", "webmail"),
    ("185057800608491@patient.mssante.fr", "mssante"),
    ("jean.dupont@masseur-kinesitherapeute.mssante.fr", "mssante"),
    ("secretariat@ch-xyz.mssante.fr", "mssante"),
    ("contact@mssante.fr", "mssante"),
    ("x@mssante.fr.evil.example", "other"),
    ("x@mssante-fr.com", "other"),
    ("x@rnssante.fr", "other"),
    ("x@mssanté.fr", "other"),
    ("compta@cabinet-kine.fr", "trusted"),
    ("a@lyon.cabinet-kine.fr", "trusted"),
    ("a@example.org", "other"),
    ("not-an-address", "other"),
])
def test_classify(address: str, cls: str) -> None:
    assert CLASSES.classify(address) == cls


def test_normalise_domain_idna() -> None:
    assert normalise_domain("Exämple.FR.") == "xn--exmple-cua.fr"
    assert normalise_domain("") == ""


def test_shipped_webmail_list_covers_french_isps() -> None:
    from gateway.checks.patient_data import _domain_list
    from gateway.policy import rules_dir

    domains = set(_domain_list(rules_dir() / "webmail_domains.txt"))
    for d in ("gmail.com", "orange.fr", "wanadoo.fr", "free.fr", "sfr.fr", "neuf.fr",
              "laposte.net", "bbox.fr", "numericable.fr", "club-internet.fr", "yopmail.com",
              "icloud.com", "hotmail.fr", "outlook.fr", "proton.me", "skynet.be"):
        assert d in domains


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / "contacts.csv"
    p.write_bytes(text.encode(encoding))
    return p


def test_contacts_csv_lookup_by_address_and_name(tmp_path: Path) -> None:
    p = write_csv(tmp_path, "Nom;Prénom;Email;MSSanté\n"
                            "Dupont;Jean-Pierre;jp.dupont@gmail.com;"
                            "jean-pierre.dupont@medecin.mssante.fr\n"
                            ";;;\n"
                            "Martin;Élodie;;elodie.martin@infirmier.mssante.fr\n")
    c = Contacts.load_csv(p)
    assert len(c.contacts) == 2
    hit = c.lookup("JP.Dupont@gmail.com")
    assert hit is not None and hit.mssante == "jean-pierre.dupont@medecin.mssante.fr"
    by_name = c.lookup("elodie.perso@orange.fr", "Dr MARTIN Elodie")
    assert by_name is not None and by_name.mssante.startswith("elodie.martin@")
    assert c.lookup("someone@gmail.com", "Inconnu") is None


def test_contacts_csv_latin1_and_commas(tmp_path: Path) -> None:
    p = write_csv(tmp_path, "name,email,mssante\nHélène Roux,h@free.fr,"
                            "helene.roux@sage-femme.mssante.fr\n", "cp1252")
    hit = Contacts.load_csv(p).lookup("h@free.fr")
    assert hit is not None and hit.name == "Hélène Roux"


@pytest.mark.parametrize(("text", "line"), [
    ("nom;telephone\nDupont;0102030405\n", 1),
    ("nom;email;mssante\nDupont;d@gmail.com;d@gmail.com\n", 2),
])
def test_contacts_csv_errors_name_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    p = write_csv(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        Contacts.load_csv(p)
    assert str(p) in str(err.value) and f"ligne {line}" in str(err.value)


def test_fold_name() -> None:
    assert fold_name("Dr Jean-Pierre DUPONT") == fold_name("dupont jean pierre")
    assert fold_name("Élodie Martin") == fold_name("MARTIN Elodie")


@pytest.mark.parametrize(("raw", "expected"), [
    (b"From: a\r\nSubject: Bilan [envoi-non-securise]\r\n\r\nx\r\n",
     b"From: a\r\nSubject: Bilan\r\n\r\nx\r\n"),
    (b"Subject: [Envoi-Non-Securise] Bilan\r\n\r\nx\r\n", b"Subject: Bilan\r\n\r\nx\r\n"),
    (b"Subject: Bilan\r\n\r\n[envoi-non-securise]\r\n",
     b"Subject: Bilan\r\n\r\n[envoi-non-securise]\r\n"),
])
def test_remove_marker_literal(raw: bytes, expected: bytes) -> None:
    assert remove_from_subject(raw, "[envoi-non-securise]", "") == expected


def test_remove_marker_from_an_encoded_subject() -> None:
    raw = (b"From: a\r\nSubject: =?UTF-8?Q?Bilan_de_s=C3=A9ance_=5Benvoi-non-securise=5D?=\r\n"
           b"To: b\r\n\r\nbody\r\n")
    out = remove_from_subject(raw, "[envoi-non-securise]",
                              "Bilan de séance [envoi-non-securise]")
    import email
    import email.policy

    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg["subject"] == "Bilan de séance"
    assert out.startswith(b"From: a\r\nSubject: ") and out.endswith(b"\r\nTo: b\r\n\r\nbody\r\n")


def test_audit_log_appends_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "data" / "audit.log")
    log.record("override", sender="camille@cabinet.fr", recipient_domains=["gmail.com"])
    log.record("override", sender="camille@cabinet.fr", recipient_domains=["free.fr"])
    entries = log.entries()
    assert [e["recipient_domains"] for e in entries] == [["gmail.com"], ["free.fr"]]
    assert all(e["event"] == "override" and e["time"] for e in entries)
    assert os.stat(log.path).st_mode & 0o777 == 0o600
