"""Why a message was held, in plain words, and which family of reason it belongs to.

Outbound mail is described from its symbols only: a check's own reason text may
quote what it found (a medical term, a recipient address), which must never reach
a listing or the digest. Inbound mail may add its checks' reasons (they describe the
sender, not a patient).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.verdict import Finding, Outcome, Reason

# (symbol prefix, category, reason): the first matching prefix wins.
_TABLE: tuple[tuple[str, str, Reason], ...] = (
    ("PATIENT_DATA_WEBMAIL", "patient_data", Reason(
        "données de patient vers une messagerie gratuite (non sécurisée)",
        "patient data to a free webmail (not secure)")),
    ("PATIENT_DATA_OTHER", "patient_data", Reason(
        "données de patient vers une adresse hors messagerie de santé",
        "patient data to an address outside health messaging")),
    ("PATIENT_DATA", "patient_data", Reason(
        "données de patient vers une messagerie non sécurisée",
        "patient data to an unsecured mailbox")),
    ("PD_NIR", "patient_data", Reason("numéro de sécurité sociale dans le message",
                                      "social security number in the message")),
    ("PD_DIAGNOSIS", "patient_data", Reason("termes médicaux dans le message",
                                            "medical terms in the message")),
    ("PD_HEALTH_DOCUMENT", "patient_data", Reason("document de santé joint ou cité",
                                                  "health document attached or quoted")),
    ("PD_BIRTHDATE", "patient_data", Reason("date de naissance d'un patient",
                                            "a patient's date of birth")),
    ("PD_NOT_INSPECTED", "patient_data", Reason("pièces jointes que vigie n'a pas pu lire",
                                                "attachments vigie could not read")),
    ("PD_", "patient_data", Reason("données de patient possibles", "possible patient data")),
    ("EICAR", "attachment", Reason("pièce jointe de test antivirus", "antivirus test file")),
    ("VIRUS", "attachment", Reason("pièce jointe infectée", "infected attachment")),
    ("MALWARE", "attachment", Reason("pièce jointe malveillante", "malicious attachment")),
    ("YARA", "attachment", Reason("pièce jointe reconnue comme dangereuse",
                                  "attachment recognised as dangerous")),
    ("MACRO", "attachment", Reason("document avec macros", "document with macros")),
    ("OLE", "attachment", Reason("document Office suspect", "suspicious Office document")),
    ("ATT_MALICIOUS", "attachment", Reason("pièce jointe dangereuse", "dangerous attachment")),
    ("ATT_SUSPICIOUS", "attachment", Reason("pièce jointe suspecte", "suspicious attachment")),
    ("ATT_NOT_INSPECTED", "attachment", Reason("pièce jointe que vigie n'a pas pu examiner",
                                               "attachment vigie could not inspect")),
    ("ATT_", "attachment", Reason("pièce jointe dangereuse", "dangerous attachment")),
    ("ATTACH", "attachment", Reason("pièce jointe dangereuse", "dangerous attachment")),
    ("SCAN", "attachment", Reason("pièce jointe dangereuse", "dangerous attachment")),
    ("ARCHIVE", "attachment", Reason("archive suspecte", "suspicious archive")),
    ("EXEC", "attachment", Reason("programme en pièce jointe", "program attached")),
    ("DIRECTORY", "impersonation", Reason(
        "l'adresse ne correspond pas à celle connue de ce confrère",
        "the address does not match this colleague's known one")),
    ("DIR_", "impersonation", Reason(
        "l'adresse ne correspond pas à celle connue de ce confrère",
        "the address does not match this colleague's known one")),
    ("IMP_LOOKALIKE", "impersonation", Reason("domaine qui en imite un autre",
                                              "domain imitating another")),
    ("IMP_", "impersonation", Reason("faux confrère suspecté", "suspected fake colleague")),
    ("AUTH_", "impersonation", Reason("l'expéditeur n'a pas pu être vérifié",
                                      "the sender could not be verified")),
    ("LOOKALIKE", "impersonation", Reason("domaine qui en imite un autre",
                                          "domain imitating another")),
    ("IMPERSON", "impersonation", Reason("expéditeur qui se fait passer pour un autre",
                                         "sender pretending to be someone else")),
    ("SPOOF", "impersonation", Reason("expéditeur falsifié", "forged sender")),
    ("DMARC", "impersonation", Reason("l'expéditeur n'a pas pu être authentifié",
                                      "the sender could not be authenticated")),
    ("SPF", "impersonation", Reason("l'expéditeur n'a pas pu être authentifié",
                                    "the sender could not be authenticated")),
    ("DKIM", "impersonation", Reason("signature de l'expéditeur invalide",
                                     "invalid sender signature")),
    ("ARC", "impersonation", Reason("chaîne de transfert non vérifiable",
                                    "forwarding chain not verifiable")),
    ("FAKE", "impersonation", Reason("faux confrère suspecté", "suspected fake colleague")),
    ("SPAM", "spam", Reason("ressemble à du spam", "looks like spam")),
    ("BULK", "spam", Reason("envoi en masse", "bulk mail")),
    ("RBL", "spam", Reason("expéditeur sur une liste de spam", "sender on a spam list")),
    ("HYG", "spam", Reason("message mal formé", "malformed message")),
)
_ORDER = ("patient_data", "attachment", "impersonation", "spam", "other")
OTHER = Reason("autre raison (voir la console)", "other reason (see the console)")

CATEGORY_TITLES: dict[str, Reason] = {
    "patient_data": Reason("Données de patient vers une messagerie non sécurisée",
                           "Patient data to an unsecured mailbox"),
    "impersonation": Reason("Faux confrère suspecté", "Suspected fake colleague"),
    "attachment": Reason("Pièce jointe dangereuse", "Dangerous attachment"),
    "spam": Reason("Ressemble à du spam", "Spam-like"),
    "other": Reason("Autres raisons", "Other reasons"),
}


def _match(symbol: str) -> tuple[str, Reason] | None:
    for prefix, category, reason in _TABLE:
        if symbol.startswith(prefix):
            return category, reason
    return None


def categorize(symbols: Iterable[str]) -> str:
    """The reason family of a held message (patient data first, then attachments…)."""
    found = {m[0] for m in map(_match, symbols) if m is not None}
    return next((c for c in _ORDER if c in found), "other")


def plain_reasons(symbols: Sequence[str], direction: str,
                  findings: Sequence[Finding] = ()) -> list[Reason]:
    """Reasons to show: from the symbols (both directions); for inbound mail, the
    checks' own reasons too (never those of the patient data check)."""
    out: list[Reason] = []
    if direction == "inbound":
        # the checks' own words first, the fake-confrère ones before the others: they
        # say best what is wrong («se présente comme venant de la messagerie sécurisée…»)
        ordered = sorted(findings, key=lambda f: f.check != "impersonation")
        for f in ordered:
            if f.outcome in (Outcome.PASS, Outcome.NONE) or f.symbol.startswith(
                    ("PD_", "PATIENT_DATA")) or f.check == "patient_data":
                continue
            for reason in f.reasons:  # every reason: «programme Windows», «EICAR»…
                if reason not in out:
                    out.append(reason)
    for symbol in symbols:
        m = _match(symbol)
        reason = m[1] if m is not None else OTHER
        if reason not in out:
            out.append(reason)
    if len(out) > 1 and OTHER in out:
        out.remove(OTHER)
    return out[:12]


# Outbound evidence that may be shown: masked numbers and dates, recipient domains.
# Never the medical terms or document markers found (they are the patient data), nor
# file names or headers of the practice's own mail.
_OUTBOUND_EVIDENCE = ("PD_NIR", "PD_BIRTHDATE", "PATIENT_DATA_WEBMAIL", "PATIENT_DATA_OTHER")


def shown_evidence(findings: Sequence[Finding], direction: str) -> list[str]:
    """The checks' evidence (already masked by them) that the console may show, as
    «SYMBOL : evidence» lines: for inbound mail everything but the patient data
    check's; for outbound mail only masked numbers, masked dates and domains."""
    out: list[str] = []
    for f in findings:
        if f.outcome in (Outcome.PASS, Outcome.NONE) or not f.evidence:
            continue
        if direction == "outbound":
            if not f.symbol.startswith(_OUTBOUND_EVIDENCE):
                continue
        elif f.check == "patient_data" or f.symbol.startswith(("PD_", "PATIENT_DATA")):
            continue
        for item in f.evidence:
            line = f"{f.symbol} : {' '.join(str(item).split())}"[:200]
            if line not in out:
                out.append(line)
    return out[:20]
