"""Reason families and plain-words reasons of held mail."""

from __future__ import annotations

import pytest

from gateway.quarantine.reasons import OTHER, categorize, plain_reasons
from gateway.verdict import Finding, Outcome, Reason


@pytest.mark.parametrize(("symbols", "category"), [
    (["PATIENT_DATA_WEBMAIL_HIGH", "PD_NIR"], "patient_data"),
    (["HYG_NO_DATE", "PD_DIAGNOSIS"], "patient_data"),
    (["SCAN_EXECUTABLE", "SPF_FAIL"], "attachment"),
    (["DIRECTORY_MISMATCH", "HYG_NO_DATE"], "impersonation"),
    (["LOOKALIKE_MSSANTE"], "impersonation"),
    (["HYG_NO_MESSAGE_ID"], "spam"),
    (["SOMETHING_NEW"], "other"),
    ([], "other"),
])
def test_categorize(symbols: list[str], category: str) -> None:
    assert categorize(symbols) == category


def test_outbound_reasons_never_quote_a_check() -> None:
    finding = Finding("patient_data", "PD_DIAGNOSIS", Outcome.HIT,
                      (Reason("termes médicaux : «lombalgie»", "medical terms: «lombalgie»"),))
    reasons = plain_reasons(["PD_DIAGNOSIS"], "outbound", [finding])
    assert reasons == [Reason("termes médicaux dans le message", "medical terms in the message")]


def test_inbound_adds_the_checks_reasons_but_not_the_patient_data_ones() -> None:
    spoof = Finding("dmarc", "DMARC_FAIL", Outcome.FAIL,
                    (Reason("le domaine de l'expéditeur refuse ce serveur", "refused"),))
    pd = Finding("patient_data", "PD_NIR", Outcome.HIT, (Reason("NIR : 1 85 ••", "NIR"),))
    passed = Finding("spf", "SPF_PASS", Outcome.PASS, (Reason("ok", "ok"),))
    reasons = plain_reasons(["DMARC_FAIL", "PD_NIR"], "inbound", [spoof, pd, passed])
    texts = [r.fr for r in reasons]
    assert "le domaine de l'expéditeur refuse ce serveur" in texts
    assert not any("1 85" in t for t in texts) and "ok" not in texts
    assert plain_reasons(["UNKNOWN"], "outbound") == [OTHER]
    assert OTHER not in plain_reasons(["UNKNOWN", "HYG_NO_DATE"], "outbound")


def test_every_reason_of_an_inbound_check_is_kept() -> None:
    """The EICAR mail showed only its first reason (the RLO one)."""
    scan = Finding("attachments", "ATT_MALICIOUS", Outcome.HIT, (
        Reason("nom de fichier trompeur (caractère d'inversion)", "misleading file name"),
        Reason("programme Windows", "Windows program"),
        Reason("EICAR (règle eicar)", "EICAR (rule eicar)")))
    texts = [r.fr for r in plain_reasons(["ATT_MALICIOUS"], "inbound", [scan])]
    assert texts[:3] == ["nom de fichier trompeur (caractère d'inversion)",
                         "programme Windows", "EICAR (règle eicar)"]


def test_shown_evidence_keeps_patient_data_out() -> None:
    from gateway.quarantine.reasons import shown_evidence

    nir = Finding("patient_data", "PD_NIR", Outcome.HIT, (), ("1 85 05 •• ••• ••• 36",))
    terms = Finding("patient_data", "PD_DIAGNOSIS", Outcome.HIT, (), ("lombalgie",))
    webmail = Finding("patient_data", "PATIENT_DATA_WEBMAIL_HIGH", Outcome.HIT, (),
                      ("gmail.com",))
    scan = Finding("attachments", "ATT_MALICIOUS", Outcome.HIT, (), ("facture.pdf.exe",))
    passed = Finding("spf", "SPF_PASS", Outcome.PASS, (), ("ip=192.0.2.1",))
    out = shown_evidence([nir, terms, webmail, scan, passed], "outbound")
    assert out == ["PD_NIR : 1 85 05 •• ••• ••• 36", "PATIENT_DATA_WEBMAIL_HIGH : gmail.com"]
    inbound = shown_evidence([nir, terms, scan, passed], "inbound")
    assert inbound == ["ATT_MALICIOUS : facture.pdf.exe"]
