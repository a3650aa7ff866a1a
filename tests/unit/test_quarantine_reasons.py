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
