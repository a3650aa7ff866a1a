"""The confrères directory: the practice's contacts and the public MSSanté extraction.

Two parts: ``Contacts``, the small CSV the outbound patient-data check reads
(``[patient_data] contacts_file``: nom, prénom, email, mssante; «,» «;» or tab;
UTF-8 or Windows-1252), and the directory store, a SQLite file in the data folder
(``[directory] file``) filled by ``vigie directory import`` from contacts (CSV,
vCard) and from the ANS «Extraction Correspondance MSSanté» (``|``-separated, 31
columns, possibly zipped, UTF-8 or Latin-1). Imports stream the file, build a new
SQLite file beside the old one and rename it over: a bad file or a crash leaves the
old directory in force, and each source (``contacts``, ``ans``) is replaced on its
own. ``Directory`` answers the inbound check's look-ups (``DirectoryLookup``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import fcntl
import io
import itertools
import json
import os
import quopri
import re
import sqlite3
import sys
import threading
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gateway.config import Config, ConfigError
from gateway.detect.impersonation import (
    MSSANTE,
    DirectoryEntry,
    LookalikeIndex,
    Skeleton,
    Source,
    ascii_domain,
    in_domains,
    name_key,
    name_words,
)

_COLUMNS = {
    "name": ("nom", "name", "last name", "nom d'exercice"),
    "first": ("prenom", "first name", "firstname", "prenom d'exercice"),
    "email": ("email", "e-mail", "adresse", "courriel", "mail", "adresse mail"),
    "mssante": ("mssante", "adresse mssante", "bal mssante", "adresse bal"),
}


def fold_name(text: str) -> str:
    """'Dr Jean-Pierre DUPONT' and 'dupont jean pierre' fold to the same key."""
    return name_key(text)


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str
    mssante: str


class Contacts:
    def __init__(self, contacts: list[Contact]) -> None:
        self.contacts = contacts
        self.by_email = {c.email.lower(): c for c in contacts if c.email}
        self.by_name = {fold_name(c.name): c for c in contacts if c.name.strip()}

    @classmethod
    def empty(cls) -> Contacts:
        return cls([])

    @classmethod
    def load_csv(cls, path: Path) -> Contacts:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
        first = text.splitlines()[0] if text.strip() else ""
        delimiter = max(",;\t", key=first.count)
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return cls.empty()
        folded = [fold_name(h).replace(" ", "") for h in header]
        index: dict[str, int] = {}
        for key, names in _COLUMNS.items():
            for i, h in enumerate(folded):
                if h in {fold_name(n).replace(" ", "") for n in names}:
                    index.setdefault(key, i)
        if "mssante" not in index or not ({"email", "name"} & set(index)):
            raise ConfigError(
                "en-tête attendu : nom, email, mssante (séparés par , ou ;)",
                "expected header: name, email, mssante (separated by , or ;)",
                file=str(path), line=1, key="[patient_data] contacts_file")
        contacts = []
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue

            def cell(key: str, row: list[str] = row) -> str:
                i = index.get(key)
                return row[i].strip() if i is not None and i < len(row) else ""

            mssante = cell("mssante")
            if mssante and not re.fullmatch(r"[^@\s]+@[a-z0-9.-]*mssante\.fr", mssante.lower()):
                raise ConfigError(
                    f"adresse MSSanté invalide : {mssante!r} (attendu …@….mssante.fr)",
                    f"invalid MSSanté address: {mssante!r} (expected …@….mssante.fr)",
                    file=str(path), line=number, key="[patient_data] contacts_file")
            name = " ".join(p for p in (cell("first"), cell("name")) if p)
            contacts.append(Contact(name, cell("email"), mssante))
        return cls(contacts)

    def lookup(self, address: str, display_name: str = "") -> Contact | None:
        found = self.by_email.get(address.lower())
        if found is None and display_name:
            found = self.by_name.get(fold_name(display_name))
        return found if found is not None and found.mssante else None


# --- the directory store ------------------------------------------------------

SOURCES: tuple[Source, ...] = ("contacts", "ans")
SCHEMA_VERSION = "1"
BATCH = 5000
# An ANS file with more malformed lines than this share (after the first 1000
# lines) is not an ANS file: the import stops and the old directory stays.
MAX_BAD_SHARE = 0.10
# Hint rows: the line numbers of the first skipped lines of each reason.
SHOWN_LINES = 5

_ADDRESS = re.compile(r"[^@\s<>,;\"]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}")

ANS_COLUMNS = (
    "Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
    "Identification nationale PP", "Type identifiant structure", "Identification Structure",
    "Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
    "Catégorie profession", "Libellé de catégorie profession", "Code Profession",
    "Libellé Profession", "Code savoir-faire", "Libellé savoir-faire", "Dématérialisation",
    "Raison Sociale structure BAL", "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION", "L3COMPLEMENTDISTRIBUTION", "L4NUMEROVOIE",
    "L4COMPLEMENTNUMEROVOIE", "NL4TYPEVOIE", "L4LIBELLEVOIE", "L5LIEUDITMENTION",
    "L6LIGNEACHEMINEMENT", "Code postal", "Département", "Pays",
)
_ANS_NEEDED = ("Type de BAL", "Adresse BAL", "Nom d'exercice", "Prénom d'exercice",
               "Code Profession", "Libellé Profession", "Raison Sociale structure BAL",
               "Service de rattachement")

# Contact CSV columns (folded): ours, Thunderbird, Outlook (fr/en) and Google exports.
_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "display": ("nom complet", "display name", "nom affiche", "name", "full name", "fn"),
    "name": ("nom", "last name", "family name", "nom d'exercice"),
    "first": ("prenom", "first name", "firstname", "given name", "prenom d'exercice"),
    "email": ("email", "e-mail", "adresse", "courriel", "mail", "adresse mail",
              "primary email", "e-mail address", "adresse de messagerie",
              "e-mail 1 - value", "email address"),
    "email2": ("secondary email", "adresse de messagerie 2", "e-mail 2 address",
               "e-mail 2 - value", "email 2"),
    "mssante": ("mssante", "adresse mssante", "bal mssante", "adresse bal"),
}


def _column_key(header: str) -> str:
    return " ".join(name_words(header))


class DirectoryImportError(Exception):
    """A file that cannot be imported; str() names the file and line, French then English."""

    def __init__(self, fr: str, en: str, *, file: str, line: int | None = None) -> None:
        self.fr, self.en, self.file, self.line = fr, en, file, line
        where_fr = file + (f", ligne {line}" if line else "")
        where_en = file + (f", line {line}" if line else "")
        super().__init__(f"{where_fr} : {fr}\n{where_en}: {en}")


@dataclass
class ImportReport:
    """What an import did, for the CLI summary and the ``imports`` table."""

    source: Source
    file: str
    encoding: str = ""
    rows_read: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    seconds: float = 0.0
    total_entries: int = 0

    def skip(self, reason: str, line: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        lines = self.skipped_lines.setdefault(reason, [])
        if len(lines) < SHOWN_LINES:
            lines.append(line)


SKIP_FR = {
    "duplicate": "doublons (même adresse, même nom)",
    "no_address": "sans adresse",
    "bad_address": "adresse invalide",
    "columns": "nombre de colonnes incorrect",
}
SKIP_EN = {
    "duplicate": "duplicates (same address, same name)",
    "no_address": "no address",
    "bad_address": "invalid address",
    "columns": "wrong number of columns",
}

Row = tuple[str, str, str, str, str, str, str, str]  # source..profession_label, name_key


# --- reading files: bytes -> lines, encodings -----------------------------------

@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[tuple[IO[bytes], str]]:
    """The file's bytes (or those of the one text member of a zip) and a name to show."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise DirectoryImportError(f"lecture impossible ({exc.strerror})",
                                   f"cannot read it ({exc.strerror})", file=str(path)) from None
    if not is_zip:
        try:
            with path.open("rb") as stream:
                yield stream, str(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise DirectoryImportError(f"lecture impossible ({exc.strerror})",
                                       f"cannot read it ({exc.strerror})",
                                       file=str(path)) from None
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DirectoryImportError(f"archive ZIP illisible ({exc})",
                                   f"unreadable ZIP archive ({exc})", file=str(path)) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()
                   and m.filename.lower().endswith((".txt", ".csv", ".vcf"))]
        if not members:
            raise DirectoryImportError(
                "l'archive ne contient aucun fichier .txt, .csv ou .vcf",
                "the archive holds no .txt, .csv or .vcf file", file=str(path))
        member = max(members, key=lambda m: m.file_size)
        with archive.open(member) as stream:
            yield stream, f"{path}:{member.filename}"


class _Lines:
    """Decoded lines of a byte stream, numbered from 1, with line endings kept.

    A UTF-8 BOM is dropped; UTF-16 (with its BOM) is read as such; each other line
    is UTF-8 when it decodes so, else Windows-1252 / Latin-1 (older ANS files).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.number = 0
        self.utf8 = 0
        self.latin1 = 0
        self.utf16 = False

    def __iter__(self) -> Iterator[str]:
        head = self.stream.read(4096)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            self.utf16 = True
            text = io.TextIOWrapper(io.BufferedReader(_Prefixed(head, self.stream)),
                                    encoding="utf-16",
                                    errors="replace", newline="")
            for line in text:
                self.number += 1
                yield line
            return
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:]
        controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
        if b"\x00" in head or controls > len(head) // 20:
            self.number = 1
            raise UnicodeError("a binary file")
        for raw in _Prefixed(head, self.stream):
            self.number += 1
            try:
                line = raw.decode("utf-8")
                if not raw.isascii():
                    self.utf8 += 1
            except UnicodeDecodeError:
                line = _decode_latin(raw)
                self.latin1 += 1
            yield line

    @property
    def encoding(self) -> str:
        if self.utf16:
            return "UTF-16"
        if self.latin1 and self.utf8:
            return "mixte UTF-8 + Latin-1 / mixed"
        return "Latin-1 (Windows-1252)" if self.latin1 else "UTF-8"


def _decode_latin(raw: bytes) -> str:
    """Windows-1252, or Latin-1 when a byte is one of the five cp1252 leaves undefined."""
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Prefixed(io.RawIOBase):
    """A byte stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        reader = io.BufferedReader(self, 1 << 16)
        yield from reader


def guess_source(path: Path) -> Source:
    """``ans`` for a ``|``-separated extraction with its header, else ``contacts``."""
    if path.suffix.lower() == ".vcf":
        return "contacts"
    with _open_input(path) as (stream, _shown):
        head = stream.read(4096)
    first = head.split(b"\n", 1)[0]
    if first.count(b"|") >= 20 and b"Adresse BAL" in first.replace(b"\x00", b""):
        return "ans"
    return "contacts"


# --- parsers: lines -> rows --------------------------------------------------------

def _clean_address(value: str) -> str:
    value = value.strip().strip("<>").strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:"):]
    return value


def _row(source: Source, display: str, address: str, kind: str = "", code: str = "",
         label: str = "") -> Row:
    _, _, domain = address.rpartition("@")
    return (source, kind, display, address, ascii_domain(domain), code, label,
            name_key(display))


def _ans_rows(lines: Iterable[str], shown: str, report: ImportReport) -> Iterator[Row]:
    iterator = iter(lines)
    try:
        header_line = next(iterator)
    except StopIteration:
        raise DirectoryImportError("fichier vide", "empty file", file=shown, line=1) from None
    header = header_line.rstrip("\r\n").split("|")
    if header and header[-1].strip() == "" and len(header) == len(ANS_COLUMNS) + 1:
        header.pop()
    folded = [_column_key(h) for h in header]
    missing = [c for c in _ANS_NEEDED if _column_key(c) not in folded]
    if len(header) != len(ANS_COLUMNS) or missing:
        got = f"{len(header)} colonne(s) séparée(s) par « | »"
        raise DirectoryImportError(
            f"en-tête inattendu pour l'extraction MSSanté : {got} au lieu de "
            f"{len(ANS_COLUMNS)}" + (f", colonnes absentes : {', '.join(missing)}"
                                     if missing else ""),
            f"unexpected header for the MSSanté extraction: {len(header)} '|'-separated "
            f"column(s) instead of {len(ANS_COLUMNS)}"
            + (f", missing columns: {', '.join(missing)}" if missing else ""),
            file=shown, line=1)
    at = {c: folded.index(_column_key(c)) for c in _ANS_NEEDED}
    width = len(header)
    bad = 0
    for number, line in enumerate(iterator, start=2):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        report.rows_read += 1
        cells = line.split("|")
        if len(cells) == width + 1 and cells[-1].strip() == "":
            cells.pop()
        if len(cells) != width:
            report.skip("columns", number)
            bad += 1
            if report.rows_read >= 1000 and bad > MAX_BAD_SHARE * report.rows_read:
                raise DirectoryImportError(
                    f"trop de lignes mal formées ({bad} sur {report.rows_read}, par ex. ligne "
                    f"{report.skipped_lines['columns'][0]}) : ce n'est pas une extraction "
                    "MSSanté complète ; l'annuaire actuel est conservé",
                    f"too many malformed lines ({bad} of {report.rows_read}, e.g. line "
                    f"{report.skipped_lines['columns'][0]}): not a whole MSSanté extraction; "
                    "the current directory is kept", file=shown, line=number)
            continue
        address = _clean_address(cells[at["Adresse BAL"]])
        if not address:
            report.skip("no_address", number)
            continue
        if not _ADDRESS.fullmatch(address):
            report.skip("bad_address", number)
            continue
        kind = cells[at["Type de BAL"]].strip().upper()
        person = " ".join(p for p in (cells[at["Prénom d'exercice"]].strip(),
                                      cells[at["Nom d'exercice"]].strip()) if p)
        display = person or cells[at["Raison Sociale structure BAL"]].strip() or \
            cells[at["Service de rattachement"]].strip()
        yield _row("ans", display, address, kind, cells[at["Code Profession"]].strip(),
                   cells[at["Libellé Profession"]].strip())
    if report.rows_read and bad == report.rows_read:
        raise DirectoryImportError(
            "aucune ligne lisible : ce n'est pas une extraction MSSanté",
            "no readable line: not an MSSanté extraction", file=shown)


def _csv_rows(lines: Iterable[str], shown: str, report: ImportReport) -> Iterator[Row]:
    iterator = iter(lines)
    header_line = ""
    for header_line in iterator:
        if header_line.strip():
            break
    if not header_line.strip():
        raise DirectoryImportError("fichier vide", "empty file", file=shown, line=1)
    delimiter = max(",;\t", key=header_line.count)
    header = next(csv.reader([header_line], delimiter=delimiter))
    folded = [_column_key(h) for h in header]
    index: dict[str, int] = {}
    for key, names in _CSV_COLUMNS.items():
        wanted = {_column_key(n) for n in names}
        for i, h in enumerate(folded):
            if h in wanted:
                index.setdefault(key, i)
                break
    if not {"email", "email2", "mssante"} & set(index):
        raise DirectoryImportError(
            "en-tête attendu : une colonne d'adresse (email, courriel ou mssante) et le nom "
            "(nom, prénom), séparés par « , » « ; » ou une tabulation — ni vCard, ni "
            f"extraction MSSanté reconnue (colonnes lues : {', '.join(header)[:200]})",
            "expected header: an address column (email, courriel or mssante) and the name "
            "(nom, prénom), separated by ',' ';' or tab — not a vCard nor an MSSanté "
            f"extraction either (columns read: {', '.join(header)[:200]})",
            file=shown, line=1)
    reader = csv.reader(iterator, delimiter=delimiter)
    for row in reader:
        number = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        report.rows_read += 1

        def cell(key: str, row: list[str] = row) -> str:
            i = index.get(key)
            return row[i].strip() if i is not None and i < len(row) else ""

        display = cell("display") or " ".join(p for p in (cell("first"), cell("name")) if p)
        addresses = [_clean_address(cell(k)) for k in ("email", "email2", "mssante")]
        addresses = [a for a in dict.fromkeys(addresses) if a]
        if not addresses:
            report.skip("no_address", number)
            continue
        good = [a for a in addresses if _ADDRESS.fullmatch(a)]
        if not good:
            report.skip("bad_address", number)
            continue
        for address in good:
            yield _row("contacts", display, address)


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1),
                  value)


def _vcard_value(params: list[str], value: str) -> str:
    upper = [p.upper() for p in params]
    if "ENCODING=QUOTED-PRINTABLE" in upper or "QUOTED-PRINTABLE" in upper:
        charset = next((p.split("=", 1)[1] for p in params
                        if p.upper().startswith("CHARSET=")), "utf-8")
        raw = quopri.decodestring(value.encode("latin-1", errors="replace"))
        try:
            value = raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            value = _decode_latin(raw)
    return _unescape(value)


def _logical_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """vCard content lines unfolded (RFC 6350 3.2) and quoted-printable soft breaks joined."""
    pending = ""
    start = 0
    number = 0
    qp_continues = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if pending and (line[:1] in (" ", "\t")) and not qp_continues:
            pending += line[1:]
            continue
        if pending and qp_continues:
            pending = pending[:-1] + line.lstrip()
            qp_continues = pending.endswith("=") and "QUOTED-PRINTABLE" in \
                pending.split(":", 1)[0].upper()
            continue
        if pending:
            yield start, pending
        pending, start = line, number
        qp_continues = pending.endswith("=") and "QUOTED-PRINTABLE" in \
            pending.split(":", 1)[0].upper()
    if pending:
        yield start, pending


def _vcard_rows(lines: Iterable[str], shown: str, report: ImportReport) -> Iterator[Row]:
    card: dict[str, Any] | None = None
    seen_card = False
    for number, line in _logical_lines(lines):
        if not line.strip():
            continue
        name_part, colon, value = line.partition(":")
        if not colon:
            if card is None and not seen_card:
                raise DirectoryImportError(
                    "ce n'est pas une vCard (BEGIN:VCARD attendu en première ligne)",
                    "not a vCard (BEGIN:VCARD expected on the first line)",
                    file=shown, line=number)
            continue
        parts = name_part.split(";")
        prop = parts[0].rsplit(".", 1)[-1].strip().upper()  # item1.EMAIL -> EMAIL
        params = parts[1:]
        if prop == "BEGIN" and value.strip().upper() == "VCARD":
            if card is not None:
                raise DirectoryImportError(
                    "vCard précédente non terminée (END:VCARD manquant)",
                    "previous vCard not closed (END:VCARD missing)", file=shown, line=number)
            card = {"line": number, "fn": "", "n": "", "emails": []}
            seen_card = True
            continue
        if card is None:
            if not seen_card:
                raise DirectoryImportError(
                    "ce n'est pas une vCard (BEGIN:VCARD attendu en première ligne)",
                    "not a vCard (BEGIN:VCARD expected on the first line)",
                    file=shown, line=number)
            continue
        if prop == "END" and value.strip().upper() == "VCARD":
            report.rows_read += 1
            yield from _card_rows(card, report)
            card = None
        elif prop == "FN":
            card["fn"] = _vcard_value(params, value).strip()
        elif prop == "N":
            fields = [_vcard_value(params, v).strip() for v in re.split(r"(?<!\\);", value)]
            fields += [""] * (5 - len(fields))
            card["n"] = " ".join(p for p in (fields[3], fields[1], fields[2], fields[0]) if p)
        elif prop == "EMAIL":
            card["emails"].append(_clean_address(_vcard_value(params, value)))
    if card is not None:
        raise DirectoryImportError(
            "vCard non terminée en fin de fichier (END:VCARD manquant : fichier tronqué ?)",
            "vCard not closed at the end of the file (END:VCARD missing: truncated file?)",
            file=shown, line=card["line"])
    if not seen_card:
        raise DirectoryImportError("aucune vCard dans le fichier", "no vCard in the file",
                                   file=shown, line=1)


def _card_rows(card: dict[str, Any], report: ImportReport) -> Iterator[Row]:
    emails = [e for e in dict.fromkeys(card["emails"]) if e]
    if not emails:
        report.skip("no_address", card["line"])
        return
    good = [e for e in emails if _ADDRESS.fullmatch(e)]
    if not good:
        report.skip("bad_address", card["line"])
        return
    display = card["fn"] or card["n"]
    for address in good:
        yield _row("contacts", display, address)


def _rows(lines: _Lines, shown: str, source: Source, report: ImportReport) -> Iterator[Row]:
    if source == "ans":
        return _ans_rows(lines, shown, report)
    # contacts: a vCard when the first non-blank line says so, else CSV
    iterator = iter(lines)
    buffered: list[str] = []
    for line in iterator:
        buffered.append(line)
        if line.strip():
            break
    first = buffered[-1].strip().upper() if buffered else ""
    chained = itertools.chain(buffered, iterator)
    if first.startswith("BEGIN:VCARD") or shown.lower().endswith(".vcf"):
        return _vcard_rows(chained, shown, report)
    return _csv_rows(chained, shown, report)


# --- writing: a new file, renamed over the old one -----------------------------------

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    source TEXT NOT NULL, kind TEXT NOT NULL, display_name TEXT NOT NULL,
    address TEXT NOT NULL, domain TEXT NOT NULL, profession_code TEXT NOT NULL,
    profession_label TEXT NOT NULL, name_key TEXT NOT NULL
);
CREATE TABLE imports (
    source TEXT PRIMARY KEY, file TEXT NOT NULL, imported_at TEXT NOT NULL,
    encoding TEXT NOT NULL, rows_read INTEGER NOT NULL, kept INTEGER NOT NULL,
    skipped TEXT NOT NULL, seconds REAL NOT NULL
);
"""
# Rows are first gathered (and de-duplicated) in a staging file, then written to the
# directory sorted by name key: a name's entries share a page or two, so by_name()
# reads little even for common names.
_STAGING = """
PRAGMA staging.journal_mode = OFF;
PRAGMA staging.synchronous = OFF;
CREATE TABLE staging.entries (
    source TEXT NOT NULL, kind TEXT NOT NULL, display_name TEXT NOT NULL,
    address TEXT NOT NULL, domain TEXT NOT NULL, profession_code TEXT NOT NULL,
    profession_label TEXT NOT NULL, name_key TEXT NOT NULL
);
CREATE UNIQUE INDEX staging.entries_unique ON entries (address, name_key, source);
"""
_INDEXES = """
CREATE INDEX entries_address ON entries (address);
CREATE INDEX entries_name ON entries (name_key);
CREATE INDEX entries_domain ON entries (domain);
CREATE TABLE domains (domain TEXT NOT NULL, source TEXT NOT NULL, entries INTEGER NOT NULL,
                      PRIMARY KEY (domain, source)) WITHOUT ROWID;
INSERT INTO domains SELECT domain, source, count(*) FROM entries GROUP BY domain, source;
"""


def default_path(cfg: Config) -> Path:
    """Where the directory lives: ``[directory] file`` or ``<data_dir>/directory.sqlite3``."""
    if cfg.directory.file:
        return Path(cfg.directory.file).expanduser()
    return cfg.data_dir / "directory.sqlite3"


def _previous_count(db_path: Path, source: str) -> int:
    """How many entries of ``source`` the directory holds now (0 without one)."""
    if not db_path.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT COUNT(*) FROM entries WHERE source = ?",
                             (source,)).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


# A re-import that keeps less than this share of the previous entries of its source is
# refused without --force: most often a truncated download, not the directory shrinking.
SHRINK_LIMIT = 0.5


def import_file(db_path: Path, file: Path, source: Source | None = None, *,
                force: bool = False) -> ImportReport:
    """Replace one source of the directory with the content of ``file``, atomically.

    The other source's rows are copied into a new SQLite file, the file is streamed
    into it, indexes are built, and the new file is renamed over the old one; any
    error removes the new file and leaves the old directory as it was.
    """
    started = time.monotonic()
    if source is None:
        source = guess_source(file)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db_path.with_name(db_path.name + ".lock")
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryImportError(
                "une autre importation est en cours ; réessayez quand elle sera finie",
                "another import is running; try again once it is done",
                file=str(db_path)) from None
        for stale in db_path.parent.glob(f".{db_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by an import that was killed: we hold the lock
        tmp = db_path.with_name(f".{db_path.name}.{os.getpid()}.tmp")
        try:
            report = _build(tmp, db_path, file, source)
            before = _previous_count(db_path, source)
            if not force and before >= 100 and report.kept < before * SHRINK_LIMIT:
                raise DirectoryImportError(
                    f"ce fichier ne donne que {report.kept} entrées là où l'annuaire en a "
                    f"{before} : fichier tronqué ou incomplet ? Vérifiez-le, ou relancez avec "
                    "--force si c'est voulu",
                    f"this file gives only {report.kept} entries where the directory has "
                    f"{before}: a truncated or incomplete file? Check it, or run again with "
                    "--force if this is intended", file=str(file))
            report.seconds = time.monotonic() - started
            with contextlib.closing(sqlite3.connect(tmp)) as db:
                db.execute("UPDATE imports SET seconds = ? WHERE source = ?",
                           (report.seconds, source))
                db.commit()
            _fsync(tmp)
            os.replace(tmp, db_path)
            _fsync_dir(db_path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return report


def _build(tmp: Path, old: Path, file: Path, source: Source) -> ImportReport:
    report = ImportReport(source, str(file))
    staging = tmp.with_name(tmp.name.removesuffix(".tmp") + ".staging.tmp")
    try:
        with contextlib.closing(sqlite3.connect(_uri(tmp), uri=True)) as db:
            _build_into(db, staging, old, file, source, report)
    finally:
        staging.unlink(missing_ok=True)
    return report


def _uri(path: Path, query: str = "") -> str:
    return "file:" + urllib.parse.quote(str(path)) + (f"?{query}" if query else "")


def _build_into(db: sqlite3.Connection, staging: Path, old: Path, file: Path, source: Source,
                report: ImportReport) -> None:
    db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                     "PRAGMA cache_size = -16000; PRAGMA temp_store = FILE;")
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    db.execute("ATTACH DATABASE ? AS staging", (_uri(staging),))
    db.executescript(_STAGING)
    if old.exists():
        try:
            db.execute("ATTACH DATABASE ? AS old", (_uri(old, "mode=ro"),))
        except sqlite3.Error:
            pass
        else:
            try:
                db.execute("INSERT INTO staging.entries SELECT source, kind, display_name, "
                           "address, domain, profession_code, profession_label, name_key "
                           "FROM old.entries WHERE source != ?", (source,))
                db.execute("INSERT INTO imports SELECT * FROM old.imports WHERE source != ?",
                           (source,))
            except sqlite3.Error as exc:
                raise DirectoryImportError(
                    f"annuaire actuel illisible ({exc}) : supprimez-le puis réimportez "
                    "chaque source", f"current directory unreadable ({exc}): delete it "
                    "then import each source again", file=str(old)) from None
            db.commit()
            db.execute("DETACH DATABASE old")
    with _open_input(file) as (stream, shown):
        report.file = shown
        lines = _Lines(stream)
        insert = ("INSERT OR IGNORE INTO staging.entries (source, kind, display_name, "
                  "address, domain, profession_code, profession_label, name_key) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        batch: list[Row] = []
        produced = 0
        try:
            for row in _rows(lines, shown, source, report):
                produced += 1
                batch.append(row)
                if len(batch) >= BATCH:
                    report.kept += _insert(db, insert, batch)
                    batch.clear()
            report.kept += _insert(db, insert, batch)
        except UnicodeError:
            raise DirectoryImportError(
                "fichier binaire ou d'un codage inconnu : attendu un texte (CSV, vCard, "
                "extraction MSSanté)", "binary file or unknown encoding: expected text "
                "(CSV, vCard, MSSanté extraction)", file=shown, line=lines.number) from None
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise DirectoryImportError(
                f"lecture interrompue ({exc}) : fichier abîmé ou tronqué ; l'annuaire "
                "actuel est conservé", f"reading stopped ({exc}): damaged or truncated "
                "file; the current directory is kept", file=shown,
                line=lines.number) from None
        report.encoding = lines.encoding
    if produced > report.kept:
        report.skipped["duplicate"] = produced - report.kept
    if report.kept == 0 and report.rows_read == 0:
        raise DirectoryImportError("aucune entrée dans le fichier",
                                   "no entry in the file", file=report.file)
    db.execute("INSERT INTO main.entries SELECT * FROM staging.entries "
               "ORDER BY name_key, address")
    db.commit()
    db.execute("DETACH DATABASE staging")
    staging.unlink(missing_ok=True)
    db.executescript(_INDEXES)
    report.total_entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    db.execute("INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (source, report.file, datetime.datetime.now(datetime.UTC).isoformat(
                   timespec="seconds"), report.encoding, report.rows_read,
                report.kept, json.dumps(report.skipped), 0.0))
    db.commit()


def _insert(db: sqlite3.Connection, insert: str, batch: list[Row]) -> int:
    if not batch:
        return 0
    before = db.total_changes
    db.executemany(insert, batch)
    return db.total_changes - before


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading: the look-ups of the inbound check ------------------------------------

def load_skeleton(rules: Path) -> Skeleton:
    """The confusable-character table of ``rules/confusables.txt``."""
    path = rules / "confusables.txt"
    try:
        return Skeleton.from_text(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"table des caractères trompeurs illisible ({exc.strerror})",
                          f"unreadable confusables table ({exc.strerror})",
                          file=str(path)) from None
    except ValueError as exc:
        raise ConfigError(f"table des caractères trompeurs incorrecte ({exc})",
                          f"bad confusables table ({exc})", file=str(path)) from None


_SELECT = ("SELECT source, display_name, address, domain, kind, profession_code, "
           "profession_label FROM entries ")
# A name shared by more people than this (a common name in the ANS extraction) is
# answered with the first ones only: the assessment needs to know they exist.
MAX_NAME_ENTRIES = 50


class Directory:
    """The directory opened read-only: cheap indexed look-ups, thread-safe.

    A missing file is an empty directory. A re-import (a new file renamed over the
    old one) is picked up by ``refresh()``, which the look-ups call at most every
    ``recheck`` seconds (one ``stat``).
    """

    def __init__(self, path: Path, skeleton: Skeleton, *, webmail: frozenset[str] = frozenset(),
                 protected: Iterable[str] = (), recheck: float = 5.0) -> None:
        self.path = path
        self.skeleton = skeleton
        self.webmail = webmail
        self.extra_protected = tuple(ascii_domain(d) for d in protected if d.strip())
        self.recheck = recheck
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._checked = 0.0
        self._lookalikes: LookalikeIndex | None = None
        self._open()

    @classmethod
    def for_config(cls, cfg: Config, *, webmail: frozenset[str] = frozenset()) -> Directory:
        from gateway.policy import rules_dir

        return cls(default_path(cfg), load_skeleton(rules_dir(cfg)), webmail=webmail,
                   protected=[*cfg.directory.protected_domains, *cfg.inbound.domains])

    def _open(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._lookalikes = None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._identity = None
            return
        self._identity = (st.st_ino, st.st_mtime_ns)
        db = sqlite3.connect(_uri(self.path, "mode=ro"), uri=True, check_same_thread=False)
        try:
            version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ConfigError(f"annuaire illisible ({exc}) : réimportez-le avec « vigie "
                              "directory import »", f"unreadable directory ({exc}): import it "
                              "again with 'vigie directory import'",
                              file=str(self.path)) from None
        if version is None or version[0] != SCHEMA_VERSION:
            db.close()
            raise ConfigError("annuaire d'une autre version : réimportez-le avec « vigie "
                              "directory import »", "directory of another version: import it "
                              "again with 'vigie directory import'", file=str(self.path))
        db.execute("PRAGMA cache_size = -2000")
        self._db = db

    def refresh(self, *, force: bool = False) -> None:
        """Reopen the file when it was replaced (checked at most every ``recheck`` s)."""
        now = time.monotonic()
        if not force and now - self._checked < self.recheck:
            return
        self._checked = now
        try:
            st = self.path.stat()
            identity: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            identity = None
        if identity != self._identity:
            self._open()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _query(self, sql: str, params: Sequence[str]) -> list[tuple[Any, ...]]:
        with self._lock:
            self.refresh()
            if self._db is None:
                return []
            return self._db.execute(sql, params).fetchall()

    @staticmethod
    def _entries(rows: list[tuple[Any, ...]]) -> list[DirectoryEntry]:
        return [DirectoryEntry(source=r[0], display_name=r[1], address=r[2], domain=r[3],
                               kind=r[4], profession_code=r[5], profession_label=r[6])
                for r in rows]

    # --- DirectoryLookup ---------------------------------------------------
    def by_address(self, address: str) -> list[DirectoryEntry]:
        return self._entries(self._query(_SELECT + "WHERE address = ?",
                                         (address.strip().lower(),)))

    def by_name(self, display_name: str) -> list[DirectoryEntry]:
        key = name_key(display_name)
        if not key:
            return []
        return self._entries(self._query(
            _SELECT + f"WHERE name_key = ? ORDER BY source = 'ans' LIMIT {MAX_NAME_ENTRIES}",
            (key,)))

    def is_directory_domain(self, domain: str) -> bool:
        labels = ascii_domain(domain).split(".")
        parents = [".".join(labels[i:]) for i in range(len(labels) - 1)]
        if not parents:
            return False
        marks = ", ".join("?" * len(parents))
        return bool(self._query(f"SELECT 1 FROM domains WHERE domain IN ({marks}) LIMIT 1",  # noqa: S608
                                parents))

    def lookalikes(self) -> LookalikeIndex:
        with self._lock:
            self.refresh()
            if self._lookalikes is None:
                self._lookalikes = LookalikeIndex.build(self._protected(), self.skeleton)
            return self._lookalikes

    def _protected(self) -> Iterator[str]:
        yield MSSANTE
        yield from self.extra_protected
        if self._db is None:
            return
        for (domain,) in self._db.execute("SELECT DISTINCT domain FROM domains"):
            if domain == MSSANTE or domain.endswith("." + MSSANTE):
                continue  # all of them are mssante.fr for the comparison
            if not in_domains(domain, self.webmail):
                yield domain

    # --- for people -----------------------------------------------------------
    def search(self, text: str, limit: int = 20) -> list[DirectoryEntry]:
        """Entries for an address, a domain (``@domain`` or ``domain.fr``) or a name."""
        text = text.strip()
        if "@" in text and not text.startswith("@"):
            return self.by_address(text)
        if text.startswith("@") or ("." in text and " " not in text):
            return self._entries(self._query(_SELECT + f"WHERE domain = ? LIMIT {limit}",
                                             (ascii_domain(text.lstrip("@")),)))
        return self.by_name(text)[:limit]

    def stats(self) -> dict[str, Any]:
        """Counts per source and profession, distinct domains, the last imports."""
        with self._lock:
            self.refresh(force=True)
            if self._db is None:
                return {"entries": {}, "domains": 0, "professions": [], "imports": []}
            db = self._db
            entries = dict(db.execute("SELECT source, count(*) FROM entries GROUP BY source"))
            domains = db.execute("SELECT count(DISTINCT domain) FROM domains").fetchone()[0]
            professions = db.execute(
                "SELECT profession_code, max(profession_label), count(*) FROM entries "
                "WHERE source = 'ans' GROUP BY profession_code ORDER BY 3 DESC LIMIT 10"
            ).fetchall()
            imports = [dict(zip(("source", "file", "imported_at", "encoding", "rows_read",
                                 "kept", "skipped", "seconds"), row, strict=True))
                       for row in db.execute("SELECT * FROM imports ORDER BY source")]
        for item in imports:
            item["skipped"] = json.loads(item["skipped"])
        return {"entries": entries, "domains": domains, "professions": professions,
                "imports": imports}


# --- the `vigie directory` commands ---------------------------------------------------

def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    """Add ``vigie directory import|stats|lookup`` to the main parser."""
    d = sub.add_parser("directory", parents=[common],
                       help="annuaire des confrères / directory of confrères")
    dsub = d.add_subparsers(dest="directory_cmd", required=True)
    di = dsub.add_parser("import", parents=[common], help=(
        "importer des contacts (CSV, vCard) ou l'extraction MSSanté (.txt, .csv, .zip) / "
        "import contacts or the MSSanté extraction"))
    di.add_argument("file")
    di.add_argument("--source", choices=SOURCES, help=(
        "contacts du cabinet ou annuaire ANS (deviné d'après le fichier sinon) / "
        "practice contacts or ANS directory (guessed from the file otherwise)"))
    di.add_argument("--force", action="store_true", help=(
        "accepter un fichier qui réduit fortement l'annuaire / accept a file that shrinks "
        "the directory a lot"))
    dsub.add_parser("stats", parents=[common], help="contenu de l'annuaire / what it holds")
    dl = dsub.add_parser("lookup", parents=[common],
                         help="chercher un nom, une adresse ou un domaine / look up a name, "
                              "an address or a domain")
    dl.add_argument("text", metavar="NAME-OR-ADDRESS")
    d.set_defaults(func=cmd_directory)


def _print_report(report: ImportReport) -> None:
    label_fr = {"contacts": "contacts du cabinet", "ans": "annuaire MSSanté (ANS)"}
    print(f"Import terminé : {label_fr[report.source]} depuis {report.file}")
    print(f"  codage / encoding : {report.encoding}")
    print(f"  lignes lues / rows read : {report.rows_read}")
    print(f"  entrées gardées / entries kept : {report.kept}")
    for reason, count in sorted(report.skipped.items()):
        lines = report.skipped_lines.get(reason, [])
        where = f" (lignes / lines {', '.join(map(str, lines))}…)" if lines else ""
        print(f"  ignorées / skipped : {count} — {SKIP_FR[reason]} / {SKIP_EN[reason]}{where}")
    print(f"  durée / time : {report.seconds:.1f} s")
    print(f"  total de l'annuaire / directory total : {report.total_entries} entrées / entries")
    print(f"Import done: {report.source} from {report.file}")


def _print_entry(entry: DirectoryEntry) -> None:
    profession = f" — {entry.profession_label}" if entry.profession_label else ""
    kind = f" [{entry.kind}]" if entry.kind else ""
    print(f"  {entry.display_name or '(sans nom / no name)'} <{entry.address}>{profession}"
          f"{kind} ({entry.source})")


def cmd_directory(args: argparse.Namespace) -> int:
    from gateway.config import load

    cfg = load(args.config)
    path = default_path(cfg)
    if args.directory_cmd == "import":
        try:
            report = import_file(path, Path(args.file).expanduser(), args.source,
                                 force=args.force)
        except DirectoryImportError as exc:
            print(f"vigie: {exc}\nl'annuaire n'a pas été modifié / the directory was not "
                  "changed", file=sys.stderr)
            return 2
        _print_report(report)
        return 0
    from gateway.policy import rules_dir

    directory = Directory(path, load_skeleton(rules_dir(cfg)))
    try:
        if args.directory_cmd == "stats":
            stats = directory.stats()
            if not stats["entries"]:
                print(f"annuaire vide / empty directory ({path}) : « vigie directory import "
                      "FICHIER »")
                return 0
            print(f"Annuaire / directory : {path}")
            for source, count in sorted(stats["entries"].items()):
                print(f"  {source} : {count} entrées / entries")
            print(f"  domaines distincts / distinct domains : {stats['domains']}")
            if stats["professions"]:
                print("  professions (ANS) :")
                for code, label, count in stats["professions"]:
                    print(f"    {code or '-'} {label or '(sans profession / none)'} : {count}")
            for item in stats["imports"]:
                print(f"  dernier import / last import {item['source']} : {item['imported_at']}"
                      f", {item['file']}, {item['kept']} gardées / kept, "
                      f"{item['seconds']:.1f} s")
            return 0
        entries = directory.search(args.text)
        if not entries:
            print(f"aucune entrée pour « {args.text} » / no entry for '{args.text}'")
            return 1
        print(f"{len(entries)} entrée(s) / entries :")
        for entry in entries:
            _print_entry(entry)
        return 0
    finally:
        directory.close()
