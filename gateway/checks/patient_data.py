"""Outbound patient-data guard: NIRs, diagnoses and medical documents to free webmail.

Glue: loads the rules, asks the shared extraction for text, runs the pure
assessment off the event loop, classifies recipients and reports findings.
The policy decides (by default: reject patient data to webmail).
"""

from __future__ import annotations

import asyncio
import functools
import tomllib
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from gateway.config import Config, ConfigError
from gateway.detect.lexicon import Lexicon
from gateway.detect.nir import ContextWords, NirRules, mask_numbers
from gateway.detect.patient_data import Assessment, AssessRules, assess, unique_terms
from gateway.detect.recipients import PATIENT_DOMAIN, RecipientClasses, domain_of
from gateway.directory import Contacts
from gateway.model import INLINE_LIMIT, Direction, Message, loose_pattern
from gateway.policy import rules_dir
from gateway.verdict import Finding, Outcome, Reason

# More recipients than this: a mailing (newsletter, information), not a patient's file.
BULK_RECIPIENTS = 10
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "tiff", "heic", "bmp", "webp"})
NOT_INSPECTED = {"image_not_inspected", "encrypted", "unsupported", "limit", "error"}
NOTE_FR = {"image_not_inspected": "image ou document scanné, non lu",
           "encrypted": "protégé par mot de passe, non lu",
           "unsupported": "format non lu",
           "limit": "trop gros ou trop imbriqué pour être lu en entier",
           "error": "fichier illisible"}
NOTE_EN = {"image_not_inspected": "image or scanned document, not read",
           "encrypted": "password-protected, not read", "unsupported": "format not read",
           "limit": "too large or too deeply nested to be read whole", "error": "unreadable file"}


@dataclass(frozen=True)
class PatientDataRules:
    assess: AssessRules
    override_marker: str
    classes: RecipientClasses
    contacts: Contacts

    @classmethod
    def load(cls, cfg: Config) -> PatientDataRules:
        folder = rules_dir(cfg)
        path = folder / "patient_data.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            nir = data["nir"]
            rules = AssessRules(
                nir=NirRules(ContextWords(nir["context"]), ContextWords(nir["strong_context"]),
                             ContextWords(nir["negative_context"]),
                             int(nir.get("window_before", 200)),
                             int(nir.get("window_after", 60)),
                             int(nir.get("negative_window", 40))),
                birth_context=ContextWords(data["identifiers"]["birth_context"]),
                weak_markers=frozenset(data["markers"]["weak"]),
                personal_context=ContextWords(data["identifiers"]["personal_context"]),
                general_context=ContextWords(data["identifiers"]["general_context"]),
                personal_window=int(data["identifiers"].get("personal_window", 120)),
            )
            marker = cfg.patient_data.override_marker or str(data["override"]["subject_marker"])
        except FileNotFoundError:
            raise ConfigError("fichier de règles introuvable", "rules file not found",
                              file=str(path)) from None
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"règles illisibles ({exc})", f"unreadable rules ({exc})",
                              file=str(path)) from None
        webmail = _domain_list(folder / "webmail_domains.txt")
        if cfg.patient_data.webmail_file:
            webmail += _domain_list(Path(cfg.patient_data.webmail_file).expanduser())
        free = RecipientClasses.build(webmail)
        for domain in cfg.patient_data.trusted_domains:
            if free.classify(f"x@{domain}") == "webmail":
                raise ConfigError(
                    f"{domain} est une messagerie gratuite : elle ne peut pas être « de "
                    "confiance » pour des données de santé",
                    f"{domain} is a free webmail: it cannot be trusted with health data",
                    file=cfg.source, key="[patient_data] trusted_domains")
        contacts = Contacts.empty()
        if cfg.patient_data.contacts_file:
            contacts = Contacts.load_csv(Path(cfg.patient_data.contacts_file).expanduser())
        return cls(rules, marker,
                   RecipientClasses.build(webmail, cfg.patient_data.trusted_domains), contacts)


def _domain_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"liste de domaines illisible ({exc.strerror})",
                          f"unreadable domain list ({exc.strerror})", file=str(path)) from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


_SOURCE_FR = {"subject": "objet", "body (text/plain)": "texte du message",
              "body (text/html)": "texte du message (HTML)",
              "attachment name": "nom de pièce jointe", "file name": "nom de fichier"}


def source_fr(source: str) -> str:
    source = mask_numbers(source).replace("(member names)", "(noms des fichiers)")
    for en, fr in _SOURCE_FR.items():
        if source == en:
            return fr
        if source.endswith("/" + en):
            return source[: -len(en)] + fr
    return source


_SOURCE_EN = {"body (text/plain)": "message text", "body (text/html)": "message text (HTML)"}


def source_en(source: str) -> str:
    """The English twin of ``source_fr`` (same words, so both halves of a reply match)."""
    source = mask_numbers(source)
    for raw, en in _SOURCE_EN.items():
        if source == raw:
            return en
        if source.endswith("/" + raw):
            return source[: -len(raw)] + en
    return source


def _list(items: list[str], limit: int = 4) -> str:
    """At most ``limit`` items, then '(+N)': a refusal must stay readable."""
    shown = list(dict.fromkeys(items))
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" (+{more})" if more > 0 else "")


def _quote(items: list[str], limit: int = 6) -> str:
    shown = [f"«{i}»" for i in items[:limit]]
    return ", ".join(shown) + (f" (+{len(items) - limit})" if len(items) > limit else "")


class PatientDataCheck:
    name = "patient_data"
    description = ("Patient data (NIR, diagnoses, medical documents) in outbound mail, and "
                   "whether every recipient is a secure health messaging (MSSanté).")

    def __init__(self, rules: PatientDataRules, lexicon: Lexicon) -> None:
        self.rules = rules
        self.lexicon = lexicon

    @classmethod
    def from_config(cls, cfg: Config) -> PatientDataCheck:
        return cls(PatientDataRules.load(cfg), Lexicon.default() if not cfg.rules.dir else
                   Lexicon.load(rules_dir(cfg) / "lexicon_fr.toml"))

    async def run(self, message: Message) -> list[Finding]:
        if message.envelope.direction is not Direction.OUTBOUND:
            return []
        extraction = await message.extraction()
        bulk = len(message.envelope.rcpt_tos) > BULK_RECIPIENTS
        if sum(len(c.text) for c in extraction.chunks) < INLINE_LIMIT:
            assessment = assess(extraction.chunks, self.rules.assess, self.lexicon, bulk=bulk)
        else:
            assessment = await asyncio.to_thread(
                functools.partial(assess, bulk=bulk), extraction.chunks, self.rules.assess,
                self.lexicon)
        findings = self._detail_findings(assessment)
        notes = [n for n in extraction.notes if n.kind in NOT_INSPECTED]
        if notes:
            findings.append(Finding(self.name, "PD_NOT_INSPECTED", Outcome.HIT, (Reason(
                "pièces jointes non inspectées : " + _list([
                    f"{source_fr(n.source)} ({NOTE_FR.get(n.kind, n.kind)})" for n in notes], 3),
                "attachments not inspected: " + _list([
                    f"{source_en(n.source)} ({NOTE_EN.get(n.kind, n.kind)})" for n in notes], 3)),),
                tuple(sorted({n.kind for n in notes}))))
        subject = str(message.parsed.get("subject", "") or "")
        marker = self.rules.override_marker
        override = bool(marker) and loose_pattern(marker).search(subject) is not None
        level = assessment.level
        strip: dict[str, Any] = {"strip_subject_marker": marker} if override else {}
        webmail = sorted({domain_of(r) for r in message.envelope.rcpt_tos
                          if self.rules.classes.classify(r) == "webmail"})
        formats = {a.source: a.format for a in extraction.attachments}
        # A photo is only reported; what could hide a text (a scanned PDF, an
        # encrypted or unreadable file, an archive past the limits) is not let out
        # to webmail unread.
        unread = [n for n in notes if not (n.kind == "image_not_inspected"
                                           and formats.get(n.source, "pdf") in IMAGE_FORMATS)]
        if unread and webmail and level == "none":
            if override:
                findings.append(Finding(self.name, "PATIENT_DATA_OVERRIDE", Outcome.HIT, (Reason(
                    "envoi non sécurisé demandé par le praticien (pièces non lisibles)",
                    "unsecured sending requested by the practitioner (unreadable parts)"),),
                    (), {**strip, "audit": {"event": "override",
                                            "sender": message.envelope.mail_from,
                                            "recipient_domains": webmail,
                                            "level": "uninspected"}}))
                return findings
            parts_fr = _list([source_fr(n.source) for n in unread], 3)
            parts_en = _list([source_en(n.source) for n in unread], 3)
            findings.append(Finding(self.name, "PD_UNINSPECTED_TO_WEBMAIL", Outcome.HIT, (
                Reason(f"destinataire(s) sur une messagerie gratuite ({_list(webmail)}) et "
                       f"pièce(s) que vigie n'a pas pu lire : {parts_fr}",
                       f"recipient(s) on free webmail ({_list(webmail)}) and part(s) vigie "
                       f"could not read: {parts_en}"),
                Reason("si elles contiennent des données de patient, envoyez-les par MSSanté ; "
                       f"sinon, ajoutez {marker} à l'objet et renvoyez",
                       "if they hold patient data, send them through MSSanté; otherwise add "
                       f"{marker} to the subject and send again")), tuple(webmail), strip))
            return findings
        if level == "none":
            if override:  # the marker is ours: never let it reach the recipient
                findings.append(Finding(self.name, "PD_OVERRIDE_UNUSED", Outcome.HIT, (),
                                        (), strip))
            return findings
        findings.append(self._recipients_finding(message, assessment, level, override, strip))
        return findings

    def _detail_findings(self, a: Assessment) -> list[Finding]:
        out: list[Finding] = []
        if a.nirs:
            masked = list(dict.fromkeys(n.nir.masked for n in a.nirs))
            where = list(dict.fromkeys(n.source for n in a.nirs))
            label_fr = "numéro de sécurité sociale" if len(masked) == 1 else (
                f"{len(masked)} numéros de sécurité sociale")
            label_en = "social security number" if len(masked) == 1 else (
                f"{len(masked)} social security numbers")
            out.append(Finding(self.name, "PD_NIR", Outcome.HIT, (Reason(
                f"{label_fr} : {_list(masked, 3)} (dans : "
                f"{_list([source_fr(w) for w in where], 3)})",
                f"{label_en}: {_list(masked, 3)} "
                f"(in: {_list([source_en(w) for w in where], 3)})"),),
                tuple(masked), {"confidence": max((n.nir.confidence for n in a.nirs),
                                                  key=("medium", "high").index)}))
        diagnoses = unique_terms(d for d in a.diagnoses)
        if diagnoses:
            out.append(Finding(self.name, "PD_DIAGNOSIS", Outcome.HIT, (Reason(
                f"termes médicaux : {_quote(diagnoses)}",
                f"medical terms: {_quote(diagnoses)}"),), tuple(diagnoses)))
        markers = unique_terms(a.markers)
        if markers:
            out.append(Finding(self.name, "PD_HEALTH_DOCUMENT", Outcome.HIT, (Reason(
                f"document de santé : {_quote(markers)}",
                f"health document: {_quote(markers)}"),), tuple(markers)))
        if a.birthdates and (diagnoses or markers):
            out.append(Finding(self.name, "PD_BIRTHDATE", Outcome.HIT, (Reason(
                "date de naissance du patient", "patient's date of birth"),), ("••/••/••••",)))
        return out

    def _recipients_finding(self, message: Message, a: Assessment, level: str,
                            override: bool, strip: dict[str, Any]) -> Finding:
        env = message.envelope
        classes = {r: self.rules.classes.classify(r) for r in env.rcpt_tos}
        unsafe = [r for r, c in classes.items() if c == "webmail"]
        other = [r for r, c in classes.items() if c == "other"]
        upper = level.upper()
        if not unsafe:
            symbol = f"PATIENT_DATA_OTHER_{upper}" if other else "PATIENT_DATA_SECURE"
            return Finding(self.name, symbol, Outcome.HIT if other else Outcome.PASS, (Reason(
                f"données de santé vers : {', '.join(sorted({domain_of(r) for r in other}))}",
                f"health data to: {', '.join(sorted({domain_of(r) for r in other}))}"),)
                if other else (), (), {**strip, "recipient_classes": classes})
        domains = sorted({domain_of(r) for r in unsafe})
        audit = {"event": "override", "sender": env.mail_from, "recipient_domains": domains,
                 "level": level}
        if override:
            return Finding(self.name, "PATIENT_DATA_OVERRIDE", Outcome.HIT, (Reason(
                "envoi non sécurisé demandé par le praticien (consentement du patient)",
                "unsecured sending requested by the practitioner (patient's consent)"),),
                (), {**strip, "audit": audit})
        suggestions, fr, en = self._advice(message, a, unsafe)
        reasons = (
            Reason(f"destinataire(s) non sécurisé(s) : {_list(unsafe)} — une messagerie "
                   "gratuite n'est pas une messagerie de santé sécurisée (MSSanté)",
                   f"unsecured recipient(s): {_list(unsafe)} — free webmail is not a "
                   "secure health messaging (MSSanté)"),
            *(Reason(f, e) for f, e in zip(fr, en, strict=True)),
            Reason(f"si le patient a demandé expressément un envoi par messagerie ordinaire : "
                   f"ajoutez {self.rules.override_marker} à l'objet et renvoyez",
                   f"if the patient explicitly asked for ordinary mail: add "
                   f"{self.rules.override_marker} to the subject and send again"),
        )
        return Finding(self.name, f"PATIENT_DATA_WEBMAIL_{upper}", Outcome.HIT, reasons,
                       tuple(domains), {"suggestions": suggestions})

    def _advice(self, message: Message, a: Assessment, unsafe: list[str]
                ) -> tuple[list[str], list[str], list[str]]:
        suggestions: list[str] = []
        fr: list[str] = []
        en: list[str] = []
        names = {}
        for field_name in ("to", "cc"):
            for name, addr in getaddresses([str(v) for v in message.parsed.get_all(field_name,
                                                                                   [])]):
                names[addr.lower()] = name
        for rcpt in unsafe:
            contact = self.rules.contacts.lookup(rcpt, names.get(rcpt.lower(), ""))
            if contact is not None:
                suggestions.append(contact.mssante)
                fr.append(f"pour {contact.name or rcpt}, utilisez son adresse MSSanté : "
                          f"{contact.mssante}")
                en.append(f"for {contact.name or rcpt}, use their MSSanté address: "
                          f"{contact.mssante}")
        matricules = a.distinct_matricules()
        if len(matricules) == 1 and len(suggestions) < len(unsafe):
            address = f"{matricules[0]}@{PATIENT_DOMAIN}"
            suggestions.append(address)
            fr.append(f"écrivez plutôt au patient sur sa messagerie santé : {address} (seul un "
                      "INS qualifié est fiable ; pour un enfant, c'est son propre numéro)")
            en.append(f"write to the patient's health messaging instead: {address} (only a "
                      "qualified INS is reliable; for a child, it is the child's own number)")
        elif len(suggestions) < len(unsafe):
            fr.append("envoyez-le par votre messagerie sécurisée de santé (MSSanté) : adresse "
                      "du patient <matricule INS>@patient.mssante.fr")
            en.append("send it through your secure health messaging (MSSanté): the patient's "
                      "address is <INS number>@patient.mssante.fr")
        return suggestions, fr, en
