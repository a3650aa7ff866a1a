"""Seeded, labelled corpus for the patient-data bench: practice mail, look-alike numbers, text.

Everything comes from templates written for vigie (letters to doctors, bilans
kinésithérapiques, invoices, appointment reminders, newsletters…) driven by one
``random.Random(seed)``: the same seed gives the same mails, byte for byte.
POSITIVES carry valid NIRs in every written form and lexicon diagnoses
(inflected) in every supported container; NEGATIVES carry look-alike numbers
(IBAN, SIRET, RPPS, phones, parcels…) and ordinary French. Each mail says what
a perfect detector would report and where.

Numbers are built and checked with code of their own (python-stdnum and the
structure rules of DOMAIN.md), never with the detectors under test; the term
list is read from ``rules/lexicon_fr.toml`` by a parser of this module.
"""

from __future__ import annotations

import csv
import io
import random
import re
import tomllib
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from html import escape
from pathlib import Path

from stdnum.fr import nir as stdnum_nir

from tests.samples_builder import (
    _assemble_pdf,
    make_docx,
    make_ods,
    make_odt,
    make_pdf,
    make_pptx,
    make_rtf,
    make_xlsx,
    make_zip,
)

ROOT = Path(__file__).resolve().parent.parent
LEXICON_FILE = ROOT / "rules" / "lexicon_fr.toml"

Cell = str | int

# Where a labelled item sits. "body" is the text/plain part, "html" the text/html
# part, "eml" the body of a nested message/rfc822, "zip" a member of a zip
# attachment, "zip-in-zip" a member of a zip inside a zip; the others are
# attachments of that format.
CONTAINERS = ("body", "html", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "rtf", "txt",
              "csv", "eml", "zip", "zip-in-zip")
ATTACHMENT_CONTAINERS = CONTAINERS[2:]
TABLE_CONTAINERS = frozenset({"xlsx", "ods", "csv"})

NIR_FORMS = ("compact", "grouped", "nbsp", "narrow-nbsp", "dots", "dashes", "key-after-cle",
             "line-break", "13+key", "keyless-13")
TERM_INFLECTIONS = ("as-is", "plural", "capitalised", "upper", "upper-no-accents",
                    "no-accents", "oe-spelt", "hyphen-as-space", "curly-apostrophe",
                    "line-break")

MIME = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "rtf": "application/rtf",
    "txt": "text/plain",
    "csv": "text/csv",
    "zip": "application/zip",
}


# --------------------------------------------------------------------------- NIR maths

_GROUPS = (1, 2, 2, 2, 3, 3, 2)
_VALID_MONTHS = frozenset((*range(1, 13), *range(20, 43), *range(50, 100)))


def nir_key(first13: str) -> int:
    """97 − (first 13 digits mod 97), 2A → 19 and 2B → 18 first (DOMAIN.md)."""
    digits = first13[:5] + first13[5:7].upper().replace("2A", "19").replace("2B", "18") \
        + first13[7:13]
    return 97 - int(digits) % 97


def nir_structure_ok(value: str) -> bool:
    """Positions 1–13 follow DOMAIN.md (sex, month, place, order); no key check."""
    v = value.upper()
    if not re.fullmatch(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{6}", v[:13]):
        return False
    keyless = len(v) == 13
    if v[0] not in ("1234" + ("78" if keyless else "")):
        return False
    if int(v[3:5]) not in _VALID_MONTHS or v[10:13] == "000":
        return False
    dep, com = v[5:7], v[7:10]
    if dep in ("2A", "2B"):
        return com != "000"
    d = int(dep)
    if 1 <= d <= 96:
        return com != "000"
    if d == 97:
        return com[0] in "12345678" and com[1:] != "00"
    if d == 98:
        return com[0] in "123456789" and com[1:] != "00"
    if d == 99:
        return com != "000"
    return False


def independent_nir_valid(value: str) -> bool:
    """A 15-character NIR valid by python-stdnum (format, key) and DOMAIN.md structure."""
    v = value.strip().upper()
    return len(v) == 15 and stdnum_nir.is_valid(v) and nir_structure_ok(v) \
        and nir_key(v[:13]) == int(v[13:])


def random_nir(rng: random.Random, *, corsica: bool = False) -> str:
    """A random NIR, valid by construction (15 characters, key included)."""
    while True:
        sex = rng.choice("1212121212121234")
        yy = rng.randint(0, 99)
        roll = rng.random()
        month = rng.randint(1, 12) if roll < 0.86 else (
            rng.choice([*range(20, 31), *range(50, 100)]) if roll < 0.94 else rng.randint(31, 42))
        if corsica:
            yy = rng.choice([*range(76, 100), *range(0, 25)])
            place = rng.choice(("2A", "2B")) + f"{rng.randint(1, 366):03d}"
        else:
            roll = rng.random()
            if roll < 0.82:
                dep = rng.choice([d for d in range(1, 96) if d != 20])
                place = f"{dep:02d}{rng.randint(1, 999):03d}"
            elif roll < 0.90:
                place = f"97{rng.randint(1, 6)}{rng.randint(1, 99):02d}"
            else:
                place = f"99{rng.randint(100, 999):03d}"
        first13 = f"{sex}{yy:02d}{month:02d}{place}{rng.randint(1, 999):03d}"
        value = first13 + f"{nir_key(first13):02d}"
        if independent_nir_valid(value):
            return value


def nir_groups(value: str) -> list[str]:
    out: list[str] = []
    pos = 0
    for size in _GROUPS:
        if pos >= len(value):
            break
        out.append(value[pos:pos + size])
        pos += size
    return out


def write_nir(value: str, form: str, rng: random.Random) -> tuple[str, str]:
    """The NIR as written in ``form``, and the value a detector should report."""
    g = nir_groups(value)
    first13, key = value[:13], value[13:]
    if form == "compact":
        return value, value
    if form == "grouped":
        return " ".join(g), value
    if form == "nbsp":
        return "\u00a0".join(g), value
    if form == "narrow-nbsp":
        return "\u202f".join(g), value
    if form == "dots":
        return ".".join(g), value
    if form == "dashes":
        return "-".join(g), value
    if form == "key-after-cle":
        style = rng.randrange(4)
        if style == 0:
            return f"{' '.join(g[:6])} clé {key}", value
        if style == 1:
            return f"{first13} clé {key}", value
        if style == 2:
            return f"{' '.join(g[:6])} (clé : {key})", value
        return f"{' '.join(g[:6])} Clé {key}", value
    if form == "line-break":
        cut = rng.randint(2, 6)
        return " ".join(g[:cut]) + "\n" + " ".join(g[cut:]), value
    if form == "13+key":
        return f"{first13} {key}", value
    if form == "keyless-13":
        return (first13 if rng.random() < 0.5 else " ".join(g[:6])), first13
    raise ValueError(form)


# --------------------------------------------------------------------------- lexicon

_GROUP_RE = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True, slots=True)
class LexEntry:
    term: str
    category: str
    kind: str
    forms: tuple[str, ...]
    exact_case: bool
    weak: bool
    unless_next: tuple[str, ...]


def expand_form(form: str) -> list[str]:
    """``"prothèse (totale|) de hanche"`` → both forms; ``"(a)"`` is optional."""
    m = _GROUP_RE.search(form)
    if m is None:
        return [" ".join(form.split())]
    alternatives = m.group(1).split("|")
    if len(alternatives) == 1:
        alternatives.append("")
    out: list[str] = []
    for alt in alternatives:
        out.extend(expand_form(form[:m.start()] + alt + form[m.end():]))
    return out


def load_lexicon_terms(path: Path = LEXICON_FILE) -> list[LexEntry]:
    """Every entry of the rules file with its surface forms expanded (our own reader)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out: list[LexEntry] = []
    for group in data.get("group", []):
        category = str(group["category"])
        group_kind = str(group.get("kind", "diagnosis"))
        for item in group["entries"]:
            entry = {"term": item} if isinstance(item, str) else dict(item)
            term = str(entry["term"])
            forms: list[str] = []
            for raw in [term, *entry.get("variants", [])]:
                for form in expand_form(str(raw)):
                    if form and form not in forms:
                        forms.append(form)
            out.append(LexEntry(term, category, str(entry.get("kind", group_kind)),
                                tuple(forms), bool(entry.get("exact_case", False)),
                                entry.get("context", "") == "health",
                                tuple(str(x) for x in entry.get("unless_next", []))))
    return out


def diagnosis_entries(entries: Sequence[LexEntry]) -> list[LexEntry]:
    return [e for e in entries if e.kind == "diagnosis" and not e.weak]


_FUNCTION = frozenset((
    "à", "a", "au", "aux", "d", "de", "des", "du", "en", "et", "l", "la", "le", "les", "ou",
    "par", "pour", "sa", "sans", "se", "ses", "son", "sur", "sous", "un", "une", "avec"))


def strip_accents(text: str) -> str:
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed
                                                if not unicodedata.combining(c)))


_NO_PLURAL = frozenset(("genu", "valgum", "varum", "spina", "bifida", "hallux", "valgus",
                        "rigidus", "metatarsus", "adductus", "varus", "bot", "a", "frigore"))


def _plural_word(word: str) -> str:
    if word[-1:] in ("s", "x", "z") or not word[-1:].isalpha() or word.lower() in _NO_PLURAL \
            or word.endswith(("ément", "amment", "emment")):  # Latin, adverbs
        return word
    if word.lower() == "genou":
        return word + "x"
    if word.endswith("al"):
        return word[:-2] + "aux"
    if word.endswith(("eau", "au", "eu")):
        return word + "x"
    return word + "s"


def pluralise(form: str) -> str:
    """Plural of the head noun phrase: words up to the first function word or apostrophe."""
    words = form.split(" ")
    out: list[str] = []
    stop = False
    for word in words:
        if stop or word.lower() in _FUNCTION or "'" in word or "’" in word \
                or word[:1].isupper() or word[:1].isdigit():
            stop = stop or word.lower() in _FUNCTION or "'" in word
            out.append(word)
            continue
        out.append("-".join(_plural_word(part) for part in word.split("-")))
    return " ".join(out)


def inflect(form: str, inflection: str, entry: LexEntry, rng: random.Random) -> str | None:
    """``form`` written with ``inflection``; None when it does not apply to this form."""
    if entry.exact_case:
        return form if inflection == "as-is" else None
    if inflection == "as-is":
        return form
    if inflection == "plural":
        out = pluralise(form)
        return out if out != form else None
    if inflection == "capitalised":
        return form[:1].upper() + form[1:]
    if inflection == "upper":
        return form.upper() if form.upper() != strip_accents(form).upper() else None
    if inflection == "upper-no-accents":
        return strip_accents(form).upper()
    if inflection == "no-accents":
        out = strip_accents(form)
        return out if out != form else None
    if inflection == "oe-spelt":
        return form.replace("œ", "oe") if "œ" in form else None
    if inflection == "hyphen-as-space":
        return form.replace("-", " ") if "-" in form else None
    if inflection == "curly-apostrophe":
        return form.replace("'", "’") if "'" in form else None
    if inflection == "line-break":
        spaces = [i for i, c in enumerate(form) if c == " "]
        if not spaces:
            return None
        cut = rng.choice(spaces)
        return form[:cut] + "\n" + form[cut + 1:]
    raise ValueError(inflection)


# --------------------------------------------------------------------------- look-alikes


def luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _grouped(value: str, sizes: Sequence[int], sep: str = " ") -> str:
    out: list[str] = []
    pos = 0
    for size in sizes:
        out.append(value[pos:pos + size])
        pos += size
    if pos < len(value):
        out.append(value[pos:])
    return sep.join(p for p in out if p)


def french_iban(rng: random.Random) -> str:
    bank, branch, account = _digits(rng, 5, "123"), _digits(rng, 5), _digits(rng, 11)
    rib_key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib_key:02d}"
    check = 98 - int(bban + "152700") % 97
    return f"FR{check:02d}{bban}"


def _phone(rng: random.Random) -> str:
    number = "0" + rng.choice("12345679") + _digits(rng, 8)
    style = rng.randrange(5)
    if style == 0:
        return _grouped(number, (2, 2, 2, 2, 2))
    if style == 1:
        return _grouped(number, (2, 2, 2, 2, 2), ".")
    if style == 2:
        return "+33 " + number[1] + " " + _grouped(number[2:], (2, 2, 2, 2))
    if style == 3:
        return number
    return _grouped(number, (2, 2, 2, 2, 2)) + " / " + _grouped(
        "06" + _digits(rng, 8), (2, 2, 2, 2, 2))


def _siren(rng: random.Random) -> str:
    base = _digits(rng, 8, "123456789")
    return base + luhn_digit(base)


def _siret(rng: random.Random) -> str:
    base = _siren(rng) + f"{rng.randint(1, 99):04d}"
    return base + luhn_digit(base)


def _date(rng: random.Random) -> str:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2019, 2026)
    style = rng.randrange(6)
    if style == 0:
        return f"{d:02d}/{m:02d}/{y}"
    if style == 1:
        return f"{d:02d}.{m:02d}.{y}"
    if style == 2:
        return f"{y}-{m:02d}-{d:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:" \
               f"{rng.randint(0, 59):02d}"
    if style == 3:
        return f"{d:02d} {m:02d} {y}"
    if style == 4:
        return f"{d:02d}/{m:02d}/{y} {rng.randint(8, 19):02d}:{rng.randint(0, 59):02d}"
    return f"{y}{m:02d}{d:02d}{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}" \
           f"{rng.randint(0, 59):02d}"


def _amount(rng: random.Random) -> str:
    value = rng.randint(100, 99_999_999)
    euros = f"{value // 100:,}".replace(",", rng.choice((" ", "\u202f", "\u00a0", ".")))
    return f"{euros},{value % 100:02d} {rng.choice(('€', 'EUR'))}"


def _card(rng: random.Random) -> str:
    base = rng.choice("45") + _digits(rng, 14)
    return _grouped(base + luhn_digit(base), (4, 4, 4, 4))


def _ean13(rng: random.Random) -> str:
    base = "3" + _digits(rng, 11)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(base))
    return base + str((10 - total % 10) % 10)


def _nir_wrong_key(rng: random.Random) -> str:
    value = random_nir(rng)
    bad = (int(value[13:]) + rng.randint(1, 96) - 1) % 97 + 1
    return rng.choice((lambda v: v, lambda v: " ".join(nir_groups(v))))(
        value[:13] + f"{bad:02d}")


def _nir_bad_structure(rng: random.Random) -> str:
    """NIR-shaped, key computed, but a month, department or order that cannot exist."""
    while True:
        sex = rng.choice("1256")
        month = rng.choice([0, 13, 14, 15, 16, 17, 18, 19, 43, 44, 45, 46, 47, 48, 49])
        dep = rng.choice(["00", "20", "96", "97", "98", "99"]) if sex in "12" else "75"
        com = "000" if dep == "20" else f"{rng.randint(0, 999):03d}"
        first13 = f"{sex}{rng.randint(0, 99):02d}{month:02d}{dep}{com}{rng.randint(0, 999):03d}"
        value = first13 + f"{nir_key(first13):02d}"
        if not independent_nir_valid(value):
            return " ".join(nir_groups(value)) if rng.random() < 0.5 else value


def _parcel(rng: random.Random) -> str:
    style = rng.randrange(6)
    if style == 0:
        return rng.choice(("6A", "8R", "6C", "5V")) + _digits(rng, 11)
    if style == 1:
        return rng.choice("XYEC") + rng.choice("ABJPW") + _digits(rng, 9) + "FR"
    if style == 2:
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
                              for _ in range(16))
    if style == 3:
        return _grouped(_digits(rng, 14), (4, 4, 4, 2))
    if style == 4:
        return _digits(rng, 10)
    return _digits(rng, 15)


def _invoice(rng: random.Random) -> str:
    style = rng.randrange(5)
    year = rng.randint(2019, 2026)
    if style == 0:
        return f"FA-{year}-{rng.randint(1, 99999):05d}"
    if style == 1:
        return f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{_digits(rng, 5)}"
    if style == 2:
        return f"F{year}{_digits(rng, 9)}"
    if style == 3:
        return f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}"
    return f"{year}/{_digits(rng, 6)}"


LOOKALIKE_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "random-15": lambda r: _digits(r, 15),
    "random-15-grouped-like-nir": lambda r: " ".join(nir_groups(_digits(r, 15))),
    "random-15-nbsp-grouped": lambda r: "\u00a0".join(nir_groups(_digits(r, 15))),
    "random-13": lambda r: _digits(r, 13),
    "random-run": lambda r: _digits(r, r.choice((8, 10, 12, 14, 16, 17, 18, 20, 24))),
    "iban": lambda r: _grouped(french_iban(r), (4,) * 7),
    "iban-compact": french_iban,
    "iban-fragment": lambda r: _grouped(french_iban(r)[4:], (4,) * 6),
    "rib": lambda r: (lambda i: f"{i[4:9]} {i[9:14]} {i[14:25]} {i[25:27]}")(french_iban(r)),
    "phone": _phone,
    "siret": lambda r: r.choice((lambda s: _grouped(s, (3, 3, 3, 5)), lambda s: s))(_siret(r)),
    "siren": lambda r: r.choice((lambda s: _grouped(s, (3, 3, 3)), lambda s: s))(_siren(r)),
    "rpps": lambda r: (lambda b: b + luhn_digit(b))("10" + _digits(r, 8)),
    "rpps-national-id": lambda r: (lambda b: "8" + b + luhn_digit(b))("10" + _digits(r, 8)),
    "adeli": lambda r: _digits(r, 9, "123456789"),
    "tva": lambda r: (lambda s: f"FR {int(s) % 97:02d} {s}")(_siren(r)),
    "invoice": _invoice,
    "parcel": _parcel,
    "date": _date,
    "amount": _amount,
    "card": _card,
    "ean13": _ean13,
    "timestamp-ms": lambda r: str(r.randint(1_500_000_000_000, 1_800_000_000_000)),
    "fiscal-13": lambda r: _digits(r, 13, "0123"),
    "nir-wrong-key": _nir_wrong_key,
    "nir-bad-structure": _nir_bad_structure,
}

# How often each category appears among the look-alikes (relative weights).
LOOKALIKE_WEIGHTS: dict[str, int] = {
    "random-15": 14, "random-15-grouped-like-nir": 8, "random-15-nbsp-grouped": 3,
    "random-13": 6, "random-run": 6, "iban": 5, "iban-compact": 2, "iban-fragment": 4,
    "rib": 3, "phone": 8, "siret": 5, "siren": 3, "rpps": 4, "rpps-national-id": 2,
    "adeli": 2, "tva": 2, "invoice": 4, "parcel": 5, "date": 4, "amount": 3, "card": 2,
    "ean13": 2, "timestamp-ms": 2, "fiscal-13": 2, "nir-wrong-key": 4, "nir-bad-structure": 4,
}

_LABELS: dict[str, tuple[str, ...]] = {
    "iban": ("IBAN : {x}", "Merci de régler par virement sur l'IBAN {x}.",
             "Coordonnées bancaires — IBAN {x}"),
    "iban-compact": ("IBAN {x}", "Nouvel IBAN du cabinet : {x}"),
    "iban-fragment": ("RIB joint, compte {x}.", "Virement reçu du compte {x}."),
    "rib": ("RIB : {x}", "Relevé d'identité bancaire : {x}"),
    "phone": ("Tél. {x}", "Pour toute question, appelez le {x}.", "Portable : {x}",
              "Fax {x}"),
    "siret": ("SIRET {x}", "N° SIRET : {x}"),
    "siren": ("SIREN {x}", "RCS Rennes {x}"),
    "rpps": ("RPPS {x}", "N° RPPS : {x}"),
    "rpps-national-id": ("Identifiant national : {x}", "N° RPPS (national) : {x}"),
    "adeli": ("ADELI {x}", "N° ADELI : {x}"),
    "tva": ("TVA intracommunautaire : {x}", "N° TVA {x}"),
    "invoice": ("Facture n° {x}", "Votre facture {x} est disponible.", "Commande {x}"),
    "parcel": ("Colis n° {x}", "Numéro de suivi : {x}", "Votre colis {x} est en route."),
    "date": ("Date : {x}", "Envoyé le {x}", "Échéance au {x}"),
    "amount": ("Montant : {x}", "Total TTC {x}"),
    "card": ("Carte bancaire {x}", "Paiement par carte {x} accepté."),
    "ean13": ("EAN {x}", "Code-barres : {x}"),
    "timestamp-ms": ("horodatage {x}", "transaction {x}"),
    "fiscal-13": ("Numéro fiscal : {x}", "Référence de l'avis : {x}"),
}
_BARE: tuple[str, ...] = (
    "Merci de noter le numéro {x} dans vos papiers.",
    "Le numéro {x} figure en bas de la page.",
    "J'ai bien reçu le courrier portant le numéro {x}.",
    "Pouvez-vous vérifier le numéro {x} avant jeudi ?",
    "{x}",
    "Numéro : {x}",
    "Le code {x} vous sera demandé à l'accueil.",
    "Voir le document {x} ci-joint.",
    "Indiquez {x} dans le champ prévu à cet effet.",
    "Dossier {x} — merci de rappeler ce numéro dans votre réponse.",
    "Bonjour, voici le numéro demandé : {x}. Bonne journée.",
    "Le bordereau {x} accompagne l'envoi.",
)


@dataclass(frozen=True, slots=True)
class Lookalike:
    category: str
    written: str
    sentence: str
    labelled: bool       # written with its own label word (IBAN, SIRET, Tél.…)
    nir_by_chance: str   # the 15-char value when the whole number is a valid NIR, else ""


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text).upper()


def nir_by_chance(written: str) -> str:
    """The NIR that ``written`` is, when the whole number is a valid NIR by chance."""
    value = _alnum(written)
    return value if len(value) == 15 and independent_nir_valid(value) else ""


def could_be_nir(written: str) -> bool:
    """The whole number is a NIR: 15 characters with a valid key, or 13 well-formed ones.

    Only whole numbers: a NIR a detector carves out of a longer number (an IBAN,
    two phone numbers) is not a NIR, and reporting it is a false finding.
    """
    value = _alnum(written)
    return independent_nir_valid(value) or (len(value) == 13 and nir_structure_ok(value))


def make_lookalike(rng: random.Random, category: str | None = None,
                   labelled: bool | None = None) -> Lookalike:
    if category is None:
        names = list(LOOKALIKE_WEIGHTS)
        category = rng.choices(names, weights=[LOOKALIKE_WEIGHTS[n] for n in names])[0]
    written = LOOKALIKE_MAKERS[category](rng)
    if labelled is None:
        labelled = category in _LABELS and rng.random() < 0.5
    templates = _LABELS[category] if labelled and category in _LABELS else _BARE
    sentence = rng.choice(templates).replace("{x}", written)
    return Lookalike(category, written, sentence, labelled and category in _LABELS,
                     nir_by_chance(written))


def lookalike_sentences(seed: int, count: int) -> list[Lookalike]:
    """``count`` look-alike numbers, each in a neutral or a labelled sentence."""
    rng = random.Random(seed)
    return [make_lookalike(rng) for _ in range(count)]


def safe_lookalike(rng: random.Random, category: str | None = None,
                   labelled: bool | None = None) -> Lookalike:
    """A look-alike for a negative mail: never a NIR, not even inside the number."""
    while True:
        item = make_lookalike(rng, category, labelled)
        if not could_be_nir(item.written):
            return item


# --------------------------------------------------------------------------- French text

PRENOMS_F = ("Camille", "Léa", "Chloé", "Manon", "Inès", "Sophie", "Nathalie", "Isabelle",
             "Hélène", "Françoise", "Amélie", "Océane", "Zoé", "Juliette", "Margaux", "Élodie",
             "Agnès", "Bernadette", "Maëlle", "Noémie", "Yasmina", "Soizic")
PRENOMS_M = ("Lucas", "Hugo", "Louis", "Thomas", "Nicolas", "Julien", "François", "Jérôme",
             "Benoît", "Mathis", "Théo", "Raphaël", "Gaëtan", "Loïc", "Stéphane", "Hervé",
             "Yannick", "Cédric", "Mehdi", "Karim", "Erwan", "Joël")
NOMS = ("Martin", "Bernard", "Dubois", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand",
        "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont",
        "Lambert", "Bonnet", "Le Gall", "Kerbrat", "Nguyen", "Benali", "Da Silva", "Rousseau",
        "Blanc", "Guérin", "Muller", "Henry", "Perrin", "Morin", "Gauthier", "Fontaine",
        "Le Goff", "Tanguy", "Quéré", "Santoni", "Casanova")
VILLES = ("Rennes", "Brest", "Quimper", "Lorient", "Vannes", "Nantes", "Angers", "Tours", "Lyon",
          "Grenoble", "Bordeaux", "Pau", "Toulouse", "Montpellier", "Nîmes", "Ajaccio",
          "Bastia", "Lille", "Amiens", "Reims", "Metz", "Nancy", "Strasbourg", "Dijon",
          "Limoges", "Caen", "Rouen", "Saint-Brieuc")
RUES = ("de la République", "Jean Jaurès", "Victor Hugo", "du Général de Gaulle", "des Lilas",
        "de la Gare", "Pasteur", "du Port", "Saint-Michel", "des Écoles")
MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
        "octobre", "novembre", "décembre")
JOURS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi")

# --- templates holding a labelled item ({nir} / {t} / {x}) ----------------------------
NIR_CONTEXT = (
    "Numéro de sécurité sociale : {nir}",
    "N° sécu : {nir}",
    "NIR : {nir}",
    "Sa carte Vitale porte le numéro {nir}.",
    "Matricule INS : {nir}",
    "Numéro d'assuré : {nir}",
    "{patient}, assuré(e) social(e) n° {nir}, est suivi(e) au cabinet.",
    "N° d'immatriculation INSEE : {nir}",
    "Pour la télétransmission, voici son numéro de sécurité sociale : {nir}.",
    "Je vous rappelle son NIR, {nir}, à reporter sur la demande.",
)
NIR_BARE = (
    "{patient} ({nir}) a débuté la rééducation le {date}.",
    "Patient : {patient} — {nir}",
    "{patient}, {nir}, domicilié(e) à {ville}.",
    "Pour son dossier : {nir}.",
    "{nir} — {patient}, {ville}",
    "Je vous transmets les coordonnées de {patient} : {nir}, {num} rue {rue} à {ville}.",
    "Identifiant du patient : {nir}",
    "Merci d'ajouter {nir} à la fiche de {patient}.",
)
NIR_KEYLESS = (
    "Carte Vitale : {nir}",
    "N° de sécurité sociale (sans la clé) : {nir}",
    "NIR {nir}",
    "Numéro de sécurité sociale relevé sur la carte Vitale : {nir}",
)
TERM_MID = (
    "Motif de la prise en charge : {t}.",
    "Diagnostic : {t}.",
    "Indication : {t}.",
    "Antécédents : {t}.",
    "Pathologie principale : {t}, évolution lente.",
    "Adressé(e) par le Dr {nom} pour {t}.",
    "Vu(e) au cabinet pour {t} depuis {mois}.",
    "Contexte : {t} chez une personne active.",
    "Le médecin traitant évoque {t} et demande un avis.",
    "Motif : {t}",
    "Nous avons revu ensemble le programme adapté à {t}.",
    "Je vous écris au sujet de {patient}, qui consulte pour {t}.",
)
TERM_START = (
    "{t} : évolution favorable après six semaines.",
    "{t} depuis {mois}, gêne au quotidien.",
    "{t} confirmé(e) par le spécialiste en {mois}.",
)
TERM_HEADING = ("DIAGNOSTIC : {t}", "MOTIF : {t}", "{t}")

# --- filler (no item, no health term) ------------------------------------------------
GREETINGS_MED = ("Cher confrère,", "Chère consœur,", "Bonjour Docteur {nom},", "Madame, Monsieur,",
                 "Bonjour,", "Chère collègue,")
LETTER_FILLER = (
    "Je vous adresse des nouvelles de {patient}, que je vois au cabinet depuis le {date}.",
    "Suite à votre demande, voici le point sur {patient}.",
    "Comme convenu par téléphone, je vous transmets les éléments concernant {patient}.",
    "L'évolution est favorable et les exercices sont bien faits à la maison.",
    "Nous avons travaillé l'équilibre, le renforcement et la marche en extérieur.",
    "Les amplitudes articulaires progressent régulièrement.",
    "Le sommeil est meilleur depuis deux semaines.",
    "La reprise du travail est envisagée pour le mois prochain.",
    "Je vous propose de refaire le point dans un mois.",
    "Je reste à votre disposition pour tout renseignement complémentaire.",
    "Une reprise progressive de la course à pied est possible.",
    "Les escaliers restent difficiles en fin de journée.",
    "Nous avons adapté le programme d'auto-exercices.",
    "Elle souhaite reprendre la natation dès que possible.",
    "Il a repris la conduite la semaine dernière.",
    "Le périmètre de marche dépasse maintenant deux kilomètres.",
    "Un tel résultat nous encourage à poursuivre sur ce rythme.",
    "Je joins le compte rendu de fin de séries pour votre information.",
)
CLOSINGS_MED = ("Bien confraternellement,", "Cordialement,", "Bien à vous,",
                "Avec mes salutations confraternelles,")
BILAN_TITLES = ("BILAN DIAGNOSTIQUE KINÉSITHÉRAPIQUE", "Bilan kinésithérapique initial",
                "Bilan de fin de traitement", "Bilan intermédiaire")
BILAN_FILLER = (
    "Date du bilan : {date}",
    "Médecin prescripteur : Dr {prenom} {nom}",
    "Examen : station debout stable, marche sans aide technique.",
    "Mobilité : flexion 120°, extension complète.",
    "Force musculaire cotée à 4/5 sur les groupes testés.",
    "Objectifs : autonomie complète, reprise des activités de loisir.",
    "Plan de traitement : {n} séances, deux par semaine.",
    "Conseils donnés : auto-exercices quotidiens, marche de trente minutes.",
    "Échelle visuelle analogique : 3/10 au repos, 6/10 à l'effort.",
    "Périmètre de marche : 800 mètres.",
    "Test de Tinetti : 24/28.",
    "Suivi : réévaluation à la dixième séance.",
)
INVOICE_PATIENT = (
    "Note d'honoraires n° {inv}",
    "{n} séances de kinésithérapie — {amount}",
    "Réglé le {date} par chèque.",
    "Dispensé d'avance des frais : part obligatoire.",
)

NEUTRAL: dict[str, tuple[str, ...]] = {
    "supplier-invoice": (
        "Facture n° {inv} du {date}",
        "Désignation : table de massage électrique, trois plans, coloris gris.",
        "Montant HT : {amount}, TVA 20 % incluse dans le total.",
        "Conditions de paiement : 30 jours fin de mois.",
        "Merci pour votre commande et à bientôt.",
        "En cas de retard, une indemnité forfaitaire de 40 € sera appliquée.",
        "Livraison offerte à partir de 150 € d'achat.",
    ),
    "reminder": (
        "Bonjour {prenom}, nous vous rappelons votre rendez-vous du {jour} {date} à {heure}.",
        "En cas d'empêchement, merci de prévenir au moins 24 h à l'avance.",
        "Pensez à apporter votre carte Vitale.",
        "Le cabinet se trouve au 2e étage, interphone {nom}.",
        "Merci d'arriver cinq minutes en avance.",
        "Une serviette de bain vous sera demandée.",
        "Rendez-vous modifiable en ligne jusqu'à la veille.",
    ),
    "newsletter": (
        "Le cabinet sera fermé du {date} au {date2} pour congés.",
        "Nouveaux horaires : du lundi au vendredi de 8 h à 20 h, le samedi matin sur "
        "rendez-vous.",
        "Le parking de la rue {rue} est gratuit après 19 h.",
        "Notre nouveau site internet permet de prendre rendez-vous en ligne.",
        "Nous accueillons {prenom} {nom}, qui rejoint l'équipe en septembre.",
        "Le paiement par carte bancaire est désormais accepté.",
        "Merci de signaler tout retard au secrétariat.",
        "Un atelier marche nordique est organisé le samedi {date} au parc {nom}.",
        "Pensez à nous laisser un avis en ligne !",
        "Vous pouvez vous désabonner à tout moment en répondant à ce message.",
        "La salle d'attente a été repeinte et de nouvelles chaises sont arrivées.",
    ),
    "order": (
        "Votre commande a été expédiée aujourd'hui.",
        "Livraison prévue le {date} entre 8 h et 13 h.",
        "Articles : deux rouleaux de papier pour table, une boîte de gants, trois flacons "
        "de gel.",
        "Le transporteur vous contactera la veille de la livraison.",
        "Retours gratuits sous 30 jours.",
    ),
    "accounting": (
        "Vous trouverez ci-joint le relevé bancaire de {mois}.",
        "Les recettes du mois s'élèvent à {amount}.",
        "Merci de me transmettre les justificatifs avant le {date}.",
        "Le prélèvement de l'URSSAF apparaîtra le {date}.",
        "La déclaration 2035 doit être déposée avant la fin du mois de mai.",
        "Pensez à conserver les factures d'achat de matériel.",
    ),
    "letter": (
        "Madame, Monsieur,",
        "Je vous informe de la résiliation du contrat à compter du {date}.",
        "Je vous prie d'agréer l'expression de mes salutations distinguées.",
        "Le loyer du local professionnel sera révisé au 1er janvier selon l'indice ILC.",
        "La police d'assurance responsabilité civile professionnelle arrive à échéance.",
        "Veuillez trouver ci-joint l'attestation demandée.",
        "Je reste joignable du lundi au vendredi.",
    ),
    "everyday": (
        "La réunion de l'association aura lieu jeudi à 20 h à la salle des fêtes.",
        "Le marché de Noël ouvrira ses portes le premier week-end de décembre.",
        "Les travaux de la rue {rue} dureront trois semaines.",
        "Le club de football recherche des bénévoles pour la buvette.",
        "La médiathèque propose des ateliers numériques pour les seniors.",
        "Le conseil municipal a voté le budget de l'année prochaine.",
        "Les inscriptions à l'école de musique sont ouvertes.",
        "La fibre optique arrive dans le quartier d'ici la fin de l'année.",
        "Le prix du gazole a encore augmenté cette semaine.",
        "Une randonnée de douze kilomètres est prévue dimanche matin.",
        "Le bilan comptable de l'année est positif.",
        "Le bilan de la saison est mitigé pour l'équipe première.",
        "Les soldes d'hiver commencent mercredi.",
        "Un virus informatique a paralysé le réseau de la mairie.",
        "Il fait beau, profitez-en pour aller marcher au bord de la mer.",
        "Le vide-grenier du quartier aura lieu le dernier dimanche du mois.",
        "La déchetterie change d'horaires à partir du mois prochain.",
        "Le nouveau logiciel de facturation sera installé vendredi soir.",
        "Merci de confirmer votre présence au repas de fin d'année.",
        "Le stationnement sera interdit rue {rue} pendant la braderie.",
        "Les enfants de l'école ont planté un potager dans la cour.",
        "Le train de 7 h 42 est supprimé jusqu'à nouvel ordre.",
        "La piscine municipale rouvre après six mois de travaux.",
        "Le compte rendu de l'assemblée générale est en ligne.",
        "Nous avons reçu votre demande de devis pour le nouveau site.",
    ),
}

# Ordinary practice mail that meets a lexicon word or a CIM-10-like code in another
# sense; the lexicon means to let these pass. One of them goes into about a
# quarter of the negative mails; each is reported when it fires.
TRAPS = (
    "Code interphone : B12",
    "Code d'accès au parking : A45",
    "Digicode : 4512B, puis deuxième porte à gauche.",
    "Avec une précision chirurgicale, l'équipe a livré le chantier à temps.",
    "Merci de scanner vos justificatifs avant de les envoyer.",
    "Code promo : ETE24 pour 10 % de remise.",
    "Notre hébergeur garantit un SLA de 99,9 %.",
    "La loi de Parkinson dit que le travail s'étale pour occuper le temps disponible.",
    "Le greffe du tribunal de commerce est fermé le lundi.",
    "L'ordonnance du juge a été rendue hier soir.",
    "La fracture numérique touche encore de nombreux foyers ruraux.",
    "Une dépression atmosphérique arrive par l'ouest ce week-end.",
    "Réunion le 12 SEP à 18 h au club house.",
    "Le code article C45 est en rupture de stock.",
    "Ordonnance n° 2020-306 relative à la prorogation des délais.",
    "Le bilan comptable de l'année est positif.",
    "Le compte rendu de l'assemblée générale est en ligne.",
    "La tension monte entre les deux équipes avant le derby.",
)

# Ordinary French using a health word in another sense. Part of the non-medical
# text at a low rate; each one is reported when it fires.
IDIOMS = (
    "Le directeur a fait une entorse au règlement pour l'occasion.",
    "Une dépression arrive par l'ouest et apportera de la pluie demain.",
    "Horoscope de la semaine : Cancer, une rencontre inattendue vous attend.",
    "Ce tableau de bord me donne la migraine.",
    "Le gouvernement annonce une amputation des crédits de la culture.",
    "Ce fut un véritable accouchement, mais le projet est enfin lancé.",
    "J'ai failli faire une crise cardiaque en voyant la facture d'électricité.",
    "Le club souffre d'une anémie de bénévoles.",
    "Le patron a une allergie aux réunions du lundi.",
    "Leur politique est complètement schizophrène.",
    "Le marché immobilier est en pleine dépression.",
    "Le ministre a présenté une ordonnance sur le travail.",
    "Cette réforme est un cancer pour les petites entreprises.",
    "La loi de Parkinson s'applique aussi aux réunions.",
    "L'équipe a accouché d'un nouveau logo après trois mois de débats.",
    "La ville connaît une véritable hémorragie de commerces.",
    "Le dossier est en soins palliatifs depuis des mois, personne n'y croit plus.",
    "Le tournoi a été une vraie fracture entre les deux clubs.",
    "Les Lions de la promo 2024 fêtent leur diplôme samedi.",
    "Nos serveurs ont subi une attaque cérébrale… pardon, informatique.",
    "Une hernie de papier encombre le bureau depuis la rentrée.",
    "Entorse à la tradition : le repas aura lieu au restaurant cette année.",
)


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True, slots=True)
class NirLabel:
    value: str        # what a detector should report: 15 chars (13 for the keyless form)
    form: str
    corsica: bool
    context: bool     # a NIR context word was written next to it
    container: str
    source: str       # the extraction source that holds it ("bilan.pdf", "envoi.zip/…")
    written: str
    snippet: str      # the sentence or table cell it was written in


@dataclass(frozen=True, slots=True)
class TermLabel:
    term: str         # the canonical lexicon term
    category: str
    written: str
    inflection: str
    container: str
    source: str
    snippet: str


@dataclass(frozen=True, slots=True)
class LookalikeLabel:
    category: str
    written: str
    container: str
    source: str
    snippet: str


@dataclass(slots=True)
class LabelledMail:
    ident: str
    kind: str
    positive: bool
    raw: bytes
    sender: str
    recipient: str
    nirs: list[NirLabel] = field(default_factory=list)
    terms: list[TermLabel] = field(default_factory=list)
    lookalikes: list[LookalikeLabel] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # source prefix -> container


# --------------------------------------------------------------------------- building


@dataclass(slots=True)
class _Item:
    kind: str                 # "nir" | "term" | "lookalike"
    written: str
    container: str = ""
    context: bool = False
    value: str = ""
    form: str = ""
    corsica: bool = False
    term: str = ""
    category: str = ""
    inflection: str = ""
    numeric: bool = False     # a spreadsheet number cell rather than text
    snippet: str = ""


@dataclass(slots=True)
class _Rendered:
    filename: str
    data: bytes
    mime: str


class _Fill:
    """Fills the {placeholders} of the templates with one patient's details."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        female = rng.random() < 0.55
        self.prenom = rng.choice(PRENOMS_F if female else PRENOMS_M)
        self.nom = rng.choice(NOMS)
        civ = "Mme" if female else "M."
        self.patient = f"{civ} {self.prenom} {self.nom}"

    def date(self) -> str:
        return f"{self.rng.randint(1, 28):02d}/{self.rng.randint(1, 12):02d}/" \
               f"{self.rng.randint(2022, 2025)}"

    def __call__(self, template: str, **extra: str) -> str:
        r = self.rng
        values = {
            "patient": self.patient, "prenom": self.prenom, "nom": r.choice(NOMS),
            "date": self.date(), "date2": self.date(), "ville": r.choice(VILLES),
            "rue": r.choice(RUES), "num": str(r.randint(1, 120)), "mois": r.choice(MOIS),
            "jour": r.choice(JOURS),
            "heure": f"{r.randint(8, 19)} h {r.choice(('00', '15', '30', '45'))}",
            "n": str(r.randint(6, 30)), "inv": f"{r.randint(2022, 2025)}-{r.randint(1, 999):03d}",
            "amount": f"{r.randint(20, 900)},{r.choice(('00', '50', '40'))} €",
        }
        values.update(extra)
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def _signature(rng: random.Random, fill: _Fill) -> list[str]:
    prenom = rng.choice(PRENOMS_F + PRENOMS_M)
    lines = [f"{prenom} {rng.choice(NOMS)}", "Masseur-kinésithérapeute D.E.",
             fill("{num} rue {rue}, {ville}")]
    extra = [f"Tél. {safe_lookalike(rng, 'phone', False).written}",
             f"RPPS {safe_lookalike(rng, 'rpps', False).written}",
             f"SIRET {safe_lookalike(rng, 'siret', False).written}"]
    lines += rng.sample(extra, rng.randint(0, 3))
    return lines


def _item_sentence(item: _Item, fill: _Fill, rng: random.Random) -> str:
    if item.kind == "nir":
        if item.form == "keyless-13":
            template = rng.choice(NIR_KEYLESS)
        else:
            template = rng.choice(NIR_CONTEXT if item.context else NIR_BARE)
        return fill(template, nir=item.written)
    if item.kind == "term":
        if item.inflection in ("upper", "upper-no-accents"):
            template = rng.choice(TERM_HEADING)
        elif item.inflection == "capitalised":
            template = rng.choice(TERM_START)
        else:
            template = rng.choice(TERM_MID)
        return fill(template, t=item.written)
    return item.snippet  # a look-alike comes with its sentence


def _prose(kind: str, items: Sequence[_Item], fill: _Fill, rng: random.Random,
           *, signature: bool) -> list[str]:
    """Paragraphs of one document of ``kind`` with the items' sentences placed in it."""
    if kind == "bilan":
        head = [rng.choice(BILAN_TITLES), f"Patient : {fill.patient}", fill("Né(e) le {date}")]
        body = [fill(s) for s in rng.sample(BILAN_FILLER, rng.randint(3, 6))]
        tail: list[str] = []
    elif kind == "invoice-patient":
        head = [fill(INVOICE_PATIENT[0]), f"Patient : {fill.patient}"]
        body = [fill(s) for s in INVOICE_PATIENT[1:]]
        tail = []
    elif kind in ("letter-med", "forward-med"):
        head = [fill(rng.choice(GREETINGS_MED))]
        body = [fill(s) for s in rng.sample(LETTER_FILLER, rng.randint(2, 5))]
        tail = [rng.choice(CLOSINGS_MED)]
    else:
        pool = NEUTRAL[kind]
        head = []
        body = [fill(s) for s in rng.sample(pool, min(len(pool), rng.randint(3, 6)))]
        if rng.random() < 0.25:
            body.insert(rng.randint(0, len(body)), fill(rng.choice(NEUTRAL["everyday"])))
        if rng.random() < 0.25:
            body.insert(rng.randint(0, len(body)), rng.choice(TRAPS))
        tail = ["Cordialement,"] if rng.random() < 0.7 else []
    for item in items:
        item.snippet = _item_sentence(item, fill, rng)
        body.insert(rng.randint(0, len(body)), item.snippet)
    return head + body + tail + (_signature(rng, fill) if signature else [])


def _table(kind: str, items: Sequence[_Item], fill: _Fill, rng: random.Random) -> list[list[Cell]]:
    """A small sheet: header row + rows holding the items (positives) or numbers (negatives)."""
    nirs = [i for i in items if i.kind == "nir"]
    terms = [i for i in items if i.kind == "term"]
    looks = [i for i in items if i.kind == "lookalike"]
    rows: list[list[Cell]] = []
    if nirs or terms:
        context = any(i.context or i.form == "keyless-13" for i in nirs)
        header = rng.choice(("N° sécu", "NIR", "N° de sécurité sociale", "Carte Vitale",
                             "Matricule INS")) if context else rng.choice(("Identifiant",
                                                                           "Numéro", "N°"))
        rows.append(["Nom", "Prénom", header, "Motif", "Nb"])
        for n in range(max(len(nirs), len(terms), 1)):
            nir_cell: Cell = ""
            term_cell: Cell = ""
            if n < len(nirs):
                nirs[n].context = context
                nir_cell = int(nirs[n].written) if nirs[n].numeric else nirs[n].written
            if n < len(terms):
                term_cell = terms[n].written
            rows.append([rng.choice(NOMS), rng.choice(PRENOMS_F + PRENOMS_M), nir_cell,
                         term_cell, rng.randint(6, 30)])
            if n < len(nirs):
                nirs[n].snippet = " | ".join(str(c) for c in rows[0]) + " // " + " | ".join(
                    str(c) for c in rows[-1])
            if n < len(terms):
                terms[n].snippet = " | ".join(str(c) for c in rows[-1])
    else:
        rows.append(["Date", "Libellé", "Numéro", "Montant"])
        for _ in range(rng.randint(2, 5)):
            rows.append([fill.date(), rng.choice(("Fournitures", "Abonnement logiciel",
                                                  "Loyer", "Électricité", "Virement reçu",
                                                  "Assurance", "Téléphonie")),
                         "", f"{rng.randint(5, 2000)},{rng.randint(0, 99):02d}"])
    for item in looks:
        row: list[Cell] = [fill.date(), rng.choice(("Virement", "Prélèvement", "Paiement",
                                                     "Commande", "Contact", "Divers")),
                           item.written,
                           f"{rng.randint(5, 2000)},{rng.randint(0, 99):02d}"]
        rows.insert(rng.randint(1, len(rows)), row)
        item.snippet = " | ".join(str(c) for c in row)
    return rows


def _text_bytes(text: str, rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.2:
        try:
            return text.replace("\n", "\r\n").encode("cp1252")
        except UnicodeEncodeError:
            pass
    if roll > 0.9:
        return text.encode("utf-16")
    return text.encode("utf-8")


def _csv_bytes(rows: Sequence[Sequence[Cell]], rng: random.Random) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    for row in rows:
        writer.writerow([str(c) for c in row])
    text = buf.getvalue()
    if rng.random() < 0.3:
        try:
            return text.encode("cp1252")
        except UnicodeEncodeError:
            pass
    return text.encode("utf-8-sig")


def _html(paragraphs: Sequence[str], rng: random.Random, bold: Sequence[str]) -> str:
    parts: list[str] = []
    for para in paragraphs:
        html = escape(para, quote=False)
        for word in bold:
            w = escape(word, quote=False)
            if w in html and rng.random() < 0.3:
                html = html.replace(w, f"<b>{w}</b>", 1)
        if rng.random() < 0.5:
            html = html.replace("\u00a0", "&nbsp;").replace("\u202f", "&#8239;")
        html = html.replace("\n", "<br>\n")
        parts.append(f"<p>{html}</p>" if rng.random() < 0.7 else f"<div>{html}</div>")
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>p{margin:0}</style>'
            "</head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _doc_file(fmt: str, stem: str, paragraphs: Sequence[str], rows: list[list[Cell]] | None,
              rng: random.Random) -> _Rendered:
    """One attachment of format ``fmt`` (prose or table) as real bytes."""
    lines = [line for para in paragraphs for line in para.split("\n")]
    name = f"{stem}.{fmt}"
    if fmt == "pdf":
        return _Rendered(name, make_pdf(lines, compress=rng.random() < 0.5), MIME[fmt])
    if fmt == "docx":
        return _Rendered(name, make_docx(lines), MIME[fmt])
    if fmt == "odt":
        return _Rendered(name, make_odt(lines), MIME[fmt])
    if fmt == "rtf":
        return _Rendered(name, make_rtf("\n".join(paragraphs)), MIME[fmt])
    if fmt == "txt":
        return _Rendered(name, _text_bytes("\n".join(paragraphs) + "\n", rng), MIME[fmt])
    if fmt == "pptx":
        slides = ["\n".join(paragraphs[i:i + 3]) for i in range(0, len(paragraphs), 3)]
        return _Rendered(name, make_pptx(slides), MIME[fmt])
    assert rows is not None
    if fmt == "xlsx":
        return _Rendered(name, make_xlsx(rows), MIME[fmt])
    if fmt == "ods":
        return _Rendered(name, make_ods(rows), MIME[fmt])
    if fmt == "csv":
        return _Rendered(name, _csv_bytes(rows, rng), MIME[fmt])
    raise ValueError(fmt)


_STEMS_POS = {"pdf": "bilan", "docx": "compte_rendu", "xlsx": "patients_semaine",
              "pptx": "staff_cas_cliniques", "odt": "courrier", "ods": "planning_patients",
              "rtf": "lettre", "txt": "notes", "csv": "export_patients"}
_STEMS_NEG = {"pdf": "facture", "docx": "courrier", "xlsx": "releve", "pptx": "presentation",
              "odt": "compte_rendu_reunion", "ods": "tableau_depenses", "rtf": "attestation",
              "txt": "infos", "csv": "export_banque"}
_INNER_FORMATS = ("txt", "pdf", "docx", "odt", "rtf")


class MailBuilder:
    """Builds one labelled mail from items already assigned to containers."""

    def __init__(self, rng: random.Random, ident: str, kind: str, positive: bool) -> None:
        self.rng = rng
        self.ident = ident
        self.kind = kind
        self.positive = positive
        self.fill = _Fill(rng)
        self.sources: dict[str, str] = {}

    def doc_kind(self, container: str) -> str:
        if not self.positive:
            return self.kind
        if container in ("body", "html", "eml"):
            return "invoice-patient" if self.kind == "invoice-patient" else "letter-med"
        return "bilan" if self.kind != "invoice-patient" else "invoice-patient"

    def build(self, items: Sequence[_Item], containers: Sequence[str]) -> LabelledMail:
        rng = self.rng
        stems = _STEMS_POS if self.positive else _STEMS_NEG
        by_container: dict[str, list[_Item]] = {c: [] for c in containers}
        for item in items:
            by_container[item.container].append(item)
        body_container = "html" if "html" in containers else "body"
        body_items = by_container.get("body", []) + by_container.get("html", [])
        paragraphs = _prose(self.doc_kind(body_container), body_items, self.fill, rng,
                            signature=True)
        source_of: dict[str, str] = {}
        msg = EmailMessage()
        sender = f"cabinet{rng.randint(1, 99)}@kine-{self.fill.nom.lower().replace(' ', '')}.fr"
        recipient = f"{self.fill.prenom.lower()}.{rng.randint(1, 999)}@gmail.com"
        sender = strip_accents(sender)
        recipient = strip_accents(recipient)
        msg["From"] = f"Cabinet de kinésithérapie <{sender}>"
        msg["To"] = recipient
        msg["Subject"] = self.subject()
        msg["Date"] = f"{rng.choice(('Mon', 'Tue', 'Wed', 'Thu', 'Fri'))}, " \
                      f"{rng.randint(1, 28)} {rng.choice(('Jan', 'Mar', 'May', 'Sep', 'Nov'))} " \
                      f"2025 {rng.randint(8, 19):02d}:{rng.randint(0, 59):02d}:00 +0100"
        msg["Message-ID"] = f"<{self.ident}@bench.vigie.invalid>"
        bold = [i.written for i in body_items]
        plain = "\n".join(paragraphs) + "\n"
        if body_container == "html":
            html = _html(paragraphs, rng, bold)
            if rng.random() < 0.5:
                msg.set_content(html, subtype="html")
            else:
                msg.set_content(plain)
                msg.add_alternative(html, subtype="html")
                self.sources["body (text/plain)"] = "body"
            self.sources["body (text/html)"] = "html"
            source_of["html"] = "body (text/html)"
        else:
            msg.set_content(plain)
            if rng.random() < 0.3:
                msg.add_alternative(_html(paragraphs, rng, bold), subtype="html")
                self.sources["body (text/html)"] = "html"
            self.sources["body (text/plain)"] = "body"
            source_of["body"] = "body (text/plain)"
        for container in containers:
            if container in ("body", "html"):
                continue
            these = by_container[container]
            source_of[container] = self.attach(msg, container, these, stems)
        mail = LabelledMail(self.ident, self.kind, self.positive,
                            msg.as_bytes(policy=policy.SMTP), sender, recipient,
                            sources=dict(self.sources))
        for item in items:
            source = source_of[item.container]
            if item.kind == "nir":
                mail.nirs.append(NirLabel(item.value, item.form, item.corsica, item.context,
                                          item.container, source, item.written, item.snippet))
            elif item.kind == "term":
                mail.terms.append(TermLabel(item.term, item.category, item.written,
                                            item.inflection, item.container, source,
                                            item.snippet))
            else:
                mail.lookalikes.append(LookalikeLabel(item.category, item.written,
                                                      item.container, source, item.snippet))
        return mail

    def subject(self) -> str:
        f = self.fill
        if self.positive:
            return self.rng.choice((f"Bilan de {f.patient}", f"Nouvelles de {f.patient}",
                                    "Documents demandés", f"Suivi de {f.prenom} {f.nom}",
                                    "Transmission de dossier"))
        return {
            "supplier-invoice": "Votre facture", "reminder": "Rappel de votre rendez-vous",
            "newsletter": "Les nouvelles du cabinet", "order": "Votre commande est en route",
            "accounting": "Pièces comptables du mois", "letter": "Courrier",
        }.get(self.kind, "Information")

    def content(self, fmt: str, container: str, items: Sequence[_Item]) -> _Rendered:
        stems = _STEMS_POS if self.positive else _STEMS_NEG
        stem = f"{stems[fmt]}_{self.rng.randint(1, 99)}"
        kind = self.doc_kind(container)
        if fmt in TABLE_CONTAINERS:
            return _doc_file(fmt, stem, [], _table(kind, items, self.fill, self.rng), self.rng)
        paragraphs = _prose(kind, items, self.fill, self.rng, signature=self.rng.random() < 0.5)
        return _doc_file(fmt, stem, paragraphs, None, self.rng)

    def attach(self, msg: EmailMessage, container: str, items: Sequence[_Item],
               stems: dict[str, str]) -> str:
        rng = self.rng
        if container == "eml":
            inner = EmailMessage()
            inner["From"] = f"Dr {rng.choice(NOMS)} <secretariat@cabinet-medical.fr>"
            inner["To"] = "cabinet@kine-exemple.fr"
            inner["Subject"] = "Transmission" if self.positive else "Information"
            inner["Date"] = "Mon, 3 Mar 2025 09:12:00 +0100"
            paragraphs = _prose(self.doc_kind("eml"), items, self.fill, rng, signature=True)
            inner.set_content("\n".join(paragraphs) + "\n")
            name = f"transfert_{rng.randint(1, 99)}.eml"
            msg.add_attachment(inner, filename=name)
            source = f"{name}/body (text/plain)"
            self.sources[name] = "eml"
            self.sources[source] = "eml"
            return source
        if container in ("zip", "zip-in-zip"):
            # a PDF of make_pdf is WinAnsi: no narrow NBSP in it
            narrow = any("\u202f" in i.written for i in items if i.kind != "lookalike")
            fmt = rng.choice([f for f in _INNER_FORMATS if not (narrow and f == "pdf")])
            inner_file = self.content(fmt, container, items)
            if container == "zip":
                outer = f"dossier_{rng.randint(1, 99)}.zip"
                data = make_zip({inner_file.filename: inner_file.data,
                                 "lisez-moi.txt": b"Documents du cabinet.\n"})
                source = f"{outer}/{inner_file.filename}"
            else:
                outer = f"envoi_{rng.randint(1, 99)}.zip"
                middle = f"archive_{rng.randint(1, 99)}.zip"
                data = make_zip({middle: make_zip({inner_file.filename: inner_file.data})})
                source = f"{outer}/{middle}/{inner_file.filename}"
            msg.add_attachment(data, maintype="application", subtype="zip", filename=outer)
            self.sources[outer] = container
            self.sources[source] = container
            return source
        rendered = self.content(container, container, items)
        mime = rendered.mime if rng.random() < 0.85 else "application/octet-stream"
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(rendered.data, maintype=maintype, subtype=subtype,
                           filename=rendered.filename)
        self.sources[rendered.filename] = container
        return rendered.filename


# --------------------------------------------------------------------------- the corpus


@dataclass(slots=True)
class _Rotation:
    """Deterministic round-robin over forms/containers so every pair is covered."""

    counters: dict[str, int] = field(default_factory=dict)

    def next(self, name: str, choices: Sequence[str]) -> str:
        n = self.counters.get(name, 0)
        self.counters[name] = n + 1
        return choices[n % len(choices)]


POSITIVE_KINDS = ("letter-med", "letter-med", "forward-med", "invoice-patient")
NEGATIVE_KINDS = ("supplier-invoice", "reminder", "newsletter", "order", "accounting", "letter")


class CorpusGenerator:
    def __init__(self, seed: int, lexicon_file: Path = LEXICON_FILE) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.entries = diagnosis_entries(load_lexicon_terms(lexicon_file))
        self.rotation = _Rotation()
        self._term_cycle: list[LexEntry] = []

    # --- items -------------------------------------------------------------
    def nir_item(self, container: str, kind: str) -> _Item:
        rng = self.rng
        form = self.rotation.next("nir-form", NIR_FORMS)
        if form == "narrow-nbsp" and container == "pdf":  # WinAnsi has no U+202F
            form = self.rotation.next("nir-form", NIR_FORMS)
        corsica = self.rotation.next("corsica", ("no",) * 6 + ("yes",)) == "yes"
        value = random_nir(rng, corsica=corsica)
        written, expected = write_nir(value, form, rng)
        context = form == "keyless-13" or kind == "invoice-patient" or \
            self.rotation.next(f"nir-context-{form}", ("yes", "no")) == "yes"
        numeric = form == "compact" and container in ("xlsx", "ods") and not corsica \
            and rng.random() < 0.5
        return _Item("nir", written, container, context, expected, form, corsica,
                     numeric=numeric)

    def term_item(self, container: str) -> _Item:
        rng = self.rng
        inflection = self.rotation.next("inflection", TERM_INFLECTIONS)
        if container in TABLE_CONTAINERS and inflection == "line-break":
            inflection = "as-is"
        if not self._term_cycle:
            self._term_cycle = rng.sample(self.entries, len(self.entries))
        # the next unused entry that takes this inflection, else any entry that does
        for entry in [*reversed(self._term_cycle), *rng.sample(self.entries, len(self.entries))]:
            forms = rng.sample(entry.forms, len(entry.forms))
            if rng.random() < 0.5:
                forms.insert(0, entry.term)
            for form in forms:
                written = inflect(form, inflection, entry, rng)
                if written is not None:
                    if entry in self._term_cycle:
                        self._term_cycle.remove(entry)
                    return _Item("term", written, container, term=entry.term,
                                 category=entry.category, inflection=inflection)
        raise RuntimeError(f"no lexicon entry takes the inflection {inflection!r}")

    # --- mails -------------------------------------------------------------
    def positive(self, n: int) -> LabelledMail:
        rng = self.rng
        kind = POSITIVE_KINDS[n % len(POSITIVE_KINDS)]
        primary = self.rotation.next("pos-container", CONTAINERS)
        containers = ["html" if primary == "html" else "body"]
        if primary not in containers:
            containers.append(primary)
        for extra in rng.sample(ATTACHMENT_CONTAINERS, rng.choice((0, 0, 1, 1, 2))):
            if extra not in containers:
                containers.append(extra)
        roll = rng.random()
        n_nir = 0 if roll < 0.15 else rng.choice((1, 1, 2, 3))
        n_term = 0 if 0.15 <= roll < 0.3 else rng.choice((1, 1, 2, 3))
        items: list[_Item] = []
        for i in range(n_nir):
            items.append(self.nir_item(primary if i == 0 else rng.choice(containers), kind))
        for i in range(n_term):
            target = primary if (i == 0 and n_nir == 0) else rng.choice(containers)
            items.append(self.term_item(target))
        return MailBuilder(rng, f"pos-{self.seed}-{n:05d}", kind, True).build(items,
                                                                            containers)

    def negative(self, n: int) -> LabelledMail:
        rng = self.rng
        kind = NEGATIVE_KINDS[n % len(NEGATIVE_KINDS)]
        primary = self.rotation.next("neg-container", CONTAINERS)
        containers = ["html" if primary == "html" else "body"]
        if primary not in containers:
            containers.append(primary)
        for extra in rng.sample(ATTACHMENT_CONTAINERS, rng.choice((0, 1, 1, 2))):
            if extra not in containers:
                containers.append(extra)
        items: list[_Item] = []
        for i in range(rng.randint(2, 6)):
            look = safe_lookalike(rng)
            item = _Item("lookalike", look.written, primary if i < 2 else rng.choice(containers),
                         category=look.category)
            item.snippet = look.sentence
            items.append(item)
        return MailBuilder(rng, f"neg-{self.seed}-{n:05d}", kind, False).build(items,
                                                                             containers)


def build_corpus(seed: int, positives: int, negatives: int) -> list[LabelledMail]:
    """``positives`` + ``negatives`` labelled mails, interleaved, reproducible from ``seed``."""
    gen = CorpusGenerator(seed)
    out: list[LabelledMail] = []
    for i in range(max(positives, negatives)):
        if i < positives:
            out.append(gen.positive(i))
        if i < negatives:
            out.append(gen.negative(i))
    return out


# --------------------------------------------------------------------------- text sets


@dataclass(frozen=True, slots=True)
class TermCase:
    term: str
    category: str
    form: str
    written: str
    inflection: str
    sentence: str


def term_cases(seed: int, *, forms_per_entry: int = 4,
               entries: Sequence[LexEntry] | None = None) -> list[TermCase]:
    """Every diagnosis entry, a few of its forms, every inflection that applies, in a sentence."""
    rng = random.Random(seed)
    fill = _Fill(rng)
    out: list[TermCase] = []
    for entry in entries if entries is not None else diagnosis_entries(load_lexicon_terms()):
        others = [f for f in entry.forms if f != entry.term]
        chosen = [entry.term, *rng.sample(others, min(len(others), forms_per_entry - 1))]
        for form in chosen:
            for inflection in TERM_INFLECTIONS:
                written = inflect(form, inflection, entry, rng)
                if written is None:
                    continue
                item = _Item("term", written, inflection=inflection)
                out.append(TermCase(entry.term, entry.category, form, written, inflection,
                                    _item_sentence(item, fill, rng)))
    return out


def nonmedical_documents(seed: int, count: int) -> list[list[str]]:
    """``count`` documents of ordinary non-medical French (4 to 12 sentences each).

    Traps and idioms are not drawn here: they are checked one by one.
    """
    rng = random.Random(seed)
    pools = list(NEUTRAL.values())
    out: list[list[str]] = []
    for _ in range(count):
        fill = _Fill(rng)
        out.append([fill(rng.choice(rng.choice(pools))) for _ in range(rng.randint(4, 12))])
    return out


def scan_text(seed: int, size: int, *, ordinary: bool = False) -> str:
    """About ``size`` characters of mixed practice text for the speed test.

    Mostly ordinary sentences and signatures with look-alike numbers, about one
    paragraph in ten holding a NIR or a diagnosis, like a practice's outbox.
    With ``ordinary``, only the non-medical kinds (invoices, reminders,
    newsletters…): what most outgoing mail looks like.
    """
    rng = random.Random(seed)
    gen = CorpusGenerator(seed)
    paragraphs: list[str] = []
    kinds = NEGATIVE_KINDS if ordinary else (*NEGATIVE_KINDS, "letter-med", "bilan")
    for n in range(400):
        fill = _Fill(rng)
        kind = rng.choice(kinds)
        items: list[_Item] = []
        if kind in ("letter-med", "bilan"):
            if rng.random() < 0.5:
                items.append(gen.nir_item("body", kind))
            items.append(gen.term_item("body"))
        else:
            for _ in range(rng.randint(1, 3)):
                look = make_lookalike(rng)
                item = _Item("lookalike", look.written)
                item.snippet = look.sentence
                items.append(item)
        paragraphs.append("\n".join(_prose(kind, items, fill, rng, signature=n % 3 == 0)))
    parts: list[str] = []
    total = 0
    while total < size:
        para = rng.choice(paragraphs)
        parts.append(para)
        total += len(para) + 2
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- big PDFs


def scan_like_pdf(lines: Sequence[str], size: int, seed: int) -> bytes:
    """A PDF of about ``size`` bytes: one text page and a large image (a scanned page)."""
    rng = random.Random(seed)
    text = bytearray(b"BT\n/F1 11 Tf\n14 TL\n50 800 Td\n")
    for line in lines:
        raw = line.encode("cp1252", "replace").replace(b"\\", b"\\\\").replace(
            b"(", b"\\(").replace(b")", b"\\)")
        text += b"(" + raw + b") Tj T*\n"
    text += b"ET\nq 500 0 0 300 50 100 cm /Im1 Do Q\n"
    side = int((size / 3) ** 0.5)
    pixels = zlib.compress(rng.randbytes(side * side * 3), 1)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R"
        b" >> /XObject << /Im1 6 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(text) + bytes(text) + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
        % (side, side, len(pixels)) + pixels + b"\nendstream",
    ]
    return _assemble_pdf(objects)


def text_heavy_pdf(size: int, seed: int, *, first_line: str, last_line: str
                   ) -> tuple[bytes, int]:
    """A FlateDecode PDF of about ``size`` bytes full of text; returns it and its page count.

    ``first_line`` opens the first page and ``last_line`` closes the last one, to
    see whether a detector still reads the end of a long document.
    """
    rng = random.Random(seed)
    fill = _Fill(rng)
    pool = [fill(s) for p in NEUTRAL.values() for s in p] + [fill(s) for s in LETTER_FILLER]

    def line() -> str:  # some numbers in each line so that it compresses like real text
        return f"{rng.choice(pool)} {fill.date()} {rng.randint(0, 10**9)}"

    per_page = 60
    probe_lines = [line() for _ in range(per_page * 20)]
    probe = len(make_pdf(probe_lines, lines_per_page=per_page, compress=True))
    lines = [first_line, *probe_lines,
             *(line() for _ in range(int(size / probe * len(probe_lines)) - len(probe_lines)))]
    lines.append(last_line)
    data = make_pdf(lines, lines_per_page=per_page, compress=True)
    return data, (len(lines) + per_page - 1) // per_page
