"""Fake-confrère detectors: name keys, look-alike domains, assess_sender() findings."""

from __future__ import annotations

import pytest

from gateway.detect.impersonation import (
    STRENGTH,
    DirectoryEntry,
    LookalikeIndex,
    Skeleton,
    assess_sender,
    claims_profession,
    damerau,
    name_key,
    parse_addresses,
    registrable,
    unicode_domain,
)
from gateway.directory import load_skeleton
from gateway.policy import rules_dir
from gateway.testing import MemoryDirectory
from gateway.verdict import Finding, Outcome

SKELETON = load_skeleton(rules_dir())
WEBMAIL = frozenset({"gmail.com", "orange.fr", "yahoo.fr", "hotmail.fr", "laposte.net"})


# --- names ------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    ("Jean-Pierre DUPONT", "Dr Dupont Jean Pierre"),
    ("Jean-Pierre DUPONT", "dupont jean-pierre"),
    ("Élodie Lefèvre", "LEFEVRE ELODIE"),
    ("Docteur Marie Curie", "Curie, Marie"),
    ("Mme Anne-Sophie Martin", "Martin Anne Sophie"),
    ("M. Paul Durand", "Durand Paul"),
    ("Pr Cœur Alain", "Alain COEUR"),
    ("  DUPONT   Jean  ", "jean dupont"),
])
def test_name_key_equal(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Jean Dupont", "Jean Dupond"),
    ("Jean Dupont", "Jeanne Dupont"),
    ("Jean-Pierre Dupont", "Pierre Dupont"),
])
def test_name_key_different(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


@pytest.mark.parametrize(("name", "claims"), [
    ("Dr Jean Dupont", True), ("Docteur Dupont", True), ("Cabinet de kiné Dupont", True),
    ("Jean Dupont", False), ("Sophie Martin", False), ("Drôle de nom", False),
])
def test_claims_profession(name: str, claims: bool) -> None:
    assert claims_profession(name) is claims


# --- domains ----------------------------------------------------------------------

@pytest.mark.parametrize(("domain", "reg"), [
    ("medecin.mssante.fr", "mssante.fr"), ("mssante.fr", "mssante.fr"),
    ("a.b.cabinet.asso.fr", "cabinet.asso.fr"), ("example.co.uk", "example.co.uk"),
    ("fr", "fr"),
])
def test_registrable(domain: str, reg: str) -> None:
    assert registrable(domain) == reg


def test_unicode_domain_decodes_punycode() -> None:
    assert unicode_domain("XN--MSSANT-GVA.FR.") == "mssanté.fr"
    assert unicode_domain("xn--broken--.fr") == "xn--broken--.fr"  # left as written


@pytest.mark.parametrize(("a", "b", "limit", "distance"), [
    ("mssante", "mssante", 2, 0), ("mssante", "msante", 2, 1), ("mssante", "mssnate", 2, 1),
    ("mssante", "massante", 2, 1), ("mssante", "sante", 1, 2), ("abc", "abcdef", 1, 2),
    ("cabinet-dupont", "cabinet-dupond", 2, 1),
])
def test_damerau(a: str, b: str, limit: int, distance: int) -> None:
    assert damerau(a, b, limit) == distance


def test_skeleton_table() -> None:
    assert SKELETON("rnssante") == SKELETON("mssante")
    assert SKELETON("mss\u0430nte") == SKELETON("mssante")  # Cyrillic а
    assert SKELETON("mssanté") == SKELETON("mssante")
    assert SKELETON("g00gle") == SKELETON("google")
    assert SKELETON("vvanadoo") == SKELETON("wanadoo")
    assert SKELETON("paypa1") == SKELETON("paypal")


@pytest.mark.parametrize("text", ["ab", "U+ZZZZ a", "a b c"])
def test_skeleton_table_errors_name_the_line(text: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        Skeleton.from_text("# comment\n" + text + "\n")


PROTECTED = ["mssante.fr", "medecin.mssante.fr", "ch-xyz.mssante.fr", "cabinet-dupont.fr",
             "kine-lyon.fr", "chu-exemple.fr"]
INDEX = LookalikeIndex.build(PROTECTED, SKELETON)


@pytest.mark.parametrize(("domain", "imitates", "how"), [
    # added words and separators
    ("mssante-fr.com", "mssante.fr", "added_words"),
    ("mssante.fr.secure-mail.com", "mssante.fr", "added_words"),
    ("secure-mssante.fr", "mssante.fr", "added_words"),
    ("mssante-sante.fr", "mssante.fr", "added_words"),
    ("securemssante.fr", "mssante.fr", "added_words"),
    ("medecin.mssante.fr.example.net", "mssante.fr", "added_words"),
    ("mssante.fr.com", "mssante.fr", "added_words"),
    # homoglyphs: rn for m, Cyrillic letters, IDN accents, digits
    ("rnssante.fr", "mssante.fr", "homoglyph"),
    ("mss\u0430nte.fr", "mssante.fr", "homoglyph"),
    ("xn--mssant-gva.fr", "mssante.fr", "homoglyph"),
    ("mssanté.fr", "mssante.fr", "homoglyph"),
    ("mssante.fr".replace("s", "\u0455", 1), "mssante.fr", "homoglyph"),
    ("cabinet-dup0nt.fr", "cabinet-dupont.fr", "homoglyph"),
    # another TLD
    ("mssante.com", "mssante.fr", "tld"),
    ("mssante.eu", "mssante.fr", "tld"),
    ("cabinet-dupont.com", "cabinet-dupont.fr", "tld"),
    # one or two letters changed
    ("msante.fr", "mssante.fr", "typo"),
    ("mssnate.fr", "mssante.fr", "typo"),
    ("msssante.fr", "mssante.fr", "typo"),
    ("cabinet-dupond.fr", "cabinet-dupont.fr", "typo"),
    ("cabinet-dupomd.fr", "cabinet-dupont.fr", "typo"),
    ("chu-exemples.fr", "chu-exemple.fr", "typo"),
])
def test_lookalikes(domain: str, imitates: str, how: str) -> None:
    hit = INDEX.check(domain)
    assert hit is not None, domain
    assert (hit.imitates, hit.how) == (imitates, how)


@pytest.mark.parametrize("domain", [
    # the protected domains themselves and their real subdomains
    "mssante.fr", "MSSANTE.FR.", "medecin.mssante.fr", "masseur-kinesitherapeute.mssante.fr",
    "patient.mssante.fr", "ch-autre.mssante.fr", "cabinet-dupont.fr", "mail.cabinet-dupont.fr",
    # ordinary domains
    "sante.fr", "ameli.fr", "gmail.com", "orange.fr", "doctolib.fr", "laposte.net",
    "sante.gouv.fr", "kine-paris.fr", "cabinet-martin.fr", "ars.sante.fr", "chu-lyon.fr",
    "example.org", "ordre-kine.fr",
])
def test_not_lookalikes(domain: str) -> None:
    assert INDEX.check(domain) is None


def test_short_protected_names_are_not_indexed() -> None:
    index = LookalikeIndex.build(["ch.fr", "ars.fr"], SKELETON)
    assert len(index) == 0
    assert index.check("ch.com") is None


# --- assess_sender ------------------------------------------------------------------

ENTRIES = [
    DirectoryEntry("contacts", "Marie Curie", "marie.curie@cabinet-curie.fr", "cabinet-curie.fr"),
    DirectoryEntry("contacts", "Marie Curie", "marie.curie@infirmier.mssante.fr",
                   "infirmier.mssante.fr"),
    DirectoryEntry("contacts", "André Léon", "andre.leon@gmail.com", "gmail.com"),
    DirectoryEntry("ans", "Jean-Pierre DUPONT", "jean-pierre.dupont@medecin.mssante.fr",
                   "medecin.mssante.fr", "PER", "10", "Médecin"),
    DirectoryEntry("ans", "Sophie MARTIN", "sophie.martin@masseur-kinesitherapeute.mssante.fr",
                   "masseur-kinesitherapeute.mssante.fr", "PER", "70",
                   "Masseur-Kinésithérapeute"),
    DirectoryEntry("ans", "Centre Hospitalier XYZ", "secretariat@ch-xyz.mssante.fr",
                   "ch-xyz.mssante.fr", "ORG"),
]
DIRECTORY = MemoryDirectory(ENTRIES, SKELETON, webmail=WEBMAIL)

Case = tuple[str, str | None, bool | None, set[str]]


@pytest.mark.parametrize(("from_", "reply_to", "vouched", "symbols"), [
    # MSSanté senders: authenticated is fine, unauthenticated is spoofing, unknown = no finding
    ("Jean-Pierre Dupont <jean-pierre.dupont@medecin.mssante.fr>", None, True, set()),
    ("Jean-Pierre Dupont <jean-pierre.dupont@medecin.mssante.fr>", None, False,
     {"IMP_MSSANTE_UNAUTHENTICATED"}),
    ("Jean-Pierre Dupont <jean-pierre.dupont@medecin.mssante.fr>", None, None, set()),
    ("inconnu@nouveau.mssante.fr", None, False, {"IMP_MSSANTE_UNAUTHENTICATED"}),
    # a confrère's own domain / address, not vouched for
    ("Marie Curie <marie.curie@cabinet-curie.fr>", None, False,
     {"IMP_DIRECTORY_DOMAIN_UNAUTH"}),
    ("secretariat@cabinet-curie.fr", None, False, {"IMP_DIRECTORY_DOMAIN_UNAUTH"}),
    ("André Léon <andre.leon@gmail.com>", None, False, {"IMP_DIRECTORY_DOMAIN_UNAUTH"}),
    ("someone@gmail.com", None, False, set()),  # webmail, not a confrère's: not ours to say
    ("Marie Curie <marie.curie@cabinet-curie.fr>", None, None, set()),
    # a known name on another address
    ("Marie Curie <marie.curie.cabinet@gmail.com>", None, True, {"IMP_NAME_KNOWN_WEBMAIL"}),
    ("=?utf-8?q?Dr_Marie_CURIE?= <mcurie@yahoo.fr>", None, True, {"IMP_NAME_KNOWN_WEBMAIL"}),
    ("CURIE Marie <m.curie@autre-cabinet.fr>", None, True,
     {"IMP_NAME_KNOWN_WRONG_ADDRESS"}),
    ("Marie Curie <marie.curie@cabinet-curie.fr>", None, True, set()),
    ("Marie Curie <nouvelle@cabinet-curie.fr>", None, True, set()),  # same place
    ("Marie Curie <marie.curie@infirmier.mssante.fr>", None, True, set()),
    ("Marie Curie <autre@medecin.mssante.fr>", None, True, set()),  # MSSanté, authenticated
    # ANS-only names: only when the display name claims a profession
    ("Dr Jean-Pierre Dupont <jp.dupont@gmail.com>", None, True,
     {"IMP_NAME_DIRECTORY_WEBMAIL"}),
    ("Jean-Pierre Dupont <jp.dupont@gmail.com>", None, True, set()),  # a patient, maybe
    ("Sophie Martin <sophie.martin@gmail.com>", None, True, set()),
    ("Kiné Sophie Martin <contact@kine-martin.fr>", None, True,
     {"IMP_NAME_KNOWN_WRONG_ADDRESS"}),
    ("Dupont <x@gmail.com>", None, True, set()),  # one word is not a name
    # look-alike domains
    ("Jean-Pierre Dupont <jp@medecin.rnssante.fr>", None, None, {"IMP_LOOKALIKE_DOMAIN"}),
    ("Secrétariat <secretariat@mssante-fr.com>", None, True, {"IMP_LOOKALIKE_DOMAIN"}),
    ("Marie Curie <marie.curie@cabinet-curie.com>", None, True,
     {"IMP_LOOKALIKE_DOMAIN", "IMP_NAME_KNOWN_WRONG_ADDRESS"}),
    ("x@xn--mssant-gva.fr", None, True, {"IMP_LOOKALIKE_DOMAIN"}),
    ("newsletter@doctolib.fr", None, True, set()),
    # Reply-To elsewhere than the confrère's From
    ("Jean-Pierre Dupont <jean-pierre.dupont@medecin.mssante.fr>", "jpd@gmail.com", True,
     {"IMP_REPLY_TO_ELSEWHERE"}),
    ("Marie Curie <marie.curie@cabinet-curie.fr>", "Marie <marie.curie@infirmier.mssante.fr>",
     True, set()),  # another address of hers
    ("Marie Curie <marie.curie@cabinet-curie.fr>", "accueil@cabinet-curie.fr", True, set()),
    ("Marie Curie <marie.curie@cabinet-curie.fr>", "marie.curie@cabinet-curie.fr", True,
     set()),
    ("newsletter@doctolib.fr", "noreply@other.example", True, set()),  # not a confrère
    ("secretariat@ch-xyz.mssante.fr", "compta@gmail.com", False,
     {"IMP_MSSANTE_UNAUTHENTICATED", "IMP_REPLY_TO_ELSEWHERE"}),
    # a confrère's address shown as the name of another address
    ('"jean-pierre.dupont@medecin.mssante.fr" <jpd@gmail.com>', None, True,
     {"IMP_DISPLAY_ADDRESS_MISMATCH"}),
    ('"Marie Curie marie.curie@cabinet-curie.fr" <marie@autre.example>', None, True,
     {"IMP_DISPLAY_ADDRESS_MISMATCH"}),
    ('"Marie Curie (marie.curie@cabinet-curie.fr)" <marie.curie@cabinet-curie.fr>', None,
     True, set()),
    ('"info@boutique.example" <noreply@mailer.example>', None, True, set()),
    ("x@mssanté.fr", None, True, {"IMP_LOOKALIKE_DOMAIN"}),  # SMTPUTF8 address
    # nothing usable
    ("", None, False, set()),
    ("a@x.fr, b@y.fr", None, False, set()),
    ("pas une adresse", None, False, set()),
])
def test_assess_sender(from_: str, reply_to: str | None, vouched: bool | None,
                       symbols: set[str]) -> None:
    findings = assess_sender(from_, reply_to, DIRECTORY, vouched, WEBMAIL)
    assert {f.symbol for f in findings} == symbols
    for f in findings:
        assert f.check == "impersonation"
        assert f.outcome is Outcome.HIT
        assert f.extra["strength"] == STRENGTH[f.symbol]
        assert f.reasons and f.reasons[0].fr and f.reasons[0].en
        assert f.evidence
        # plain French for the practitioner: no authentication jargon
        for word in ("DMARC", "SPF", "DKIM"):
            assert word not in f.reasons[0].fr


def test_reasons_name_the_imitated_domain() -> None:
    [f] = assess_sender("x <a@rnssante.fr>", None, DIRECTORY, True, WEBMAIL)
    assert "imite mssante.fr" in f.reasons[0].fr
    assert f.evidence == ("a@rnssante.fr", "rnssante.fr", "mssante.fr")
    [f] = assess_sender("Marie Curie <mc@gmail.com>", None, DIRECTORY, True, WEBMAIL)
    assert "ne correspond pas à celle de ce confrère" in f.reasons[0].fr
    assert "marie.curie@cabinet-curie.fr" in f.evidence


def test_strengths() -> None:
    assert STRENGTH["IMP_MSSANTE_UNAUTHENTICATED"] == "strong"
    assert STRENGTH["IMP_LOOKALIKE_DOMAIN"] == "strong"
    assert STRENGTH["IMP_REPLY_TO_ELSEWHERE"] == "suspicion"
    assert STRENGTH["IMP_DISPLAY_ADDRESS_MISMATCH"] == "strong"
    assert set(STRENGTH.values()) == {"strong", "suspicion"}


def test_parse_addresses_decodes_encoded_words() -> None:
    assert parse_addresses("=?iso-8859-1?q?Dr_Andr=E9_L=E9on?= <A.Leon@Example.FR>") == [
        ("Dr André Léon", "a.leon@example.fr")]
    assert parse_addresses("=?bogus?q?x?= <a@b.fr>") == [("=?bogus?q?x?=", "a@b.fr")]


def test_policy_maps_strength_to_action() -> None:
    from gateway.config import Config
    from gateway.model import Direction
    from gateway.policy import Policy

    policy = Policy.load(Config())
    for symbol, strength in STRENGTH.items():
        finding = Finding("impersonation", symbol, Outcome.HIT)
        decision = policy.decide([finding], Direction.INBOUND)
        assert decision.action == {"strong": "hold", "suspicion": "tag"}[strength], symbol
