"""NIR detection: public vectors, every written form, confidence, look-alikes that must not fire."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.detect.nir import (
    ContextWords,
    NirRules,
    find_nirs,
    is_valid_nir,
    mask,
    nir_key,
    structure_ok,
)

RULES = NirRules(
    context=ContextWords(["numéro de sécurité sociale", "sécurité sociale", "nir", "insee",
                          "carte vitale", "matricule ins", "assuré", "clé"]),
    strong=ContextWords(["sécurité sociale", "nir", "carte vitale", "matricule ins"]),
    negative=ContextWords(["iban", "siret", "facture", "colis", "tél", "commande", "rpps"]),
)

VALID = ["295109912611193", "253072B07300470", "253072A07300443", "255081416802538",
         "284058832102532", "146026322000196", "279035121518989", "185057800608491"]
BAD_KEY = ["295109912611199", "255081416802539", "185057800608436"]
BAD_FORMAT = ["253072C07300443"]


def found(text: str) -> list[tuple[str, str]]:
    return [(m.value, m.confidence) for m in find_nirs(text, RULES)]


@pytest.mark.parametrize("value", VALID)
def test_public_vectors_are_valid(value: str) -> None:
    assert is_valid_nir(value)
    assert found(value) == [(value, "medium")]
    assert found(f"NIR : {value}") == [(value, "high")]


@pytest.mark.parametrize("value", BAD_KEY + BAD_FORMAT)
def test_bad_vectors_are_not_found(value: str) -> None:
    assert not is_valid_nir(value)
    assert found(value) == []
    assert found(f"numéro de sécurité sociale : {value}") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Numéro de sécurité sociale : 1 85 05 78 006 084 91.", ("185057800608491", "high")),
    ("NIR 1.85.05.78.006.084.91", ("185057800608491", "high")),
    ("1-85-05-78-006-084-91", ("185057800608491", "medium")),
    ("1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091", ("185057800608491", "medium")),
    ("1\u202f85\u202f05\u202f78\u202f006\u202f084\u202f91", ("185057800608491", "medium")),
    ("1 85 05 78 006 084 clé 91", ("185057800608491", "high")),
    ("1 85 05 78 006 084 (clé : 91)", ("185057800608491", "high")),
    ("1850578006084 91", ("185057800608491", "medium")),
    ("assuré : 1 85 05 78\r\n006 084 91", ("185057800608491", "high")),
    ("sécurité sociale 1 85 05 78\n> 006 084 91", ("185057800608491", "high")),
    ("2 53 07 2B 073 004 70", ("253072B07300470", "medium")),
    ("2 53 07 2a 073 004 43", ("253072A07300443", "medium")),
    ("carte vitale n° 1850578006084", ("1850578006084", "medium")),
    ("(185057800608491)", ("185057800608491", "medium")),
])
def test_written_forms(text: str, expected: tuple[str, str]) -> None:
    assert found(text) == [expected]


@pytest.mark.parametrize("text", [
    "1850578006084",                            # 13 digits without any context word
    "Commande 1850578006084",                   # ditto, another identifier
    "facture n° 185057800608491",               # valid key, but named as an invoice
    "IBAN FR76 1850 5780 0608 4910 0000 000",   # IBAN groups of four
    "FR76185057800608491",                      # glued to letters
    "1850578006084912",                         # a longer digit run
    "21850578006084911",
    "tél. 01 85 05 78 00",                      # phone numbers
    "06 12 34 56 78 06 12 34 56 78",
    "SIRET 123 456 789 01234",
    "RPPS 10101234567",
    "NIR 1 85 05 78 006 084 36",                # wrong key, even with context
    "NIR 1850578006084 36",
    "colis 6A12345678901",
    "le 12/05/2024 à 10 h 30, salle 14",
])
def test_lookalikes_do_not_fire(text: str) -> None:
    assert found(text) == []


def test_masking_and_matricule() -> None:
    assert mask("185057800608491") == "1 85 05 •• ••• ••• 91"
    assert mask("1850578006084") == "1 85 05 •• ••• •••"
    m = find_nirs("carte vitale 1850578006084", RULES)[0]
    assert m.matricule == "185057800608491"
    assert m.masked == "1 85 05 •• ••• •••"


@pytest.mark.parametrize(("s", "mm", "dep", "com", "order", "ok"), [
    ("1", "05", "78", "006", "084", True),
    ("1", "13", "78", "006", "084", False),   # month 13
    ("1", "45", "78", "006", "084", False),   # month 45
    ("1", "35", "78", "006", "084", True),    # pseudo-month
    ("1", "99", "78", "006", "084", True),    # unknown month
    ("1", "05", "00", "006", "084", False),   # no department 00
    ("1", "05", "2A", "006", "084", True),
    ("1", "05", "97", "106", "084", True),    # Guadeloupe
    ("1", "05", "97", "906", "084", False),
    ("1", "05", "99", "352", "084", True),    # born abroad (country 352)
    ("1", "05", "78", "006", "000", False),   # order 000
    ("7", "05", "78", "006", "084", True),    # NIA / provisional number
])
def test_structure(s: str, mm: str, dep: str, com: str, order: str, ok: bool) -> None:
    assert structure_ok(s, mm, dep, com, order, keyless=False) is ok


# --- property tests --------------------------------------------------------

@st.composite
def nirs(draw: st.DrawFn) -> str:
    s = draw(st.sampled_from("1234"))
    yy = f"{draw(st.integers(0, 99)):02d}"
    mm = f"{draw(st.sampled_from([*range(1, 13), *range(20, 43), *range(50, 100)])):02d}"
    kind = draw(st.sampled_from(["metro", "corsica", "overseas", "abroad"]))
    if kind == "metro":
        place = f"{draw(st.integers(1, 96)):02d}{draw(st.integers(1, 999)):03d}"
    elif kind == "corsica":
        place = draw(st.sampled_from(["2A", "2B"])) + f"{draw(st.integers(1, 999)):03d}"
    elif kind == "overseas":
        place = f"97{draw(st.integers(1, 8))}{draw(st.integers(1, 99)):02d}"
    else:
        place = f"99{draw(st.integers(100, 999))}"
    order = f"{draw(st.integers(1, 999)):03d}"
    first = s + yy + mm + place + order
    return first + f"{nir_key(first):02d}"


SEPARATORS = ["", " ", "\u00a0", "\u202f", ".", "-", " - ", "\n", "\r\n> "]


def written(value: str, sep: str, key_style: str) -> str:
    groups = [value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13]]
    head = sep.join(groups)
    key = value[13:]
    if key_style == "clé":
        return f"{head} clé {key}"
    if key_style == "parenthèses":
        return f"{head} (clé : {key})"
    return head + sep + key


@settings(max_examples=300, deadline=None)
@given(nirs(), st.sampled_from(SEPARATORS), st.sampled_from(["plain", "clé", "parenthèses"]),
       st.sampled_from(["", "Bonjour, voici le document. ", "Numéro de sécurité sociale : "]))
def test_any_valid_nir_in_any_style_is_found(value: str, sep: str, key_style: str,
                                             prefix: str) -> None:
    text = prefix + written(value, sep, key_style) + " Cordialement."
    got = find_nirs(text, RULES)
    assert [m.value for m in got] == [value]


@settings(max_examples=300, deadline=None)
@given(nirs(), st.integers(1, 96), st.sampled_from(SEPARATORS),
       st.sampled_from(["", "NIR : ", "carte vitale "]))
def test_any_wrong_key_is_not_found(value: str, delta: int, sep: str, prefix: str) -> None:
    wrong = (int(value[13:]) - 1 + delta) % 97 + 1
    bad = value[:13] + f"{wrong:02d}"
    assert find_nirs(prefix + written(bad, sep, "plain"), RULES) == []


def test_random_digit_runs_rarely_fire_and_never_with_negative_context() -> None:
    rng = random.Random(1234)
    runs = ["".join(rng.choice("0123456789") for _ in range(15)) for _ in range(20000)]
    hits = [r for r in runs if find_nirs(r, RULES)]
    # Only numbers that really are valid NIRs (structure + key) can be found...
    assert all(is_valid_nir(h) for h in hits)
    assert len(hits) < 20000 * 0.006
    # ...and none when the text says what the number is.
    assert not any(find_nirs(f"facture n° {h}", RULES) for h in hits)


@pytest.mark.parametrize(("text", "expected"), [
    # ordinary words of a letter far before the number must not silence it
    ("Comme convenu par téléphone, suivi : réévaluation dans un mois. Un tel résultat "
     "est encourageant. Son compte rendu suit. Mme Nguyen (1 85 05 78 006 084 91) a débuté.",
     [("185057800608491", "medium")]),
    # a number in the next table cell is not a key
    ("Matricule INS\t1 85 05 78 006 084\t\t30", [("1850578006084", "medium")]),
    ("carte vitale : 1 85 05 78 006 084\n7 séances prescrites", [("1850578006084", "medium")]),
])
def test_bench_regressions(text: str, expected: list[tuple[str, str]]) -> None:
    rules = NirRules(RULES.context, ContextWords(["matricule ins", "carte vitale", "nir"]),
                     ContextWords(["facture", "tél", "n° de suivi"]))
    assert [(m.value, m.confidence) for m in find_nirs(text, rules)] == expected


def test_nia_needs_a_context_word() -> None:
    first = "8850599216084"
    value = first + f"{nir_key(first):02d}"
    assert found(f"NIA : {value}") == []  # «nia» is not in this test's context list
    assert found(f"matricule INS {value}") == [(value, "high")]
    assert found(f"Le bordereau {value} accompagne l'envoi.") == []


# --- the Hyperscan prefilter finds every match the regex finds ---------------------------
_PIECES = ["1", "2", "4", "7", "8", "0", "9", "5", "85", "05", "78", "006", "084", "36",
           "2A", "2b", " ", "  ", ".", "-", "\u00a0", "\u202f", "\u2013", "\t", "\n", "\r\n",
           "> ", "(", ")", "clé", "CLÉ", " : ", "a", "Z", "é", "’", "\u0301", "x1", "_"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60))
def test_prefilter_windows_hold_every_regex_match(pieces: list[str]) -> None:
    from gateway.detect.nir import _NIR_RE, _matches

    text = "".join(pieces)
    expected = [(m.start(), m.end(), m.groups()) for m in _NIR_RE.finditer(text)]
    assert [(m.start(), m.end(), m.groups()) for m in _matches(text)] == expected


@pytest.mark.parametrize("text", [
    "NIR : 1 85 05 78 006 084 36",
    "1850578006084\n36 au bout de la ligne",
    "n° 1 85 05 78\n>  006 084 (clé 36)",
    "185057800608436185057800608436",            # 30 digits: no NIR inside a run
    "ref 41850578006084361",
    "1 85 05 78 006 084\n\n36",
    "x" * 500 + "1 85 05 78 006 084 36" + "\n" * 3 + "2 85 05 78 006 084 36",
    "178572A\n787006 084",  # found by hypothesis: a line break after Corsica's «2A»
    "1 78 05 2B\n> 787 006 12",
    "a 2536780505084-05)006",  # the key's «)» then a digit: the match stops before «)»
])
def test_prefilter_agrees_with_the_regex_on_layouts(text: str) -> None:
    from gateway.detect.nir import _NIR_RE, _matches

    assert [m.span() for m in _matches(text)] == [m.span() for m in _NIR_RE.finditer(text)]


_SEPS = ["", "", " ", "  ", "    ", ".", "-", "\u00a0", "\u202f", "\u2013", "\t", "\n", "\r\n",
         "\n> ", "   \n  >> ", " " * 9 + "\n", "(", " (clé ", " clé : ", "CLÉ", "7", "a", "’",
         ")", ")0", "-05)"]
_NUMBERS = ["185057800608436", "2850578006084", "18505780060843612", "7850578006084",
            "1852A78006084", "41850578006084361", "085057800608436", "178052A787006",
            "178052b78700612"]


@st.composite
def _numbers_in_layouts(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        parts.append(draw(st.sampled_from(["", " ", "x", "\n", "n° ", "é"])))
        digits = draw(st.sampled_from(_NUMBERS))
        cuts = [0, 1, 3, 5, 7, 10, 13, len(digits)]
        for a, b in itertools.pairwise(cuts):
            parts.append(digits[a:b])
            parts.append(draw(st.sampled_from(_SEPS)))
    return "".join(parts)


@settings(max_examples=600, deadline=None)
@given(_numbers_in_layouts())
def test_prefilter_finds_numbers_in_every_layout(text: str) -> None:
    from gateway.detect.nir import _NIR_RE, _matches

    expected = [(m.start(), m.end(), m.groups()) for m in _NIR_RE.finditer(text)]
    assert [(m.start(), m.end(), m.groups()) for m in _matches(text)] == expected


_WORD_PIECES = ["numéro de sécurité sociale", "N° de Sécurité Sociale", "sécu", "NIR", "nir",
                "Carte Vitale", "carte\u00a0vitale", "carte\u202fvitale", "matricule INS",
                "numéro d’assuré", "numéro d'assuré", "n° d’assuré", "assurée", "clé", "CLÉ",
                "insee", "ins", "moins", "vitales", "facture", "tél.", "Tél", "colis", " ", " ",
                "  ", "\n", "-", "é", "x", "2", "(", ":", "_", "« ", " »", "’"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_WORD_PIECES), max_size=12))
def test_context_words_read_the_same_in_folded_bytes(pieces: list[str]) -> None:
    from gateway.detect.fold import fold

    text = "".join(pieces)
    data = fold(text).data
    for words in (RULES.context, RULES.strong, RULES.negative):
        assert words.search(data, 0, len(data)) == words.find(text)


def test_context_words_next_to_letters_beyond_latin1() -> None:
    """In folded bytes a letter beyond latin-1 (œ, ł…) is a "?", so it ends a word, as
    do latin-1 signs («, °) that the string fold drops; ’ and the narrow NBSP are read
    as an apostrophe and a space."""
    from gateway.detect.fold import fold

    data = fold("NIRœ").data
    assert RULES.context.search(data, 0, len(data)) == "nir"
    data = fold("sécurité sociale«nir").data
    assert RULES.context.search(data, 0, len(data)) == "securite sociale"
    data = fold("numéro de sécurité\u202fsociale").data
    assert RULES.context.search(data, 0, len(data)) == "numero de securite sociale"
