"""The practice's contacts (confrères): a simple CSV for now, looked up by address or name.

CSV columns (header row, any order, French or English names): nom/name,
prénom/first name (optional), email/adresse/courriel, mssante. Separator
«,», «;» or tab; UTF-8 or Windows-1252.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from gateway.config import ConfigError

_COLUMNS = {
    "name": ("nom", "name", "last name", "nom d'exercice"),
    "first": ("prenom", "first name", "firstname", "prenom d'exercice"),
    "email": ("email", "e-mail", "adresse", "courriel", "mail", "adresse mail"),
    "mssante": ("mssante", "adresse mssante", "bal mssante", "adresse bal"),
}


def fold_name(text: str) -> str:
    """'Dr Jean-Pierre DUPONT' and 'dupont jean pierre' fold to the same key."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    words = [w for w in re.split(r"[^a-z0-9]+", text)
             if w and w not in ("dr", "docteur", "pr", "professeur", "m", "mme", "mr")]
    return " ".join(sorted(words))


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
