"""Fake confrères: name keys, look-alike domains and the assessment of one inbound sender.

Pure: the directory of confrères is reached through the ``DirectoryLookup``
protocol (``gateway.directory.Directory`` over SQLite, ``gateway.testing``'s
in-memory one for tests), the confusable-character table is data handed in
(``rules/confusables.txt``), and whether DMARC/SPF/DKIM vouch for the From domain
is a parameter. Findings carry a plain-French reason and a strength in
``extra["strength"]``: ``"strong"`` (spoofing: hold) or ``"suspicion"`` (tag).
"""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import getaddresses
from typing import Literal, Protocol

from gateway.verdict import Finding, Outcome, Reason

CHECK = "impersonation"
MSSANTE = "mssante.fr"

Strength = Literal["strong", "suspicion"]
Source = Literal["contacts", "ans"]

# Each symbol has one strength: the policy maps symbols, so a symbol never changes
# weight from one message to the next.
STRENGTH: dict[str, Strength] = {
    "IMP_MSSANTE_UNAUTHENTICATED": "strong",
    "IMP_DIRECTORY_DOMAIN_UNAUTH": "strong",
    "IMP_NAME_KNOWN_WEBMAIL": "strong",
    "IMP_NAME_DIRECTORY_WEBMAIL": "suspicion",
    "IMP_NAME_KNOWN_WRONG_ADDRESS": "suspicion",
    "IMP_LOOKALIKE_DOMAIN": "strong",
    "IMP_REPLY_TO_ELSEWHERE": "suspicion",
    "IMP_DISPLAY_ADDRESS_MISMATCH": "strong",
}

# Words dropped from a name before it is compared: civilities and titles.
TITLES = frozenset({
    "dr", "docteur", "doctor", "pr", "professeur", "prof", "m", "mr", "monsieur", "mme",
    "madame", "mlle", "mademoiselle", "me", "maitre",
})
# Words in a display name that claim a health profession («Dr Martin», «Kiné Dupont»).
CLAIMS = frozenset({
    "dr", "docteur", "doctor", "pr", "professeur", "kine", "kinesitherapeute", "masseur",
    "medecin", "infirmier", "infirmiere", "pharmacien", "pharmacienne", "orthophoniste",
    "podologue", "osteopathe", "sage", "chirurgien", "dentiste", "cabinet", "centre",
    "hopital", "clinique", "chu", "ch", "laboratoire", "radiologie", "secretariat",
})


# --- names --------------------------------------------------------------------

# Cyrillic and Greek letters drawn like Latin ones: «Pаul Mаrtin» with a Cyrillic «а»
# is the name «Paul Martin» to the eye, so to the comparison too.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ӏ": "l", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i",
    "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
})


def _fold(text: str) -> str:
    """Case and accents folded, œ/æ spelt out, Cyrillic/Greek look-alike letters made
    Latin: «Élodie CŒUR» -> «elodie coeur», «Mаrtin» (Cyrillic а) -> «martin»."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_HOMOGLYPHS)
    return text.replace("œ", "oe").replace("æ", "ae").replace("ß", "ss")


@functools.lru_cache(maxsize=1 << 16)
def _fold_word(word: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[^a-z0-9]+", _fold(word)) if w)


def name_words(text: str) -> list[str]:
    """The folded words of a name, hyphens and punctuation as separators.

    Folded word by word through a cache: the same first and last names come back
    all along a 500 000-row import.
    """
    return [w for piece in text.split() for w in _fold_word(piece)]


def name_key(text: str) -> str:
    """The key of a person's name: «Dr Jean-Pierre DUPONT» = «dupont jean pierre».

    Case, accents, civilities and titles («Dr», «Docteur», «M.», «Mme»), hyphens and
    the order of first and last names do not matter.
    """
    return " ".join(sorted(w for w in name_words(text) if w not in TITLES))


def claims_profession(display_name: str) -> bool:
    """Whether a display name presents its sender as a health professional."""
    return any(w in CLAIMS for w in name_words(display_name))


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One address of the directory: a confrère, a service or a structure."""

    source: Source
    display_name: str
    address: str
    domain: str
    kind: str = ""  # ANS «Type de BAL»: PER (personal) or ORG (organisational)
    profession_code: str = ""
    profession_label: str = ""

    @property
    def name_key(self) -> str:
        return name_key(self.display_name)


class DirectoryLookup(Protocol):
    """What the assessment needs from the directory; every call is cheap."""

    def by_address(self, address: str) -> Sequence[DirectoryEntry]: ...

    def by_name(self, display_name: str) -> Sequence[DirectoryEntry]: ...

    def is_directory_domain(self, domain: str) -> bool: ...

    def lookalikes(self) -> LookalikeIndex: ...


# --- domains ------------------------------------------------------------------

# Public suffixes of two labels under which registrations happen (enough for the
# domains French practices meet; not a Public Suffix List).
TWO_LEVEL_SUFFIXES = frozenset({
    "asso.fr", "com.fr", "gouv.fr", "nom.fr", "prd.fr", "tm.fr", "co.uk", "org.uk",
    "ac.uk", "com.au", "co.nz", "co.jp", "com.br", "co.za", "com.es", "com.pt",
})


@functools.lru_cache(maxsize=1 << 14)
def ascii_domain(domain: str) -> str:
    """Lower-case, no trailing dot, Unicode labels in their ASCII (punycode) form."""
    domain = domain.strip().strip(".").lower()
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii") if domain else ""
    except UnicodeError:
        return domain


def unicode_domain(domain: str) -> str:
    """Lower-case, no trailing dot, ``xn--`` labels decoded (as a reader sees it)."""
    labels = []
    for label in domain.strip().strip(".").lower().split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):
                label = label.encode("ascii").decode("idna")
        labels.append(label)
    return ".".join(labels)


def registrable(domain: str) -> str:
    """The registered name: ``medecin.mssante.fr`` -> ``mssante.fr``."""
    labels = domain.split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _split_registrable(reg: str) -> tuple[str, str]:
    """(core, suffix): ``mssante.fr`` -> (``mssante``, ``fr``)."""
    labels = reg.split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES:
        return ".".join(labels[:-2]), ".".join(labels[-2:])
    return ".".join(labels[:-1]), labels[-1] if len(labels) > 1 else ""


def domain_of(address: str) -> str:
    _, at, domain = address.rpartition("@")
    return ascii_domain(domain) if at else ""


def in_domains(domain: str, domains: frozenset[str]) -> bool:
    """Whether ``domain`` or one of its parents is in ``domains``."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


class Skeleton:
    """Maps a text to what it looks like: accents removed, confusables replaced."""

    def __init__(self, singles: dict[str, str], sequences: Sequence[tuple[str, str]]) -> None:
        self.singles = dict(singles)
        self.table = str.maketrans(self.singles)
        self.sequences = tuple(sequences)

    @classmethod
    def from_text(cls, text: str) -> Skeleton:
        """Parse ``rules/confusables.txt``; ValueError naming the line when malformed."""
        singles: dict[str, str] = {}
        sequences: list[tuple[str, str]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            # comments: whole lines starting with "#", or " # ..." after a mapping
            line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"line {number}: expected 'CHARACTERS LOOKALIKE', got {raw!r}")
            seen, looks = (_char(p, number) for p in parts)
            if len(seen) == 1:
                singles[seen] = looks
            else:
                sequences.append((seen, looks))
        return cls(singles, sequences)

    def __call__(self, text: str) -> str:
        text = _fold(text).translate(self.table)
        for seen, looks in self.sequences:
            text = text.replace(seen, looks)
        return text


def _char(token: str, number: int) -> str:
    if re.fullmatch(r"U\+[0-9A-Fa-f]{4,6}", token):
        return chr(int(token[2:], 16))
    if token.startswith("U+"):
        raise ValueError(f"line {number}: bad code point {token!r}")
    return token


def damerau(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance, or ``limit + 1`` as soon as it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = ca != cb
            value = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, prev2[j - 2] + 1)
            cur[j] = value
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def max_distance(length: int) -> int:
    """Edits allowed for a name of this length: none under 5, 1 up to 8, then 2."""
    return 0 if length < 5 else 1 if length < 9 else 2


How = Literal["homoglyph", "tld", "added_words", "typo"]

HOW_FR: dict[str, str] = {
    "homoglyph": "des lettres qui se ressemblent",
    "tld": "la même adresse avec une autre extension",
    "added_words": "des mots ajoutés autour du vrai nom",
    "typo": "une ou deux lettres changées",
}
HOW_EN: dict[str, str] = {
    "homoglyph": "characters that look alike",
    "tld": "the same name under another extension",
    "added_words": "words added around the real name",
    "typo": "one or two letters changed",
}


@dataclass(frozen=True, slots=True)
class Lookalike:
    domain: str  # as the reader sees it (Unicode)
    imitates: str  # the protected registered domain
    how: How


@dataclass
class _Protected:
    reg: str
    core: str
    suffix: str


@dataclass
class LookalikeIndex:
    """Protected domains indexed for a fast per-message comparison.

    Domains are reduced to their registered name (all ``*.mssante.fr`` count as
    ``mssante.fr``), so tens of thousands of directory domains make a small index;
    candidates are compared by skeleton (dictionary look-ups) and by edit distance
    only against cores of a close length.
    """

    skeleton: Skeleton
    protected: dict[str, _Protected] = field(default_factory=dict)
    by_full: dict[str, str] = field(default_factory=dict)
    by_core: dict[str, list[str]] = field(default_factory=dict)
    cores: list[tuple[str, str]] = field(default_factory=list)  # (skeleton core, reg)
    grams: dict[str, list[int]] = field(default_factory=dict)  # bigram -> core numbers
    core_lengths: frozenset[int] = frozenset()

    @classmethod
    def build(cls, domains: Iterable[str], skeleton: Skeleton) -> LookalikeIndex:
        index = cls(skeleton)
        for domain in domains:
            index._add(domain)
        index.core_lengths = frozenset(len(core) for core, _ in index.cores)
        return index

    def _add(self, domain: str) -> None:
        reg = registrable(unicode_domain(domain))
        if not reg or "." not in reg or reg in self.protected:
            return
        core, suffix = _split_registrable(reg)
        skel_core = self.skeleton(core)
        if len(skel_core) < 4:  # «ch.fr», «ars.fr»: too short to be imitated recognisably
            return
        self.protected[reg] = _Protected(reg, skel_core, suffix)
        self.by_full.setdefault(self.skeleton(reg), reg)
        self.by_core.setdefault(skel_core, []).append(reg)
        number = len(self.cores)
        self.cores.append((skel_core, reg))
        for gram in _bigrams(skel_core):
            self.grams.setdefault(gram, []).append(number)

    def __len__(self) -> int:
        return len(self.protected)

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and registrable(unicode_domain(domain)) in self.protected

    def check(self, domain: str) -> Lookalike | None:
        """The protected domain that ``domain`` imitates, if any.

        A protected domain itself and its subdomains (``medecin.mssante.fr``) are not
        look-alikes.
        """
        shown = unicode_domain(domain)
        reg = registrable(shown)
        if not reg or reg in self.protected:
            return None
        skel_reg = self.skeleton(reg)
        target = self.by_full.get(skel_reg)
        if target is not None:
            return Lookalike(shown, target, "homoglyph")
        core, _suffix = _split_registrable(reg)
        skel_core = self.skeleton(core)
        targets = self.by_core.get(skel_core)
        if targets:
            return Lookalike(shown, targets[0], "tld")
        # words added: a protected name as one of the words of the domain
        # (mssante-fr.com, secure-mssante.fr, mssante.fr.secure-mail.com) ...
        words = [w for w in re.split(r"[.\-_]+", self.skeleton(shown)) if w]
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + 4) + 1):
                run = "-".join(words[i:j])
                targets = self.by_core.get(run)
                if targets:
                    return Lookalike(shown, targets[0], "added_words")
        # ... or glued to other letters (securemssante.fr), for long enough names
        for word in words:
            for length in self.core_lengths:
                if length < 6 or length >= len(word):
                    continue
                for start in range(len(word) - length + 1):
                    targets = self.by_core.get(word[start:start + length])
                    if targets:
                        return Lookalike(shown, targets[0], "added_words")
        # a letter or two changed, in the registered name or one of the words
        for candidate in dict.fromkeys([skel_core, *words]):
            target = self._typo_of(candidate)
            if target is not None:
                return Lookalike(shown, target, "typo")
        return None


    def _typo_of(self, candidate: str) -> str | None:
        """The protected name ``candidate`` is one or two edits away from, if any.

        Only names sharing enough bigrams are compared (an edit removes at most 3 of
        a name's distinct bigrams), so the cost follows the few near names, not the
        size of the index.
        """
        if len(candidate) < 5:
            return None
        mine = _bigrams(candidate)
        shared: dict[int, int] = {}
        for gram in mine:
            for number in self.grams.get(gram, ()):
                shared[number] = shared.get(number, 0) + 1
        for number, count in shared.items():
            core, target = self.cores[number]
            limit = max_distance(min(len(core), len(candidate)))
            if not limit or abs(len(core) - len(candidate)) > limit:
                continue
            if count < max(len(mine), len(_bigrams(core))) - 3 * limit:
                continue
            if damerau(candidate, core, limit) <= limit:
                return target
        return None


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


# --- one inbound sender -------------------------------------------------------

def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded («=?utf-8?q?Dr_Jos=C3=A9?=» -> «Dr José»)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def parse_addresses(header: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of a From/Reply-To field value."""
    pairs = getaddresses([decode_words(header)])
    return [(name.strip(), addr.strip().lower()) for name, addr in pairs if "@" in addr]


_ADDRESS_IN_NAME = re.compile(r"[^\s<>\"'()@,;:]+@[a-z0-9.-]+\.[a-z]{2,63}", re.IGNORECASE)


def _finding(symbol: str, fr: str, en: str, evidence: Iterable[str]) -> Finding:
    strength = STRENGTH[symbol]
    return Finding(CHECK, symbol, Outcome.HIT, (Reason(fr, en),), tuple(evidence),
                   extra={"strength": strength})


def _describe(entries: Sequence[DirectoryEntry]) -> tuple[str, str]:
    """How the confrère is known, in French and English."""
    if any(e.source == "contacts" for e in entries):
        return "dans les contacts du cabinet", "in the practice's contacts"
    return "dans l'annuaire MSSanté", "in the MSSanté directory"


def _by_name(directory: DirectoryLookup, display: str) -> list[DirectoryEntry]:
    """Entries for a display name of two words or more, also without the words that
    claim a profession («Kiné Sophie Martin» is Sophie Martin)."""
    if len(name_key(display).split()) >= 2:
        entries = list(directory.by_name(display))
        if entries:
            return entries
    bare = " ".join(w for w in name_words(display) if w not in CLAIMS)
    if len(name_key(bare).split()) >= 2 and bare != " ".join(name_words(display)):
        return list(directory.by_name(bare))
    return []


def assess_sender(
    from_header: str, reply_to: str | None, directory: DirectoryLookup,
    vouched: bool | None, webmail: frozenset[str],
) -> list[Finding]:
    """Findings about one inbound message's sender (From and Reply-To).

    ``vouched``: whether DMARC/SPF/DKIM vouch for the From domain; ``None`` when that
    could not be told (DNS trouble): then no "not authenticated" finding is made (the
    authentication check reports its own TEMPERROR). ``webmail``: free webmail and
    consumer ISP domains (a subdomain counts as its parent).
    """
    senders = parse_addresses(from_header)
    if len(senders) != 1:
        return []  # none or several: the hygiene check reports it
    display, address = senders[0]
    domain = domain_of(address)
    if not domain:
        return []
    shown = unicode_domain(domain)
    findings: list[Finding] = []
    mssante = domain == MSSANTE or domain.endswith("." + MSSANTE)
    free = in_domains(domain, webmail)
    known = list(directory.by_address(address))
    directory_domain = directory.is_directory_domain(domain)

    # 1. A confrère's domain or address that its owner's servers do not vouch for.
    if vouched is False:
        if mssante:
            findings.append(_finding(
                "IMP_MSSANTE_UNAUTHENTICATED",
                f"le message se présente comme venant de la messagerie sécurisée de santé "
                f"({shown}) mais n'a pas été envoyé par elle : c'est très probablement une "
                "usurpation",
                f"the message claims to come from the secure health messaging ({shown}) but "
                "was not sent by it (DMARC/SPF/DKIM do not vouch for it): most likely spoofed",
                (address, shown)))
        elif known or (directory_domain and not free):
            what_fr = "l'adresse d'un confrère" if known else "le domaine d'un confrère"
            what_en = "a confrère's address" if known else "a confrère's domain"
            findings.append(_finding(
                "IMP_DIRECTORY_DOMAIN_UNAUTH",
                f"le message utilise {what_fr} ({address}) mais n'a pas été envoyé par "
                "son serveur habituel : l'expéditeur est probablement usurpé",
                f"the message uses {what_en} ({address}) but DMARC/SPF/DKIM do not vouch "
                "for it: the sender is probably spoofed",
                (address, shown)))

    # 2. A confrère's address written as the display name of another address
    #    ("jean.dupont@medecin.mssante.fr" <someone@gmail.com>).
    shown_address = _ADDRESS_IN_NAME.search(display)
    if shown_address:
        written = shown_address.group(0).lower()
        written_domain = domain_of(written)
        if written != address and (written_domain == MSSANTE or written_domain.endswith(
                "." + MSSANTE) or directory.by_address(written)):
            findings.append(_finding(
                "IMP_DISPLAY_ADDRESS_MISMATCH",
                f"le nom affiché montre l'adresse d'un confrère ({written}) mais le message "
                f"vient d'une autre adresse ({address})",
                f"the display name shows a confrère's address ({written}) but the message "
                f"comes from another address ({address})",
                (address, written)))
            display = ""  # the name is an address: no name comparison on top

    # 3. A known confrère's name on an address that is not one of theirs.
    if display and not known:
        entries = _by_name(directory, display)
        addresses = {e.address for e in entries}
        same_place = any(e.domain == domain for e in entries)
        if entries and address not in addresses and not same_place and not (
                mssante and vouched):
            contacts = [e for e in entries if e.source == "contacts"]
            theirs = sorted({e.address for e in (contacts or entries)})[:3]
            where_fr, where_en = _describe(entries)
            if free and contacts:
                findings.append(_finding(
                    "IMP_NAME_KNOWN_WEBMAIL",
                    f"le nom « {display} » est celui d'un confrère connu {where_fr}, mais "
                    f"l'adresse ({address}) est une messagerie gratuite et ne correspond pas à "
                    "celle de ce confrère",
                    f"the name '{display}' is a confrère known {where_en}, but the address "
                    f"({address}) is a free webmail and not one of theirs",
                    (address, *theirs)))
            elif free and claims_profession(display):
                findings.append(_finding(
                    "IMP_NAME_DIRECTORY_WEBMAIL",
                    f"le nom « {display} » est celui d'un professionnel de santé {where_fr}, "
                    f"mais l'adresse ({address}) est une messagerie gratuite",
                    f"the name '{display}' is a health professional listed {where_en}, but "
                    f"the address ({address}) is a free webmail",
                    (address, *theirs)))
            elif contacts or claims_profession(display):
                findings.append(_finding(
                    "IMP_NAME_KNOWN_WRONG_ADDRESS",
                    f"le nom « {display} » est celui d'un confrère connu {where_fr}, mais "
                    f"l'adresse ({address}) ne correspond pas à celle de ce confrère",
                    f"the name '{display}' is a confrère known {where_en}, but the address "
                    f"({address}) is not one of theirs",
                    (address, *theirs)))

    # 4. A domain that imitates mssante.fr or a confrère's domain.
    if not mssante and not directory_domain and not free:
        hit = directory.lookalikes().check(domain)
        if hit is not None:
            findings.append(_finding(
                "IMP_LOOKALIKE_DOMAIN",
                f"le domaine de l'expéditeur ({hit.domain}) imite {hit.imitates} "
                f"({HOW_FR[hit.how]}) : ce n'est pas le vrai",
                f"the sender's domain ({hit.domain}) imitates {hit.imitates} "
                f"({HOW_EN[hit.how]}): it is not the real one",
                (address, hit.domain, hit.imitates)))

    # 5. A confrère's From with answers sent somewhere else.
    confrere = mssante or bool(known) or (directory_domain and not free)
    if reply_to and confrere:
        own = {e.name_key for e in known} or ({name_key(display)} if display else set())
        for _name, target in parse_addresses(reply_to):
            target_domain = domain_of(target)
            if target == address or not target_domain:
                continue
            if registrable(target_domain) == registrable(domain):
                continue
            if any(e.name_key in own for e in directory.by_address(target)):
                continue  # another address of the same confrère
            where_fr = (" (messagerie gratuite)" if in_domains(target_domain, webmail)
                        else "")
            where_en = " (free webmail)" if where_fr else ""
            findings.append(_finding(
                "IMP_REPLY_TO_ELSEWHERE",
                f"les réponses partiraient vers {target}{where_fr}, pas vers l'adresse du "
                f"confrère ({address}) : vérifiez l'adresse avant de répondre",
                f"replies would go to {target}{where_en}, not to the confrère's address "
                f"({address}): check the address before answering",
                (address, target)))
            break
    return findings
