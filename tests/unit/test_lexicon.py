"""French health lexicon detector, table-driven: terms, ordinary French, CIM-10, offsets, rules."""

from __future__ import annotations

import itertools
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError
from gateway.detect.lexicon import Lexicon, TermMatch


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.default()


def found(lexicon: Lexicon, text: str) -> list[tuple[str, str]]:
    """(canonical term, evidence quoted from the original text) for every match."""
    return [(m.term, text[m.start:m.end]) for m in lexicon.find(text)]


def strip_accents(text: str) -> str:
    text = text.replace("œ", "oe").replace("Œ", "OE")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


# --- the packaged rules ------------------------------------------------------------------
def test_default_is_large_cached_and_covers_every_category(lexicon: Lexicon) -> None:
    assert len(lexicon) >= 200
    assert Lexicon.default() is lexicon
    categories = {e.category for e in lexicon.entries}
    assert categories >= {"rachis", "epaule", "coude_poignet_main", "membre_inferieur",
                          "traumatologie", "neurologie", "respiratoire", "perineologie",
                          "lymphologie", "douleur_chronique", "pediatrie", "sante_generale",
                          "marqueur"}
    assert {e.kind for e in lexicon.entries} == {"diagnosis", "marker"}
    terms = {e.term for e in lexicon.entries}
    for abbreviation in ("PTG", "PTH", "LCA", "LCP", "BPCO", "AVC", "SEP", "VPPB", "SDRC",
                         "IMC", "SLA", "TMS", "BDK", "ALD", "AT/MP"):
        assert abbreviation in terms
        entry = next(e for e in lexicon.entries if e.term == abbreviation)
        assert entry.exact_case


# --- positives in running text ---------------------------------------------------------------
POSITIVES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("plain", "Le patient souffre d'une lombalgie depuis trois semaines.",
     [("lombalgie", "lombalgie")]),
    ("upper case and plural", "ANTÉCÉDENTS MÉDICAUX : LOMBALGIES RÉCIDIVANTES.",
     [("antécédents médicaux", "ANTÉCÉDENTS MÉDICAUX"), ("lombalgie", "LOMBALGIES")]),
    ("no accents", "cervicalgie et nevralgie cervico-brachiale gauche",
     [("cervicalgie", "cervicalgie"),
      ("névralgie cervico-brachiale", "nevralgie cervico-brachiale")]),
    ("plural of every word", "Deux hernies discales opérées en 2019.",
     [("hernie discale", "hernies discales")]),
    ("-al / -aux", "Syndrome des canaux carpiens bilatéral.",
     [("canal carpien", "canaux carpiens")]),
    ("-ou / -oux", "Deux prothèses totales de genoux posées.",
     [("prothèse totale de genou", "prothèses totales de genoux")]),
    ("line break inside a term", "Suspicion de syndrome du canal\ncarpien droit.",
     [("canal carpien", "syndrome du canal\ncarpien")]),
    ("quoted reply", "> rupture du ligament\n> croisé antérieur droit",
     [("rupture du ligament croisé", "rupture du ligament\n> croisé antérieur")]),
    ("typographic apostrophe", "Tendinite d’Achille à droite.",
     [("tendinite d'Achille", "Tendinite d’Achille")]),
    ("straight apostrophe, no capital", "tendinite d'achille", [("tendinite d'Achille",
                                                                "tendinite d'achille")]),
    ("hyphen as space", "conflit sous acromial", [("conflit sous-acromial",
                                                   "conflit sous acromial")]),
    ("hyphen glued", "rééducation en postpartum", [("post-partum", "postpartum")]),
    ("hyphen kept", "lombo-sciatique gauche", [("sciatique", "lombo-sciatique")]),
    ("œ ligature", "Lymphœdème du bras après curage axillaire.",
     [("lymphœdème", "Lymphœdème"), ("curage ganglionnaire", "curage axillaire")]),
    ("œ spelt oe, capital Œ", "LYMPHOEDEME ; Œdème des chevilles",
     [("lymphœdème", "LYMPHOEDEME"), ("œdème", "Œdème")]),
    ("synonym variant", "Il a fait un lumbago puis une sciatalgie.",
     [("lumbago", "lumbago"), ("sciatique", "sciatalgie")]),
    ("longest term wins", "Fracture du radius distal en mars.",
     [("fracture du radius", "Fracture du radius distal")]),
    ("exact-case PTG", "PTG droite le 3 mars, PTH gauche prévue.",
     [("PTG", "PTG"), ("PTH", "PTH")]),
    ("exact-case AVC", "Séquelles d'AVC ischémique.", [("AVC", "AVC")]),
    ("exact-case SEP", "Patiente suivie pour une SEP depuis 2015.", [("SEP", "SEP")]),
    ("abbreviation inside a longer term", "rupture du LCA au ski",
     [("rupture du ligament croisé", "rupture du LCA")]),
    ("abbreviation in a file name", "CR_operatoire_LCA.pdf", [("LCA", "LCA")]),
    ("markers", "Ci-joint le bilan kinésithérapique et l'ordonnance du Dr Martin.",
     [("bilan kinésithérapique", "bilan kinésithérapique"), ("ordonnance", "ordonnance")]),
    ("hyphenated compte-rendu", "Voici le compte-rendu opératoire.",
     [("compte rendu opératoire", "compte-rendu opératoire")]),
    ("administrative markers", "Arrêt de travail en AT/MP, prise en charge ALD.",
     [("arrêt de travail", "Arrêt de travail"), ("AT/MP", "AT/MP"), ("ALD", "ALD")]),
    ("imaging", "IRM du genou et échographie de l'épaule.",
     [("IRM", "IRM"), ("échographie", "échographie")]),
    ("scanner with a medical word", "Prévoir un scanner lombaire.",
     [("scanner médical", "scanner lombaire")]),
    ("weak scanner near a diagnosis", "Lombalgie : le scanner est prévu jeudi.",
     [("lombalgie", "Lombalgie"), ("scanner", "scanner")]),
    ("fracture used medically", "fracture ouverte de la jambe", [("fracture ouverte",
                                                                  "fracture ouverte")]),
    ("pediatrics", "Plagiocéphalie et torticolis congénital chez un nourrisson.",
     [("plagiocéphalie", "Plagiocéphalie"), ("torticolis congénital", "torticolis congénital")]),
    ("respiratory", "Désencombrement bronchique pour bronchiolite du nourrisson.",
     [("désencombrement bronchique", "Désencombrement bronchique"),
      ("bronchiolite du nourrisson", "bronchiolite du nourrisson")]),
    ("general health", "Diabète de type 2, chimiothérapie en cours.",
     [("diabète", "Diabète de type 2"), ("chimiothérapie", "chimiothérapie")]),
    ("decomposed accents (NFD)", "e\u0301paule luxe\u0301e et entorse",
     [("luxation de l'épaule", "e\u0301paule luxe\u0301e"), ("entorse", "entorse")]),
    ("non-breaking hyphen and narrow NBSP", "lombo\u2011sciatique\u202f; post\u2011partum",
     [("sciatique", "lombo\u2011sciatique"), ("post-partum", "post\u2011partum")]),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in POSITIVES],
                         ids=[name for name, _, _ in POSITIVES])
def test_positives(lexicon: Lexicon, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(lexicon, text) == expected


def test_kind_and_category(lexicon: Lexicon) -> None:
    by_term = {m.term: m for m in lexicon.find("Bilan kiné : gonarthrose, ordonnance jointe.")}
    assert (by_term["gonarthrose"].kind, by_term["gonarthrose"].category) == (
        "diagnosis", "membre_inferieur")
    assert (by_term["bilan kinésithérapique"].kind,
            by_term["bilan kinésithérapique"].category) == ("marker", "marqueur")


# --- negatives: ordinary French -------------------------------------------------------------
NEGATIVES: list[str] = [
    "Sept personnes viendront avec leurs enfants samedi.",
    "Merci d'imprimer le document au format A4.",
    "La place B12 du parking est réservée aux visiteurs.",
    "Une dépression atmosphérique traversera la région ce week-end.",
    "La fracture numérique touche encore les zones rurales.",
    "Le scanner du bureau ne reconnaît plus les feuilles.",
    "Votre code promo BIENVENUE10 vous offre 10 % de remise.",
    "Réunion le 12 SEP 2026 à 14 h.",
    "L'ordonnance n° 2020-306 du 25 mars 2020 a adapté les délais.",
    "Le contrat garantit un SLA de 99,9 % de disponibilité.",
    "La loi de Parkinson s'applique aussi aux réunions.",
    "Le budget subit une amputation de 10 % des crédits.",
    "Salle accessible aux personnes handicapées.",
    "Le bilan comptable de l'exercice a été approuvé.",
    "Rupture de stock sur ce modèle, réassort prévu lundi.",
    "Le code postal 75011 correspond au onzième arrondissement.",
    "Il faut qu'il ait fini avant midi, avec ou sans aide.",
    "Bonjour, votre rendez-vous est confirmé pour mardi à 10 h 30.",
    "Facture n° F2026-114 — Total TTC : 1 250,00 € — échéance à trente jours.",
    "Le club de tennis organise son tournoi d'été ; inscriptions au secrétariat.",
    "Votre dossier de candidature est complet, merci.",
    "Le compte rendu de la réunion de lundi est en pièce jointe.",
    "La radio du matin annonce du soleil sur toute la côte.",
    "Notre séance de travail est reportée à jeudi.",
    "La connexion wifi utilise le code 29370. La place B12 est libre.",
    "Pensez à rapporter vos livres à la médiathèque avant les vacances.",
    "Le marché de Noël ouvre ses portes le 1er décembre.",
    "Les travaux de la rue Pasteur dureront environ six semaines.",
    "Le colis sera livré sous trois jours ouvrés en point relais.",
    "Votre mot de passe doit contenir au moins douze caractères.",
    "Le directeur a fait une entorse au règlement pour l'occasion.",
    "Le tournoi a été une vraie fracture entre les deux clubs.",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_negatives(lexicon: Lexicon, text: str) -> None:
    assert lexicon.find(text) == []


def test_empty_text(lexicon: Lexicon) -> None:
    assert lexicon.find("") == []


# --- CIM-10 codes need a context word before them --------------------------------------------
CIM10: list[tuple[str, list[str]]] = [
    ("Code CIM-10 : M54.5", ["M54.5"]),
    ("cim10 S83.5 et G35", ["S83.5", "G35"]),
    ("ICD-10: M75.1", ["M75.1"]),
    ("Diagnostic : lombalgie commune (M54.5).", ["M54.5"]),
    ("codage M545", ["M545"]),
    ("code M54.5", ["M54.5"]),
    ("code : M54.5, M51.1 et G35", ["M54.5", "M51.1", "G35"]),
    ("Bilan diagnostic kinésithérapique, code CIM : M75.1", ["M75.1"]),
    ("CIM-10 : M54.5, M51.1, G35, S83.5, M17.1, M75.1, M65.4, G56.0, M72.2 et M19.0",
     ["M54.5", "M51.1", "G35", "S83.5", "M17.1", "M75.1", "M65.4", "G56.0", "M72.2",
      "M19.0"]),
    ("M54.5 et G35 sans contexte", []),
    ("Format A4, place B12 du parking.", []),
    ("Le code 29370 ouvre la porte ; place B12.", []),
    ("code postal B12", []),
    ("Code interphone : B12", []),
    ("le code 29370 puis M54.5", []),
    ("le code de la porte est B12", []),
    ("Code de la santé publique, article L1110-4.", []),
    ("CIM-10 : voir le dossier. Notre parking : place B12.", []),
    ("Code CIM-10 puis un long texte qui parle de tout autre chose pendant des lignes, B12", []),
]


@pytest.mark.parametrize(("text", "codes"), CIM10)
def test_cim10_needs_context(lexicon: Lexicon, text: str, codes: list[str]) -> None:
    matches = [m for m in lexicon.find(text) if m.kind == "cim10"]
    assert [m.term for m in matches] == codes
    for m in matches:
        assert (m.category, text[m.start:m.end]) == ("cim10", m.term)


# --- offsets map back to the original text ---------------------------------------------------
OFFSETS: list[tuple[str, list[tuple[int, int]]]] = [
    ("Œdème", [(0, 5)]),
    ("l’entorse", [(2, 9)]),
    ("«\u202fentorse\u202f»", [(2, 9)]),
    ("e\u0301paule luxe\u0301e!", [(0, 14)]),
    ("\u00e9\u00e9 lombalgie 😀 PTG", [(3, 12), (15, 18)]),
]


@pytest.mark.parametrize(("text", "spans"), OFFSETS)
def test_offsets(lexicon: Lexicon, text: str, spans: list[tuple[int, int]]) -> None:
    assert [(m.start, m.end) for m in lexicon.find(text)] == spans


def test_matches_are_ordered_and_disjoint(lexicon: Lexicon) -> None:
    text = ("PTH droite. Bilan kiné : coxarthrose, lombalgie chronique et sciatique.\n"
            "Code CIM-10 : M16.1. Ordonnance et IRM jointes ; AVC en 2019.") * 3
    matches = lexicon.find(text)
    assert len(matches) == 27
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))
    assert all(isinstance(m, TermMatch) and text[m.start:m.end] for m in matches)


# --- recall: every form of every entry, in running text ------------------------------------
def test_every_form_is_found_in_running_text(lexicon: Lexicon) -> None:
    missed: list[str] = []
    for entry in lexicon.entries:
        if entry.weak:  # found only near another health term (tested above)
            continue
        for form in entry.forms:
            spellings = {form, form.replace(" ", "\n", 1), form.replace("'", "’")}
            if not entry.exact_case:
                spellings |= {form.upper(), strip_accents(form)}
            for spelling in spellings:
                text = f"Depuis mars, le patient présente {spelling} ; à revoir."
                if (entry.term, spelling) not in found(lexicon, text):
                    missed.append(f"{entry.term}: {spelling!r}")
    assert missed == []


# --- a rules file of one's own, and bad ones -----------------------------------------------
GOOD_RULES = """
[cim10]
context = ["CIM"]

[[group]]
category = "essai"
entries = [
  "lombalgie",
  { term = "entorse de la cheville", variants = ["entorse (à la|de) cheville"] },
  { term = "ABC", exact_case = true, unless_prev = ["#"] },
  { term = "ordonnance", kind = "marker", unless_next = ["n"] },
  { term = "scanner", kind = "marker", context = "health" },
]
"""


def test_load_custom_rules(tmp_path: Path) -> None:
    path = tmp_path / "lexique.toml"
    path.write_text(GOOD_RULES, encoding="utf-8")
    lexicon = Lexicon.load(path)
    assert len(lexicon) == 5
    text = "ENTORSE À LA CHEVILLE, ABC, 12 ABC, abc, ordonnance n° 3, scanner ; CIM M54.5"
    assert found(lexicon, text) == [
        ("entorse de la cheville", "ENTORSE À LA CHEVILLE"), ("ABC", "ABC"),
        ("scanner", "scanner"), ("M54.5", "M54.5")]


BAD_RULES: list[tuple[str, str, str]] = [
    ("unbalanced parenthesis",
     '[[group]]\ncategory = "rachis"\n'
     'entries = [{ term = "hernie discale", variants = ["hernie (lombaire|cervicale"] }]\n',
     "hernie discale"),
    ("form of another entry",
     '[[group]]\ncategory = "rachis"\n'
     'entries = ["lombalgie", { term = "lumbago", variants = ["lombalgies"] }]\n'
     '[[group]]\ncategory = "douleur"\nentries = [{ term = "mal", variants = ["lombalgie"] }]\n',
     "mal"),
    ("misspelt key",
     '[[group]]\ncategory = "rachis"\nentries = [{ term = "scoliose", varaints = ["x"] }]\n',
     "scoliose"),
    ("bad kind",
     '[[group]]\ncategory = "rachis"\nentries = [{ term = "cyphose", kind = "maladie" }]\n',
     "cyphose"),
    ("exact case without a capital",
     '[[group]]\ncategory = "rachis"\nentries = [{ term = "ptg", exact_case = true }]\n',
     "ptg"),
    ("unsupported character",
     '[[group]]\ncategory = "rachis"\nentries = ["lombalgie ≥ 3 mois"]\n',
     "lombalgie ≥ 3 mois"),
    ("variants not a list",
     '[[group]]\ncategory = "rachis"\nentries = [{ term = "torticolis", variants = "cou" }]\n',
     "torticolis"),
    ("unknown section", '[groupe]\ncategory = "rachis"\n', "[groupe]"),
    ("no group", "[cim10]\nwindow = 60\n", "[[group]]"),
    ("bad window", '[cim10]\nwindow = "soixante"\n[[group]]\ncategory = "a"\nentries = ["b"]\n',
     "window"),
]


@pytest.mark.parametrize(("content", "names"), [(c, n) for _, c, n in BAD_RULES],
                         ids=[name for name, _, _ in BAD_RULES])
def test_bad_rules_file_names_file_and_entry(tmp_path: Path, content: str, names: str) -> None:
    path = tmp_path / "lexique.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Lexicon.load(path)
    message = str(info.value)
    assert str(path) in message
    assert names in (info.value.key or "")
    french, english = message.split("\n")
    assert french.startswith("configuration invalide") and english.startswith("invalid")


def test_bad_rules_file_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "lexique.toml"
    path.write_text('[[group]]\ncategory = "rachis"\nentries = [\n  "a",\n  "b"\n  "c",\n]\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Lexicon.load(path)
    assert info.value.line == 6
    path.write_text('[[group]]\ncategory = "rachis"\nentries = [\n  "lombalgie",\n'
                    '  { term = "scoliose", kind = "x" },\n]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Lexicon.load(path)
    assert info.value.line == 5


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Lexicon.load(tmp_path / "absent.toml")
    assert "absent.toml" in str(info.value)


# --- the Hyperscan prefilter: same matches as the trie over the whole text ------------------
_NOISE = ["le", "patient", "code", "CIM", "M54.5", "séance", "de", "la", "x", "2024", "_", "’",
          "»", "\n", "\n> ", "  ", "-", "é", "Œ", "PTG", "ptg", "AVC", "sep", "SEP", "Dr"]
_JOINS = [" ", " ", "  ", "-", "\n", "\n> ", "’", "'", "\u00a0", "\u2011", "", "/", " " * 15]


@st.composite
def _health_text(draw: st.DrawFn) -> str:
    forms = draw(st.lists(st.sampled_from(_FORMS), min_size=1, max_size=4))
    parts: list[str] = []
    for form in forms:
        parts.append(draw(st.sampled_from(_NOISE)))
        parts.append(draw(st.sampled_from([" ", "", "\n", "(", "_"])))
        words = form.split(" ")
        join = draw(st.sampled_from(_JOINS))
        text = join.join(words)
        case = draw(st.sampled_from(["", "upper", "title", "nfd", "plural"]))
        if case == "upper":
            text = text.upper()
        elif case == "title":
            text = text.title()
        elif case == "nfd":
            text = unicodedata.normalize("NFD", text)
        elif case == "plural":
            text += "s"
        parts.append(text)
        parts.append(draw(st.sampled_from([" ", "", ".", "e", "\n"])))
    return "".join(parts)


_FORMS = sorted({form for entry in Lexicon.default().entries for form in entry.forms})


@settings(max_examples=500, deadline=None)
@given(_health_text())
def test_prefilter_finds_what_the_whole_trie_finds(text: str) -> None:
    lexicon = Lexicon.default()
    prefilter = lexicon._c.prefilter
    got = lexicon.find(text)
    everywhere = [(0, 10**9)]
    prefilter.windows = lambda padded: (everywhere, everywhere)  # type: ignore[method-assign]
    try:
        expected = lexicon.find(text)
    finally:
        del prefilter.windows
    assert got == expected


def test_separator_runs_are_capped(lexicon: Lexicon) -> None:
    """Up to 16 separator characters between the words of a form; a wider gap (a table's
    columns) is not read as one term."""
    for gap, evidence in ((16, "amputation" + " " * 16 + "fémorale"), (17, "amputation")):
        text = "amputation" + " " * gap + "fémorale"
        assert found(lexicon, text) == [("amputation", evidence)]


def test_compiled_database_is_kept_in_the_cache(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.detect import lexicon as module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = {"group": [{"category": "test", "entries": ["lombalgie", "prothèse de hanche"]}]}
    module._hs_database.cache_clear()
    Lexicon.from_data(data)
    [cached] = (tmp_path / "vigie").glob("lexicon-*.hsdb")
    cached.write_bytes(b"not a database")  # a damaged cache is compiled again
    module._hs_database.cache_clear()
    lexicon = Lexicon.from_data(data)
    assert [m.term for m in lexicon.find("Prothèses  de\nhanche, lombalgie")] == [
        "prothèse de hanche", "lombalgie"]
    assert cached.read_bytes() != b"not a database"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cached))  # a cache that cannot be written
    module._hs_database.cache_clear()
    assert len(Lexicon.from_data(data).find("lombalgie")) == 1
    # a directory where the file should be: no temporary file left behind
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached.unlink()
    cached.mkdir()
    module._hs_database.cache_clear()
    assert len(Lexicon.from_data(data).find("lombalgie")) == 1
    assert [p.name for p in (tmp_path / "vigie").iterdir()] == [cached.name]
    module._hs_database.cache_clear()


def test_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gateway.detect.lexicon import _cache_dir

    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _cache_dir() == tmp_path / "vigie"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as XDG says
    assert _cache_dir() == Path.home() / ".cache" / "vigie"
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/vigie")  # systemd's, as it is
    assert _cache_dir() == Path("/var/cache/vigie")
