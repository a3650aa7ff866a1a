"""The directory store: streaming imports of real CSV, vCard and ANS files, atomic
replacement per source, look-ups."""

from __future__ import annotations

import fcntl
import sqlite3
import zipfile
from pathlib import Path

import pytest

from gateway.config import ConfigError, load
from gateway.directory import (
    ANS_COLUMNS,
    Directory,
    DirectoryImportError,
    default_path,
    guess_source,
    import_file,
    load_skeleton,
)
from gateway.policy import rules_dir

SKELETON = load_skeleton(rules_dir())


def ans_line(address: str, last: str = "", first: str = "", *, kind: str = "PER",
             code: str = "70", label: str = "Masseur-Kinésithérapeute", org: str = "",
             trailing: bool = True) -> str:
    cells = [""] * len(ANS_COLUMNS)
    cells[0], cells[1], cells[9], cells[10] = kind, address, last, first
    cells[13], cells[14], cells[18] = code, label, org
    cells[2], cells[3], cells[28], cells[30] = "8", "10001234567", "69003", "France"
    return "|".join(cells) + ("|" if trailing else "")


def ans_text(lines: list[str], trailing: bool = True) -> str:
    header = "|".join(ANS_COLUMNS) + ("|" if trailing else "")
    return "\n".join([header, *lines]) + "\n"


ROWS = [
    ans_line("jean-pierre.dupont@medecin.mssante.fr", "DUPONT", "Jean-Pierre", code="10",
             label="Médecin"),
    ans_line("eloise.lefevre@masseur-kinesitherapeute.mssante.fr", "LEFÈVRE", "Éloïse"),
    ans_line("eloise.lefevre@masseur-kinesitherapeute.mssante.fr", "LEFÈVRE", "Éloïse"),
    ans_line("secretariat@ch-xyz.mssante.fr", kind="ORG", code="", label="",
             org="Centre Hospitalier XYZ"),
    ans_line("", "SANSADRESSE", "Paul"),
    ans_line("pas-une-adresse", "MAUVAISE", "Adresse"),
]


def write(path: Path, text: str, encoding: str = "utf-8", bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "directory.sqlite3"


def open_dir(db: Path, **kw: object) -> Directory:
    return Directory(db, SKELETON, **kw)  # type: ignore[arg-type]


# --- ANS extraction ------------------------------------------------------------------

@pytest.mark.parametrize(("encoding", "bom", "trailing", "shown"), [
    ("utf-8", False, True, "UTF-8"),
    ("utf-8", True, True, "UTF-8"),
    ("latin-1", False, True, "Latin-1 (Windows-1252)"),
    ("cp1252", False, False, "Latin-1 (Windows-1252)"),
])
def test_ans_import(tmp_path: Path, db: Path, encoding: str, bom: bool, trailing: bool,
                    shown: str) -> None:
    rows = [r if trailing else r[:-1] for r in ROWS]
    src = write(tmp_path / "extraction.txt", ans_text(rows, trailing), encoding, bom)
    assert guess_source(src) == "ans"
    report = import_file(db, src)
    assert report.source == "ans"
    assert report.encoding == shown
    assert (report.rows_read, report.kept) == (6, 3)
    assert report.skipped == {"duplicate": 1, "no_address": 1, "bad_address": 1}
    assert report.skipped_lines["no_address"] == [6]
    d = open_dir(db)
    [e] = d.by_address("Eloise.Lefevre@masseur-kinesitherapeute.mssante.fr")
    assert (e.display_name, e.profession_code, e.kind, e.source) == (
        "Éloïse LEFÈVRE", "70", "PER", "ans")
    assert [x.address for x in d.by_name("Dr LEFEVRE Eloise")] == [e.address]
    assert [x.address for x in d.by_name("dupont jean pierre")] == [
        "jean-pierre.dupont@medecin.mssante.fr"]
    assert d.by_name("Centre hospitalier xyz")[0].kind == "ORG"
    assert d.is_directory_domain("medecin.mssante.fr")
    assert not d.is_directory_domain("mssante.fr")
    assert not d.is_directory_domain("example.org")
    # every *.mssante.fr domain counts as mssante.fr for look-alikes
    assert set(d.lookalikes().protected) == {"mssante.fr"}
    d.close()


def test_ans_in_a_zip(tmp_path: Path, db: Path) -> None:
    archive = tmp_path / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("LISEZMOI.txt", "notice")
        z.writestr("Extraction_Correspondance_MSSante_20261129.txt", ans_text(ROWS * 50))
    assert guess_source(archive) == "ans"
    report = import_file(db, archive)
    assert report.kept == 3
    assert report.file.endswith(":Extraction_Correspondance_MSSante_20261129.txt")


def test_ans_bad_header(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "good.txt", ans_text(ROWS)))
    bad = write(tmp_path / "bad.txt", "Type de BAL|Adresse BAL|Nom\nPER|a@b.mssante.fr|X\n")
    with pytest.raises(DirectoryImportError) as caught:
        import_file(db, bad, "ans")
    text = str(caught.value)
    assert "bad.txt, ligne 1 : en-tête inattendu" in text
    assert "3 colonne(s)" in text and "au lieu de 31" in text
    assert "bad.txt, line 1: unexpected header" in text
    assert open_dir(db).stats()["entries"] == {"ans": 3}
    assert sorted(p.name for p in db.parent.iterdir()) == [
        "directory.sqlite3", "directory.sqlite3.lock"]


def test_ans_too_many_malformed_lines_keeps_the_old_directory(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "good.txt", ans_text(ROWS)))
    lines = [ans_line(f"p{i}@medecin.mssante.fr", f"NOM{i}", "X") for i in range(900)]
    lines += ["PER|cut|short"] * 300
    with pytest.raises(DirectoryImportError, match="trop de lignes mal formées"):
        import_file(db, write(tmp_path / "cut.txt", ans_text(lines)))
    d = open_dir(db)
    assert d.stats()["entries"] == {"ans": 3}
    assert not d.by_address("p1@medecin.mssante.fr")
    # a few bad lines in a good file are skipped and counted
    report = import_file(db, write(tmp_path / "few.txt", ans_text(lines[:900] + lines[-3:])))
    assert (report.kept, report.skipped) == (900, {"columns": 3})


def test_damaged_zip_mid_import_keeps_the_old_directory(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "good.txt", ans_text(ROWS)))
    archive = tmp_path / "damaged.zip"
    body = ans_text([ans_line(f"p{i}@medecin.mssante.fr", f"NOM{i}", "X")
                     for i in range(3000)])
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.writestr("extraction.txt", body)
    raw = bytearray(archive.read_bytes())
    middle = raw.index(b"p1500@")
    raw[middle:middle + 5] = b"q9999"  # same length: the CRC fails at the end
    archive.write_bytes(bytes(raw))
    with pytest.raises(DirectoryImportError) as caught:
        import_file(db, archive, "ans")
    assert "l'annuaire actuel est conservé" in str(caught.value)
    assert open_dir(db).stats()["entries"] == {"ans": 3}
    assert not list(db.parent.glob(".*.tmp"))


def test_sources_are_replaced_separately(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "ans.txt", ans_text(ROWS)))
    import_file(db, write(tmp_path / "c.csv", "nom;prénom;email\nCurie;Marie;mc@cabinet.fr\n"))
    d = open_dir(db, recheck=0.0)
    assert d.stats()["entries"] == {"ans": 3, "contacts": 1}
    # a new extraction replaces the ANS rows only
    import_file(db, write(tmp_path / "ans2.txt", ans_text(ROWS[:1])))
    assert d.stats()["entries"] == {"ans": 1, "contacts": 1}
    # new contacts replace the contacts only
    import_file(db, write(tmp_path / "c2.csv", "nom,email\nA B,a@b.fr\nC D,c@d.fr\n"))
    assert d.stats()["entries"] == {"ans": 1, "contacts": 2}
    assert d.by_address("a@b.fr") and not d.by_address("mc@cabinet.fr")
    assert {i["source"] for i in d.stats()["imports"]} == {"ans", "contacts"}
    d.close()


def test_open_reader_picks_up_a_reimport(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "c.csv", "nom,email\nA B,a@b.fr\n"))
    d = open_dir(db, recheck=3600.0)
    assert d.by_address("a@b.fr")
    import_file(db, write(tmp_path / "c2.csv", "nom,email\nC D,c@d.fr\n"))
    assert d.by_address("a@b.fr")  # still the old file until the next check
    d.refresh(force=True)
    assert not d.by_address("a@b.fr") and d.by_address("c@d.fr")
    d.close()


def test_one_import_at_a_time(tmp_path: Path, db: Path) -> None:
    db.parent.mkdir(parents=True)
    with (db.parent / "directory.sqlite3.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(DirectoryImportError, match="une autre importation est en cours"):
            import_file(db, write(tmp_path / "c.csv", "nom,email\nA B,a@b.fr\n"))
    assert not db.exists()


# --- contacts: CSV -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "encoding"), [
    ("nom,prénom,email\nCurie,Marie,marie.curie@cabinet.fr\n", "utf-8"),
    ("Nom;Prénom;Courriel;MSSanté\nCurie;Marie;marie.curie@cabinet.fr;\n", "cp1252"),
    ("nom\tprenom\tadresse mail\nCurie\tMarie\tmarie.curie@cabinet.fr\n", "utf-8"),
    ('First Name,Last Name,Display Name,Nickname,Primary Email,Secondary Email\n'
     'Marie,Curie,"Curie, Marie",,marie.curie@cabinet.fr,\n', "utf-8"),  # Thunderbird
    ("Name,Given Name,Family Name,E-mail 1 - Value\n"
     "Marie Curie,Marie,Curie,<MARIE.CURIE@cabinet.fr>\n", "utf-8"),  # Google
])
def test_contacts_csv(tmp_path: Path, db: Path, text: str, encoding: str) -> None:
    src = write(tmp_path / "contacts.csv", text, encoding)
    assert guess_source(src) == "contacts"
    report = import_file(db, src)
    assert (report.source, report.kept) == ("contacts", 1)
    [e] = open_dir(db).by_name("Dr Marie CURIE")
    assert e.address == "marie.curie@cabinet.fr"
    assert e.source == "contacts"


def test_contacts_csv_several_addresses_and_skips(tmp_path: Path, db: Path) -> None:
    src = write(tmp_path / "c.csv", "nom;prénom;email;mssante\n"
                "Léon;André;andre.leon@gmail.com;andre.leon@masseur-kinesitherapeute.mssante.fr\n"
                "Sans;Adresse;;\n"
                ";;\n"
                "Mauvaise;Adresse;pas-une-adresse;\n"
                '"Guillemets; point-virgule";Anne;anne@cabinet.fr;\n', "cp1252")
    report = import_file(db, src)
    assert (report.rows_read, report.kept) == (4, 3)
    assert report.skipped == {"no_address": 1, "bad_address": 1}
    assert report.skipped_lines == {"no_address": [3], "bad_address": [5]}
    d = open_dir(db)
    assert len(d.by_name("Andre Leon")) == 2
    assert d.by_name("Anne Guillemets point virgule")
    assert d.is_directory_domain("gmail.com")
    # a contact's webmail domain is not protected against look-alikes; the others are
    d2 = open_dir(db, webmail=frozenset({"gmail.com"}), protected=["cabinet-kine.fr"])
    assert set(d2.lookalikes().protected) == {"mssante.fr", "cabinet.fr", "cabinet-kine.fr"}


def test_contacts_csv_without_an_address_column(tmp_path: Path, db: Path) -> None:
    with pytest.raises(DirectoryImportError) as caught:
        import_file(db, write(tmp_path / "c.csv", "nom;prénom;téléphone\nA;B;0102030405\n"))
    assert "c.csv, ligne 1 : en-tête attendu" in str(caught.value)
    assert not db.exists()


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_files(tmp_path: Path, db: Path, text: str) -> None:
    with pytest.raises(DirectoryImportError, match="fichier vide"):
        import_file(db, write(tmp_path / "c.csv", text))


def test_binary_file(tmp_path: Path, db: Path) -> None:
    src = tmp_path / "photo.csv"
    src.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DirectoryImportError, match="fichier binaire"):
        import_file(db, src)


def test_utf16_csv(tmp_path: Path, db: Path) -> None:  # Excel's «Unicode text»
    src = tmp_path / "c.csv"
    src.write_bytes("nom\tprénom\temail\r\nLéon\tAndré\ta@b.fr\r\n".encode("utf-16"))
    report = import_file(db, src)
    assert (report.kept, report.encoding) == (1, "UTF-16")
    assert open_dir(db).by_name("André Léon")


# --- contacts: vCard ----------------------------------------------------------------

VCARDS = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dr Marie Curie\r\nN:Curie;Marie;;Dr;\r\n"
    "EMAIL;TYPE=INTERNET,WORK:marie.curie@cabinet-\r\n curie.fr\r\n"
    "item1.EMAIL;TYPE=INTERNET:marie.curie@infirmier.mssante.fr\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\nVERSION:4.0\nFN:Jean-Pierre Dupont\nEMAIL;PREF=1:jp@cabinet-dupont.fr\n"
    "END:VCARD\n"
    "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=Windows-1252;ENCODING=QUOTED-PRINTABLE:L=E9on;Andr=\r\n"
    "=E9;;;\r\nEMAIL;PREF;INTERNET:andre.leon@gmail.com\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Sans adresse\r\nTEL:0102030405\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Virgule\\, échappée\r\nEMAIL:v@e.fr\r\nEND:VCARD\r\n"
)


def test_vcards(tmp_path: Path, db: Path) -> None:
    src = write(tmp_path / "contacts.vcf", VCARDS)
    assert guess_source(src) == "contacts"
    report = import_file(db, src)
    assert (report.rows_read, report.kept) == (5, 5)
    assert report.skipped == {"no_address": 1}
    d = open_dir(db)
    assert {e.address for e in d.by_name("Marie Curie")} == {
        "marie.curie@cabinet-curie.fr", "marie.curie@infirmier.mssante.fr"}
    assert d.by_name("Dupont Jean Pierre")[0].address == "jp@cabinet-dupont.fr"
    [leon] = d.by_address("andre.leon@gmail.com")
    assert leon.display_name == "André Léon"
    assert d.by_address("v@e.fr")[0].display_name == "Virgule, échappée"


def test_vcard_without_extension(tmp_path: Path, db: Path) -> None:
    report = import_file(db, write(tmp_path / "export.txt", "\n" + VCARDS, bom=True),
                         "contacts")
    assert report.kept == 5


@pytest.mark.parametrize(("text", "message", "line"), [
    ("VERSION:3.0\nFN:X\n", "BEGIN:VCARD attendu", 1),
    ("BEGIN:VCARD\nFN:X\nEMAIL:x@y.fr\n", "END:VCARD manquant", 1),
    ("BEGIN:VCARD\nFN:X\nBEGIN:VCARD\nEND:VCARD\n", "vCard précédente non terminée", 3),
])
def test_bad_vcards(tmp_path: Path, db: Path, text: str, message: str, line: int) -> None:
    with pytest.raises(DirectoryImportError, match=message) as caught:
        import_file(db, write(tmp_path / "c.vcf", text))
    assert caught.value.line == line
    assert not db.exists()


# --- reading ---------------------------------------------------------------------------

def test_missing_file_is_an_empty_directory(db: Path) -> None:
    d = open_dir(db, protected=["cabinet-kine.fr"])
    assert d.by_address("a@b.fr") == [] and d.by_name("A B") == []
    assert not d.is_directory_domain("b.fr")
    assert set(d.lookalikes().protected) == {"mssante.fr", "cabinet-kine.fr"}
    assert d.stats()["entries"] == {}
    assert d.search("x") == []


def test_search(tmp_path: Path, db: Path) -> None:
    import_file(db, write(tmp_path / "ans.txt", ans_text(ROWS)))
    d = open_dir(db)
    assert d.search("secretariat@ch-xyz.mssante.fr")[0].kind == "ORG"
    assert d.search("@ch-xyz.mssante.fr")[0].kind == "ORG"
    assert d.search("medecin.mssante.fr")[0].display_name == "Jean-Pierre DUPONT"
    assert d.search("Éloïse Lefèvre")[0].profession_code == "70"


def test_foreign_or_old_file_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    sqlite3.connect(db).execute("CREATE TABLE meta (key TEXT, value TEXT)").connection.close()
    with pytest.raises(ConfigError, match="réimportez-le"):
        open_dir(db)
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="annuaire illisible"):
        open_dir(db)


def test_config(tmp_path: Path) -> None:
    cfg = load(None, environ={"HOME": str(tmp_path)})
    assert default_path(cfg) == tmp_path / ".local/share/vigie/directory.sqlite3"
    conf = tmp_path / "v.toml"
    conf.write_text(f'[directory]\nfile = "{tmp_path}/d.sqlite3"\n'
                    'protected_domains = ["chu-exemple.fr", "hôpital.fr"]\n')
    cfg = load(conf, environ={})
    assert default_path(cfg) == tmp_path / "d.sqlite3"
    conf.write_text('[directory]\nprotected_domains = ["pas un domaine"]\n')
    with pytest.raises(ConfigError, match="n'est pas un nom de domaine"):
        load(conf, environ={})
    conf.write_text(f'[directory]\nfile = "{tmp_path}"\n')
    with pytest.raises(ConfigError, match="n'est pas un fichier"):
        load(conf, environ={})


def test_assess_sender_over_the_real_directory(tmp_path: Path, db: Path) -> None:
    from gateway.detect.impersonation import assess_sender

    import_file(db, write(tmp_path / "ans.txt", ans_text(ROWS)))
    import_file(db, write(tmp_path / "contacts.vcf", VCARDS))
    webmail = frozenset({"gmail.com", "yahoo.fr"})
    d = open_dir(db, webmail=webmail, protected=["cabinet-kine.fr"])

    def symbols(from_: str, reply_to: str | None = None, vouched: bool | None = True
                ) -> set[str]:
        return {f.symbol for f in assess_sender(from_, reply_to, d, vouched, webmail)}

    assert symbols("Dr Marie Curie <marie.curie@cabinet-curie.fr>") == set()
    assert symbols("Marie Curie <marie.curie.cabinet@gmail.com>") == {"IMP_NAME_KNOWN_WEBMAIL"}
    assert symbols("Marie Curie <marie.curie@cabinet-curie.fr>", vouched=False) == {
        "IMP_DIRECTORY_DOMAIN_UNAUTH"}
    assert symbols("x@cabinet-curie.com") == {"IMP_LOOKALIKE_DOMAIN"}
    assert symbols("x@cabinet-klne.fr") == {"IMP_LOOKALIKE_DOMAIN"}
    assert symbols("x@rnssante.fr") == {"IMP_LOOKALIKE_DOMAIN"}
    assert symbols("Dr Éloïse Lefèvre <eloise@gmail.com>") == {"IMP_NAME_DIRECTORY_WEBMAIL"}
    assert symbols("Éloïse Lefèvre <eloise.lefevre@masseur-kinesitherapeute.mssante.fr>",
                   "autre@gmail.com") == {"IMP_REPLY_TO_ELSEWHERE"}
    assert symbols("Éloïse Lefèvre <eloise.lefevre@masseur-kinesitherapeute.mssante.fr>",
                   vouched=False) == {"IMP_MSSANTE_UNAUTHENTICATED"}
    assert symbols("André Léon <andre.leon@gmail.com>") == set()
    d.close()


def test_for_config(tmp_path: Path) -> None:
    from gateway.testing import config_for_tests

    cfg = config_for_tests(tmp_path, directory={"protected_domains": ["chu-exemple.fr"]},
                           inbound={"domains": ["cabinet-kine.fr"]})
    import_file(default_path(cfg), write(tmp_path / "c.csv", "nom,email\nA B,a@cabinet.fr\n"))
    d = Directory.for_config(cfg, webmail=frozenset({"gmail.com"}))
    assert d.path == tmp_path / "directory.sqlite3"
    assert set(d.lookalikes().protected) == {
        "mssante.fr", "chu-exemple.fr", "cabinet-kine.fr", "cabinet.fr"}
    assert d.by_address("a@cabinet.fr")
    d.close()


def test_a_truncated_extraction_does_not_replace_the_directory(tmp_path: Path, db: Path) -> None:
    many = [ans_line(f"p{i}@medecin.mssante.fr", f"NOM{i}", "Paul") for i in range(300)]
    import_file(db, write(tmp_path / "full.txt", ans_text(many)))
    cut = ans_text(many[:20]) + many[20][:40]  # the download stopped mid-row
    with pytest.raises(DirectoryImportError) as caught:
        import_file(db, write(tmp_path / "cut.txt", cut), "ans")
    assert "tronqué" in str(caught.value) and "--force" in str(caught.value)
    assert open_dir(db).stats()["entries"] == {"ans": 300}
    report = import_file(db, tmp_path / "cut.txt", "ans", force=True)
    assert report.kept == 20
