"""Patient-data guard benchmark: NIR and diagnosis detection, look-alikes, speed, decisions.

Six parts, all in one process: (1) a seeded labelled corpus of practice mail
through extraction + assessment: precision and recall per finding type,
container, NIR written form and term inflection; (2) NIR false findings on
100 000 look-alike numbers; (3) lexicon recall in running text and false
positives on ordinary French; (4) scan speed against a naive baseline run in
the same process; (5) a 5 MB PDF attachment end to end; (6) the Engine's
decisions on the corpus sent to a webmail address. Targets are printed beside
the figures, never asserted. Run: ``python bench/patient_data.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stdnum.fr import nir as stdnum_nir

from bench.corpus import (
    CONTAINERS,
    IDIOMS,
    NIR_FORMS,
    TERM_INFLECTIONS,
    TRAPS,
    LabelledMail,
    NirLabel,
    TermLabel,
    build_corpus,
    load_lexicon_terms,
    lookalike_sentences,
    nir_key,
    nonmedical_documents,
    random_nir,
    scan_like_pdf,
    scan_text,
    term_cases,
    text_heavy_pdf,
)
from gateway.checks.patient_data import PatientDataRules
from gateway.config import Config
from gateway.detect.extract import Extraction, TextChunk, extract_message
from gateway.detect.fold import fold as fold_text
from gateway.detect.lexicon import Lexicon, TermMatch
from gateway.detect.nir import NirMatch, find_nirs
from gateway.detect.patient_data import Assessment, AssessRules, FoundTerm, assess
from gateway.engine import Engine
from gateway.model import Direction, Envelope, Message

TARGET_NIR_RECALL = 0.99
TARGET_DIAG_RECALL = 0.95
TARGET_DIAG_FP = 0.02
TARGET_MBPS = 30.0
TARGET_PDF_S = 1.0
DIAG_KINDS = ("diagnosis", "cim10")
MB = 1_000_000


# --------------------------------------------------------------------------- helpers


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    def as_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "recall": self.recall,
                "precision": self.precision}


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def fold_with_map(text: str) -> tuple[str, list[int]]:
    """Lower case, accents and ligatures dropped, runs of spaces/hyphens/apostrophes → " ".

    Returns the folded text and, for each folded character, its original offset.
    """
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace() or ch in "-'’>":
            if out and out[-1] != " ":
                out.append(" ")
                index.append(i)
            continue
        base = unicodedata.normalize("NFD", ch.lower().replace("œ", "oe").replace("æ", "ae"))
        for b in base:
            if not unicodedata.combining(b):
                out.append(b)
                index.append(i)
    return "".join(out), index


def fold(text: str) -> str:
    return fold_with_map(text)[0].strip()


def excerpt(text: str, start: int, end: int, width: int = 70) -> str:
    left = max(0, start - width)
    right = min(len(text), end + width)
    return ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")


def locate_number(text: str, value: str) -> tuple[int, int] | None:
    """Where ``value`` (digits, 2A/2B) is written in ``text``, whatever the separators."""
    keep: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch.isdigit() or ch in "ABab":
            keep.append(ch.upper())
            index.append(i)
    pos = "".join(keep).find(value.upper())
    if pos < 0:
        return None
    return index[pos], index[pos + len(value) - 1] + 1


def locate_words(text: str, written: str) -> tuple[int, int] | None:
    folded, index = fold_with_map(text)
    needle = fold(written)
    pos = folded.find(needle)
    if pos < 0 or not needle:
        return None
    return index[pos], index[pos + len(needle) - 1] + 1


def container_of(mail: LabelledMail, source: str, chunk_container: str) -> str:
    best = ""
    for prefix in mail.sources:
        if (source == prefix or source.startswith(prefix + "/")) and len(prefix) > len(best):
            best = prefix
    return mail.sources[best] if best else f"({chunk_container})"


def chunk_for(chunks: Sequence[TextChunk], source: str, start: int, end: int,
              check: str = "") -> TextChunk | None:
    for chunk in chunks:
        if chunk.source == source and end <= len(chunk.text) and (
                not check or check in re.sub(r"\W", "", chunk.text[start:end]).upper()):
            return chunk
    return None


def show(text: str) -> str:
    """A snippet on one line, special spaces made visible."""
    return (text.replace("\u00a0", "⍽").replace("\u202f", "⌴").replace("\r", "")
            .replace("\n", "⏎"))


# --------------------------------------------------------------------------- rules


@dataclass
class Setup:
    cfg: Config
    rules: AssessRules
    lexicon: Lexicon


def load_setup(data_dir: str) -> Setup:
    cfg = Config()
    cfg.storage.data_dir = data_dir
    return Setup(cfg, PatientDataRules.load(cfg).assess, Lexicon.default())


# --------------------------------------------------------------------------- (1) corpus


@dataclass
class Miss:
    mail: str
    kind: str           # "nir" | "diagnosis"
    form: str           # NIR form or term inflection
    container: str
    source: str
    written: str
    snippet: str
    extracted: str      # the extracted text around it ("" when not found there)
    alone: bool         # the detector finds it in the snippet scanned alone
    note: str = ""


@dataclass
class FalseFinding:
    mail: str
    positive: bool
    kind: str           # "nir" | "diagnosis" | "marker"
    value: str
    container: str
    source: str
    extracted: str
    confidence: str = ""


@dataclass
class CorpusReport:
    mails: int = 0
    positives: int = 0
    negatives: int = 0
    nir: Counts = field(default_factory=Counts)
    diag: Counts = field(default_factory=Counts)
    nir_by_container: dict[str, Counts] = field(default_factory=dict)
    diag_by_container: dict[str, Counts] = field(default_factory=dict)
    nir_by_form: dict[str, Counts] = field(default_factory=dict)
    nir_by_context: dict[str, Counts] = field(default_factory=dict)
    diag_by_inflection: dict[str, Counts] = field(default_factory=dict)
    nir_wrong_place: int = 0
    diag_other_entry: list[tuple[str, str, str]] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    false: list[FalseFinding] = field(default_factory=list)
    negative_nir_findings: int = 0
    negative_diag_findings: int = 0
    negative_marker_findings: int = 0
    levels: dict[str, Counter[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    mail_ms_p50: float = 0.0
    mail_ms_max: float = 0.0


def _bump(table: dict[str, Counts], key: str) -> Counts:
    return table.setdefault(key, Counts())


def _nir_alone(label: NirLabel, setup: Setup) -> bool:
    return any(m.value == label.value for m in find_nirs(label.snippet, setup.rules.nir))


def _term_hits(matches: Iterable[TermMatch], text: str, label: TermLabel
               ) -> tuple[bool, bool]:
    """(detected at all, detected as the expected canonical term) in ``matches``."""
    written = fold(label.written)
    exact = other = False
    for m in matches:
        if m.kind not in DIAG_KINDS:
            continue
        if m.term == label.term:
            exact = True
        matched = fold(text[m.start:m.end])
        if matched and (matched in written or written in matched):
            other = True
    return exact or other, exact


def _nir_window_words(text: str, start: int, end: int, setup: Setup) -> str:
    rules = setup.rules.nir
    window = text[max(0, start - rules.window_before):start] + " " + \
        text[end:end + rules.window_after]
    ctx, strong = rules.context.find(window), rules.strong.find(window)
    neg = rules.negative.find(window)
    return (f"window: context word {ctx!r}, strong {strong!r}, negative {neg!r}; "
            f"next characters {show(text[end:end + 6])!r}")


def evaluate_mail(mail: LabelledMail, setup: Setup, report: CorpusReport) -> None:
    started = time.perf_counter()
    parsed = BytesParser(policy=policy.default).parsebytes(mail.raw)
    assert isinstance(parsed, EmailMessage)
    extraction = extract_message(parsed)
    assessment = assess(extraction.chunks, setup.rules, setup.lexicon)
    report.seconds += time.perf_counter() - started
    report.mails += 1
    if mail.positive:
        report.positives += 1
    else:
        report.negatives += 1
    report.levels.setdefault("positive" if mail.positive else "negative",
                             Counter())[assessment.level] += 1
    for note in extraction.notes:
        report.notes[note.kind] += 1
    _score_nirs(mail, extraction, assessment, setup, report)
    _score_terms(mail, extraction, assessment, setup, report)
    if not mail.positive:
        report.negative_nir_findings += len(assessment.nirs)
        report.negative_diag_findings += len(assessment.diagnoses)
        report.negative_marker_findings += len(assessment.markers)
        for found in assessment.markers:
            chunk = chunk_for(extraction.chunks, found.source, found.term.start, found.term.end)
            report.false.append(FalseFinding(
                mail.ident, False, "marker", found.term.term,
                container_of(mail, found.source, found.container), found.source,
                show(excerpt(chunk.text, found.term.start, found.term.end)) if chunk else ""))


def _score_nirs(mail: LabelledMail, extraction: Extraction, assessment: Assessment,
                setup: Setup, report: CorpusReport) -> None:
    expected: set[str] = set()
    for label in mail.nirs:
        expected.add(label.value)
        if len(label.value) == 13:
            expected.add(label.value + f"{nir_key(label.value):02d}")
    for label in mail.nirs:
        hits = [f for f in assessment.nirs if label.value in (f.nir.value, f.nir.matricule)]
        in_place = [f for f in hits if f.source == label.source]
        counts = [report.nir, _bump(report.nir_by_container, label.container),
                  _bump(report.nir_by_form, label.form),
                  _bump(report.nir_by_context, ("with" if label.context else "without")
                        + " context word"),
                  *([_bump(report.nir_by_form, "(Corsica 2A/2B)")] if label.corsica else [])]
        if hits:
            for c in counts:
                c.tp += 1
            if not in_place:
                report.nir_wrong_place += 1
            continue
        for c in counts:
            c.fn += 1
        chunk = next((c for c in extraction.chunks if c.source == label.source), None)
        extracted, note = "", "the labelled source is missing from the extraction"
        if chunk is not None:
            where = locate_number(chunk.text, label.value)
            if where is None:
                note = "the number is not in the extracted text"
            else:
                extracted = show(excerpt(chunk.text, *where))
                note = _nir_window_words(chunk.text, *where, setup)
        report.misses.append(Miss(mail.ident, "nir", label.form, label.container, label.source,
                                  show(label.written), show(label.snippet), extracted,
                                  _nir_alone(label, setup), note))
    seen: set[tuple[str, str]] = set()
    for found in assessment.nirs:
        n: NirMatch = found.nir
        if n.value in expected or n.matricule in expected or (n.value, found.source) in seen:
            continue
        seen.add((n.value, found.source))
        container = container_of(mail, found.source, found.container)
        report.nir.fp += 1
        _bump(report.nir_by_container, container).fp += 1
        chunk = chunk_for(extraction.chunks, found.source, n.start, n.end, n.value[:5])
        report.false.append(FalseFinding(
            mail.ident, mail.positive, "nir", n.value, container, found.source,
            show(excerpt(chunk.text, n.start, n.end)) if chunk else "", n.confidence))


def _score_terms(mail: LabelledMail, extraction: Extraction, assessment: Assessment,
                 setup: Setup, report: CorpusReport) -> None:
    by_source: dict[str, list[FoundTerm]] = {}
    for f in assessment.diagnoses:
        by_source.setdefault(f.source, []).append(f)
    texts: dict[str, str] = {}
    for chunk in extraction.chunks:
        texts.setdefault(chunk.source, chunk.text)
    explained: set[int] = set()
    for label in mail.terms:
        detected = exact = False
        for source, found in by_source.items():
            text = texts.get(source, "")
            for f in found:
                d, e = _term_hits([f.term], text, label)
                if d:
                    explained.add(id(f))
                detected, exact = detected or d, exact or e
        counts = [report.diag, _bump(report.diag_by_container, label.container),
                  _bump(report.diag_by_inflection, label.inflection)]
        if detected:
            for c in counts:
                c.tp += 1
            if not exact:
                names = sorted({f.term.term for fs in by_source.values() for f in fs
                                if id(f) in explained})
                report.diag_other_entry.append((label.term, label.written, ", ".join(names)))
            continue
        for c in counts:
            c.fn += 1
        chunk_text = texts.get(label.source)
        extracted, note = "", "the labelled source is missing from the extraction"
        if chunk_text is not None:
            where = locate_words(chunk_text, label.written)
            if where is None:
                note = "the term is not in the extracted text"
            else:
                extracted = show(excerpt(chunk_text, *where))
                note = ""
        alone, _ = _term_hits(setup.lexicon.find(label.snippet), label.snippet, label)
        report.misses.append(Miss(mail.ident, "diagnosis", label.inflection, label.container,
                                  label.source, show(label.written), show(label.snippet),
                                  extracted, alone, note or f"expected «{label.term}»"))
    for f in assessment.diagnoses:
        if id(f) in explained or any(f.term.term == t.term for t in mail.terms):
            continue
        container = container_of(mail, f.source, f.container)
        report.diag.fp += 1
        _bump(report.diag_by_container, container).fp += 1
        text = texts.get(f.source, "")
        report.false.append(FalseFinding(mail.ident, mail.positive, "diagnosis", f.term.term,
                                         container, f.source,
                                         show(excerpt(text, f.term.start, f.term.end))))


def run_corpus(corpus: Sequence[LabelledMail], setup: Setup) -> CorpusReport:
    report = CorpusReport()
    times: list[float] = []
    for mail in corpus:
        before = report.seconds
        evaluate_mail(mail, setup, report)
        times.append(report.seconds - before)
    times.sort()
    if times:
        report.mail_ms_p50 = 1000 * times[len(times) // 2]
        report.mail_ms_max = 1000 * times[-1]
    return report


# --------------------------------------------------------------------------- (2) look-alikes


@dataclass
class LookalikeReport:
    items: int = 0
    seconds: float = 0.0
    raw_findings: int = 0
    valid_by_chance_found: int = 0
    valid_by_chance_items: int = 0
    false_findings: int = 0
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    by_labelling: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)


def run_lookalikes(count: int, seed: int, setup: Setup) -> LookalikeReport:
    items = lookalike_sentences(seed, count)
    report = LookalikeReport(items=len(items))
    rules = setup.rules.nir
    started = time.perf_counter()
    results = [find_nirs(item.sentence, rules) for item in items]
    report.seconds = time.perf_counter() - started
    seen_examples: set[tuple[str, str]] = set()
    for item, found in zip(items, results, strict=True):
        cat = report.by_category.setdefault(item.category, Counter())
        lab = report.by_labelling.setdefault("labelled" if item.labelled else "bare", Counter())
        for table in (cat, lab):
            table["items"] += 1
            table["nir_by_chance"] += bool(item.nir_by_chance)
        if item.nir_by_chance:
            report.valid_by_chance_items += 1
        for m in found:
            report.raw_findings += 1
            kind = "valid_by_chance" if m.value == item.nir_by_chance else "false"
            for table in (cat, lab):
                table["raw"] += 1
                table[kind] += 1
            if kind == "valid_by_chance":
                report.valid_by_chance_found += 1
                continue
            report.false_findings += 1
            key = (item.category, item.sentence)
            if key not in seen_examples and len(report.examples) < 200:
                seen_examples.add(key)
                report.examples.append({"category": item.category, "value": m.value,
                                        "confidence": m.confidence,
                                        "sentence": show(item.sentence)})
    report.by_category = {k: dict(v) for k, v in report.by_category.items()}
    report.by_labelling = {k: dict(v) for k, v in report.by_labelling.items()}
    return report


# --------------------------------------------------------------------------- (3) lexicon


@dataclass
class LexiconReport:
    cases: int = 0
    detected: int = 0
    exact: int = 0
    by_inflection: dict[str, Counts] = field(default_factory=dict)
    by_category: dict[str, Counts] = field(default_factory=dict)
    misses: list[dict[str, str]] = field(default_factory=list)
    other_entry: list[dict[str, str]] = field(default_factory=list)
    sentences: int = 0
    sentences_fp: int = 0
    documents: int = 0
    documents_fp: int = 0
    marker_sentences: int = 0
    fp_sentences: list[dict[str, str]] = field(default_factory=list)
    special_total: dict[str, int] = field(default_factory=dict)
    special_fired: list[dict[str, str]] = field(default_factory=list)


def run_lexicon(seed: int, setup: Setup, *, forms_per_entry: int, documents: int
                ) -> LexiconReport:
    lexicon = setup.lexicon
    report = LexiconReport()
    for case in term_cases(seed, forms_per_entry=forms_per_entry):
        report.cases += 1
        label = TermLabel(case.term, case.category, case.written, case.inflection, "", "",
                          case.sentence)
        detected, exact = _term_hits(lexicon.find(case.sentence), case.sentence, label)
        for table, key in ((report.by_inflection, case.inflection),
                           (report.by_category, case.category)):
            c = _bump(table, key)
            if detected:
                c.tp += 1
            else:
                c.fn += 1
        if detected:
            report.detected += 1
            report.exact += exact
            if not exact:
                names = sorted({m.term for m in lexicon.find(case.sentence)
                                if m.kind in DIAG_KINDS})
                report.other_entry.append({"expected": case.term, "written": case.written,
                                           "reported": ", ".join(names)})
        else:
            report.misses.append({"term": case.term, "form": case.form,
                                  "inflection": case.inflection, "written": show(case.written),
                                  "sentence": show(case.sentence)})
    seen_fp: set[str] = set()
    for doc in nonmedical_documents(seed + 1, documents):
        report.documents += 1
        doc_hit = False
        for sentence in doc:
            matches = lexicon.find(sentence)
            diag = [m for m in matches if m.kind in DIAG_KINDS]
            report.sentences += 1
            report.marker_sentences += any(m.kind == "marker" for m in matches)
            if diag:
                doc_hit = True
                report.sentences_fp += 1
                if sentence not in seen_fp:
                    seen_fp.add(sentence)
                    report.fp_sentences.append({"sentence": show(sentence), "terms": ", ".join(
                        sorted({m.term for m in diag}))})
        doc_hit = doc_hit or any(m.kind in DIAG_KINDS for m in lexicon.find("\n".join(doc)))
        report.documents_fp += doc_hit
    for name, pool in (("trap", TRAPS), ("idiom", IDIOMS)):
        for sentence in pool:
            matches = lexicon.find(sentence)
            terms = sorted({m.term for m in matches if m.kind in DIAG_KINDS})
            markers = sorted({m.term for m in matches if m.kind == "marker"})
            report.special_total[name] = report.special_total.get(name, 0) + 1
            if terms or markers:
                report.special_fired.append({"pool": name, "sentence": sentence,
                                             "diagnoses": ", ".join(terms),
                                             "markers": ", ".join(markers)})
    return report


# --------------------------------------------------------------------------- (4) speed

_NAIVE_NIR = re.compile(r"\d(?: ?\d){12,14}")


def naive_scan(text: str, terms: Sequence[str]) -> tuple[int, int, float, float]:
    """The baseline: a plain digit regex + stdnum on each candidate; ``term in text.lower()``."""
    started = time.perf_counter()
    nirs = sum(1 for m in _NAIVE_NIR.finditer(text) if stdnum_nir.is_valid(m.group()))
    middle = time.perf_counter()
    low = text.lower()
    found = sum(1 for term in terms if term in low)
    return nirs, found, middle - started, time.perf_counter() - middle


def vigie_scan(text: str, setup: Setup) -> tuple[int, int, float, float]:
    """As ``assess`` does: one fold for both detectors (counted with the NIR scan)."""
    started = time.perf_counter()
    folded = fold_text(text)
    nirs = len(find_nirs(text, setup.rules.nir, folded))
    middle = time.perf_counter()
    terms = len(setup.lexicon.find(text, folded))
    return nirs, terms, middle - started, time.perf_counter() - middle


def run_speed(size: int, seed: int, setup: Setup, rounds: int, *, ordinary: bool = False
              ) -> dict[str, Any]:
    text = scan_text(seed, size, ordinary=ordinary)
    mb = len(text.encode("utf-8")) / MB
    terms = sorted({e.term.lower() for e in load_lexicon_terms()})
    best_v: tuple[int, int, float, float] | None = None
    best_n: tuple[int, int, float, float] | None = None
    for _ in range(rounds):  # interleaved, best of N: the machine is shared
        v = vigie_scan(text, setup)
        n = naive_scan(text, terms)
        if best_v is None or v[2] + v[3] < best_v[2] + best_v[3]:
            best_v = v
        if best_n is None or n[2] + n[3] < best_n[2] + best_n[3]:
            best_n = n
    assert best_v is not None and best_n is not None
    v_total, n_total = best_v[2] + best_v[3], best_n[2] + best_n[3]
    return {
        "mb": mb, "rounds": rounds, "characters": len(text),
        "vigie": {"nir_s": best_v[2], "lexicon_s": best_v[3], "total_s": v_total,
                  "mbps": mb / v_total, "nir_mbps": mb / best_v[2],
                  "lexicon_mbps": mb / best_v[3], "nirs": best_v[0], "terms": best_v[1]},
        "naive": {"nir_s": best_n[2], "lexicon_s": best_n[3], "total_s": n_total,
                  "mbps": mb / n_total, "nir_mbps": mb / best_n[2],
                  "lexicon_mbps": mb / best_n[3], "nirs": best_n[0], "terms": best_n[1],
                  "lexicon_terms": len(terms)},
        "ratio": n_total / v_total,
    }


# --------------------------------------------------------------------------- (5) 5 MB PDF


def _pdf_mail(name: str, data: bytes) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "cabinet@kine-exemple.fr"
    msg["To"] = "patient@gmail.com"
    msg["Subject"] = "Documents"
    msg.set_content("Bonjour,\nveuillez trouver le document ci-joint.\n")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def run_pdf(seed: int, setup: Setup, rounds: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(seed)
    first, last = random_nir(rng), random_nir(rng)
    first_line = f"Numéro de sécurité sociale : {' '.join([first[0], first[1:3], first[3:5]])}" \
                 f" {first[5:7]} {first[7:10]} {first[10:13]} {first[13:]}"
    last_line = f"NIR du patient : {last}"
    variants: list[tuple[str, bytes, int]] = []
    scan = scan_like_pdf([first_line, "Bilan de fin de traitement", last_line], 5 * MB, seed)
    variants.append(("scan-like (1 text page + 5 MB image)", scan, 1))
    heavy, pages = text_heavy_pdf(5 * MB, seed, first_line=first_line, last_line=last_line)
    variants.append((f"text-heavy (FlateDecode, {pages} pages)", heavy, pages))
    out: list[dict[str, Any]] = []
    for label, data, pages in variants:
        raw = _pdf_mail("document.pdf", data).as_bytes(policy=policy.SMTP)
        times: list[float] = []
        assessment: Assessment | None = None
        extraction: Extraction | None = None
        for _ in range(rounds):
            started = time.perf_counter()
            parsed = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(parsed, EmailMessage)
            extraction = extract_message(parsed)
            assessment = assess(extraction.chunks, setup.rules, setup.lexicon)
            times.append(time.perf_counter() - started)
        assert assessment is not None and extraction is not None
        values = {f.nir.value for f in assessment.nirs}
        out.append({
            "pdf": label, "bytes": len(data), "pages": pages, "mail_bytes": len(raw),
            "seconds_best": min(times), "seconds_median": sorted(times)[len(times) // 2],
            "nir_first_page_found": first in values, "nir_last_page_found": last in values,
            "notes": [f"{n.kind}: {n.detail}" for n in extraction.notes],
            "text_chars": sum(len(c.text) for c in extraction.chunks),
        })
    return out


# --------------------------------------------------------------------------- (6) engine


async def _screen_all(corpus: Sequence[LabelledMail], cfg: Config
                      ) -> list[tuple[LabelledMail, str, list[str]]]:
    engine = Engine(cfg)
    out: list[tuple[LabelledMail, str, list[str]]] = []
    for mail in corpus:
        message = Message(mail.raw, Envelope(mail.sender, [mail.recipient],
                                             direction=Direction.OUTBOUND,
                                             mail_options=["BODY=8BITMIME"], queue_id="B"))
        decision = await engine.screen(message)
        out.append((mail, decision.action, decision.symbols))
    return out


def run_engine(corpus: Sequence[LabelledMail], setup: Setup) -> dict[str, Any]:
    started = time.perf_counter()
    results = asyncio.run(_screen_all(corpus, setup.cfg))
    seconds = time.perf_counter() - started
    actions: dict[str, Counter[str]] = {"positive": Counter(), "negative": Counter()}
    wrong: list[dict[str, Any]] = []
    for mail, action, symbols in results:
        actions["positive" if mail.positive else "negative"][action] += 1
        bad = (action != "reject") if mail.positive else (action != "deliver")
        if bad:
            wrong.append({"mail": mail.ident, "positive": mail.positive, "action": action,
                          "symbols": symbols,
                          "labels": [f"NIR {lab.form}/{lab.container}" for lab in mail.nirs]
                          + [f"«{lab.written}» {lab.inflection}/{lab.container}"
                             for lab in mail.terms]})
    pos = sum(actions["positive"].values())
    neg = sum(actions["negative"].values())
    return {
        "seconds": seconds, "mails": len(results),
        "positives_rejected": actions["positive"]["reject"] / pos if pos else None,
        "negatives_delivered": actions["negative"]["deliver"] / neg if neg else None,
        "actions": {k: dict(v) for k, v in actions.items()}, "wrong": wrong,
    }


# --------------------------------------------------------------------------- report


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                 enumerate(zip(row, widths, strict=True))]
        lines.append(indent + "  ".join(cells).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def miss_cause(m: Miss) -> str:
    """A short guess at why a labelled item was missed, from the miss record."""
    if m.kind == "diagnosis":
        if not m.extracted:
            return "diagnosis: not in the extracted text"
        return "diagnosis: missed even alone" if not m.alone else "diagnosis: missed in context"
    if not m.extracted:
        return "NIR: not in the extracted text"
    if not m.alone:
        return f"NIR {m.form}: missed even alone"
    negative = re.search(r"negative '([^']+)'", m.note)
    nxt = re.search(r"next characters '(.*)'$", m.note)
    if m.form == "keyless-13" and nxt and re.match(r"(?:[ \t.\-]{1,3}|[ \t]*⏎)\d", nxt.group(1)
                                                  .replace("\\t", "\t")):
        return "NIR keyless-13: a digit follows (next cell or line)"
    if negative:
        return f"NIR without context word: «{negative.group(1)}» in the window"
    return f"NIR {m.form}: other"


def print_report(res: dict[str, Any], corpus_report: CorpusReport, limit: int) -> None:
    p = print
    cr = corpus_report
    p(f"vigie patient-data bench — seed {res['seed']}, {res['mode']} run, "
      f"python {platform.python_version()}, {res['machine']}, load average at start "
      f"{res['load']}")
    p("")
    p(f"(1) Labelled corpus through extraction + assessment: {cr.mails} mails "
      f"({cr.positives} positive, {cr.negatives} negative), {cr.seconds:.1f} s, "
      f"per mail p50 {cr.mail_ms_p50:.1f} ms, max {cr.mail_ms_max:.0f} ms")
    rows = [["finding", "labels", "found", "recall", "false", "precision", "target"]]
    for name, c, target in (("NIR", cr.nir, TARGET_NIR_RECALL),
                            ("diagnosis", cr.diag, TARGET_DIAG_RECALL)):
        rows.append([name, str(c.tp + c.fn), str(c.tp), pct(c.recall), str(c.fp),
                     pct(c.precision), f"recall ≥ {target:.0%}"])
    p(_table(rows))
    p(f"  NIR found only outside their labelled container: {cr.nir_wrong_place}; "
      f"diagnoses reported under another lexicon entry: {len(cr.diag_other_entry)}")
    p(f"  levels: positives {dict(cr.levels.get('positive', {}))}, "
      f"negatives {dict(cr.levels.get('negative', {}))}; extraction notes {dict(cr.notes)}")
    p("")
    p("  per container (NIR recall target ≥ 99 % in every container)")
    rows = [["container", "NIR", "recall", "false", "precision", "diag", "recall", "false",
             "precision"]]
    keys = [c for c in CONTAINERS] + sorted(
        k for k in {*cr.nir_by_container, *cr.diag_by_container} if k not in CONTAINERS)
    for key in keys:
        n = cr.nir_by_container.get(key, Counts())
        d = cr.diag_by_container.get(key, Counts())
        rows.append([key, str(n.tp + n.fn), pct(n.recall), str(n.fp), pct(n.precision),
                     str(d.tp + d.fn), pct(d.recall), str(d.fp), pct(d.precision)])
    p(_table(rows))
    p("")
    p("  NIR per written form (target ≥ 99 % in every form)")
    rows = [["form", "labels", "found", "recall"]]
    for key in [*NIR_FORMS, "(Corsica 2A/2B)", *sorted(cr.nir_by_context)]:
        c = cr.nir_by_form.get(key) or cr.nir_by_context.get(key) or Counts()
        rows.append([key, str(c.tp + c.fn), str(c.tp), pct(c.recall)])
    p(_table(rows))
    p("")
    p("  diagnosis per inflection (target ≥ 95 %)")
    rows = [["inflection", "labels", "found", "recall"]]
    for key in TERM_INFLECTIONS:
        c = cr.diag_by_inflection.get(key, Counts())
        rows.append([key, str(c.tp + c.fn), str(c.tp), pct(c.recall)])
    p(_table(rows))
    p("")
    nir_neg = cr.negative_nir_findings
    p(f"  negative mails: {nir_neg} NIR findings (target 0) — {_ok(nir_neg == 0)}; "
      f"{cr.negative_diag_findings} diagnosis findings; {cr.negative_marker_findings} "
      f"health-document marker findings")
    misses = cr.misses
    p("")
    p("  misses by cause: " + (", ".join(f"{cause} {n}" for cause, n in Counter(
        miss_cause(m) for m in misses).most_common()) or "none"))
    p(f"  MISSED positives ({len(misses)}; '{{alone}}' = found when its sentence is scanned "
      "alone; ⍽ NBSP, ⌴ narrow NBSP, ⏎ line break):")
    for m in misses[:limit]:
        p(f"   - [{m.kind} {m.form} in {m.container}] {m.mail} {m.source}")
        p(f"       written : {m.written!s}")
        p(f"       sentence: {m.snippet}")
        p(f"       extracted: {m.extracted or '—'}   alone: {'yes' if m.alone else 'no'}; "
          f"{m.note}")
    if len(misses) > limit:
        p(f"   … {len(misses) - limit} more in --json")
    false = cr.false
    p("")
    p(f"  FIRED where nothing was labelled ({len(false)}):")
    for f in false[:limit]:
        p(f"   - [{f.kind} «{f.value}» {f.confidence} in {f.container}] {f.mail} "
          f"({'positive' if f.positive else 'NEGATIVE'} mail) {f.source}")
        p(f"       extracted: {f.extracted}")
    if len(false) > limit:
        p(f"   … {len(false) - limit} more in --json")
    if cr.diag_other_entry:
        p("")
        p("  reported under another entry (counted as found): " + "; ".join(
            f"«{w}» expected «{t}», got «{g}»" for t, w, g in cr.diag_other_entry[:limit]))



def print_lookalikes(look: LookalikeReport, limit: int) -> None:
    p = print
    p("")
    p(f"(2) NIR detector on {look.items:,} look-alike numbers, each in a sentence "
      f"({look.seconds:.1f} s)")
    p(f"  raw findings {look.raw_findings}; valid-by-chance (the whole number IS a valid NIR) "
      f"{look.valid_by_chance_found} of {look.valid_by_chance_items} such numbers; "
      f"false findings excluding them: {look.false_findings} (target 0) — "
      f"{_ok(look.false_findings == 0)}")
    rows = [["category", "items", "NIR by chance", "raw", "valid-by-chance", "false"]]
    cols = ("items", "nir_by_chance", "raw", "valid_by_chance", "false")
    for key, c in sorted(look.by_category.items(), key=lambda kv: -kv[1].get("items", 0)):
        rows.append([key, *(str(c.get(col, 0)) for col in cols)])
    for key, c in sorted(look.by_labelling.items()):
        rows.append([f"(all, {key})", *(str(c.get(col, 0)) for col in cols)])
    p(_table(rows))
    for ex in look.examples[:limit]:
        p(f"   - false [{ex['category']}] {ex['value']} ({ex['confidence']}): {ex['sentence']}")



def print_lexicon(lex: LexiconReport, limit: int) -> None:
    p = print
    p("")
    p(f"(3) Lexicon: {lex.cases} diagnosis cases (every entry, several forms, every "
      "inflection that applies), each in a sentence")
    p(f"  recall {pct(lex.detected / lex.cases if lex.cases else None)} "
      f"(target ≥ 95 %) — {_ok(lex.detected >= TARGET_DIAG_RECALL * lex.cases)}; "
      f"as the expected entry {pct(lex.exact / lex.cases if lex.cases else None)}")
    rows = [["inflection", "cases", "recall"]]
    for key in TERM_INFLECTIONS:
        c = lex.by_inflection.get(key, Counts())
        rows.append([key, str(c.tp + c.fn), pct(c.recall)])
    p(_table(rows))
    worst = sorted(((k, c) for k, c in lex.by_category.items() if c.recall is not None),
                   key=lambda kv: kv[1].recall or 0.0)[:5]
    p("  lowest categories: " + ", ".join(f"{k} {pct(c.recall)}" for k, c in worst))
    p(f"  missed ({len(lex.misses)}):")
    for m in lex.misses[:limit]:
        p(f"   - [{m['inflection']}] «{m['written']}» (entry «{m['term']}»): {m['sentence']}")
    if len(lex.misses) > limit:
        p(f"   … {len(lex.misses) - limit} more in --json")
    sent_fp = lex.sentences_fp / lex.sentences if lex.sentences else None
    doc_fp = lex.documents_fp / lex.documents if lex.documents else None
    p(f"  non-medical French: {lex.documents} documents, {lex.sentences} sentences of ordinary "
      "practice and everyday text")
    p(f"    diagnosis false positives: per sentence {pct(sent_fp, 2)}, per document "
      f"{pct(doc_fp, 2)} (target ≤ 2 %) — {_ok((doc_fp or 0) <= TARGET_DIAG_FP)}; sentences "
      f"with a strong health-document marker: {lex.marker_sentences}")
    for f in lex.fp_sentences[:limit]:
        p(f"    - fired ({f['terms']}): {f['sentence']}")
    for name, what in (("trap", "traps (a lexicon word or a code-like token in another sense, "
                                "meant to pass)"),
                       ("idiom", "idioms (a health word used figuratively)")):
        fired = [f for f in lex.special_fired if f["pool"] == name]
        p(f"    {what}: {len(fired)} of {lex.special_total.get(name, 0)} fire")
        for f in fired:
            found = "; ".join(x for x in (f["diagnoses"] and f"diagnosis «{f['diagnoses']}»",
                                          f["markers"] and f"marker «{f['markers']}»") if x)
            p(f"     - {found}: {f['sentence']}")



def print_rest(res: dict[str, Any], limit: int) -> None:
    p = print
    p("")
    for label, sp in (("mixed practice text (about one paragraph in ten with a NIR or a "
                       "diagnosis, look-alike numbers everywhere)", res["speed"]),
                      ("ordinary outgoing mail text (invoices, reminders, newsletters; "
                       "look-alike numbers, no health data)", res["speed_ordinary"])):
        p(f"(4) Scan speed, one thread, {sp['mb']:.1f} MB of {label}, best of "
          f"{sp['rounds']}")
        rows = [["scanner", "NIR MB/s", "lexicon MB/s", "both MB/s", "both s", "NIRs", "terms"]]
        for name in ("vigie", "naive"):
            s = sp[name]
            rows.append([name, f"{s['nir_mbps']:.1f}", f"{s['lexicon_mbps']:.1f}",
                         f"{s['mbps']:.1f}", f"{s['total_s']:.2f}", str(s["nirs"]),
                         str(s["terms"])])
        p(_table(rows))
        p(f"  vigie {sp['vigie']['mbps']:.1f} MB/s (target ≥ {TARGET_MBPS:.0f}) — "
          f"{_ok(sp['vigie']['mbps'] >= TARGET_MBPS)}; speed ratio vigie/naive "
          f"{sp['ratio']:.2f}× (naive = digit regex + stdnum, then `term in text.lower()` for "
          f"{sp['naive']['lexicon_terms']} canonical terms; it finds far less)")

    p("")
    p("(5) 5 MB PDF attachment, extraction + assessment (parse included)")
    for r in res["pdf"]:
        p(f"  {r['pdf']}: {r['bytes'] / MB:.1f} MB, best {r['seconds_best']:.2f} s, "
          f"median {r['seconds_median']:.2f} s (target < {TARGET_PDF_S:.0f} s) — "
          f"{_ok(r['seconds_best'] < TARGET_PDF_S)}; NIR on first page "
          f"{'found' if r['nir_first_page_found'] else 'NOT found'}, on last page "
          f"{'found' if r['nir_last_page_found'] else 'NOT found'}; "
          f"{r['text_chars']:,} characters read; notes: {'; '.join(r['notes']) or 'none'}")

    e = res["engine"]
    p("")
    p(f"(6) Engine decisions, every corpus mail to a gmail.com recipient "
      f"({e['mails']} mails, {e['seconds']:.1f} s)")
    p(f"  positives rejected {pct(e['positives_rejected'])} (target 100 %); negatives "
      f"delivered {pct(e['negatives_delivered'])} (target 100 %); actions {e['actions']}")
    for w in e["wrong"][:limit]:
        p(f"   - {w['mail']} ({'positive' if w['positive'] else 'negative'}) → {w['action']} "
          f"{w['symbols']} labels: {w['labels']}")
    if len(e["wrong"]) > limit:
        p(f"   … {len(e['wrong']) - limit} more in --json")
    p("")
    p(f"total {res['seconds']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="smaller run, under 30 s")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write every figure and case as JSON to FILE (stdout if no FILE)")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--positives", type=int, help="positive mails (default 500, quick 120)")
    parser.add_argument("--negatives", type=int, help="negative mails (default 350, quick 80)")
    parser.add_argument("--lookalikes", type=int, default=100_000)
    parser.add_argument("--text-mb", type=float, help="speed-test text size (default 20, quick 4)")
    parser.add_argument("--limit", type=int, default=60,
                        help="cases listed per section in the text report (all in --json)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    positives = args.positives if args.positives is not None else (120 if quick else 500)
    negatives = args.negatives if args.negatives is not None else (80 if quick else 350)
    text_mb = args.text_mb if args.text_mb is not None else (4.0 if quick else 20.0)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vigie-bench-pd-") as tmp:
        setup = load_setup(tmp)
        corpus = build_corpus(args.seed, positives, negatives)
        corpus_report = run_corpus(corpus, setup)
        look = run_lookalikes(args.lookalikes, args.seed + 7, setup)
        lex = run_lexicon(args.seed + 11, setup, forms_per_entry=2 if quick else 5,
                          documents=300 if quick else 2000)
        speed = run_speed(int(text_mb * MB), args.seed + 13, setup, rounds=1 if quick else 2)
        speed_ordinary = run_speed(int(text_mb * MB), args.seed + 13, setup,
                                   rounds=1 if quick else 2, ordinary=True)
        pdf = run_pdf(args.seed + 17, setup, rounds=1 if quick else 3)
        engine = run_engine(corpus, setup)
    res: dict[str, Any] = {
        "seed": args.seed, "mode": "quick" if quick else "default",
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
        "load": load,
        "corpus": {
            "mails": corpus_report.mails, "positives": corpus_report.positives,
            "negatives": corpus_report.negatives, "seconds": corpus_report.seconds,
            "nir": corpus_report.nir.as_dict(), "diagnosis": corpus_report.diag.as_dict(),
            "nir_by_container": {k: v.as_dict() for k, v in
                                 corpus_report.nir_by_container.items()},
            "diagnosis_by_container": {k: v.as_dict() for k, v in
                                       corpus_report.diag_by_container.items()},
            "nir_by_form": {k: v.as_dict() for k, v in corpus_report.nir_by_form.items()},
            "nir_by_context": {k: v.as_dict() for k, v in
                               corpus_report.nir_by_context.items()},
            "diagnosis_by_inflection": {k: v.as_dict() for k, v in
                                        corpus_report.diag_by_inflection.items()},
            "negative_nir_findings": corpus_report.negative_nir_findings,
            "negative_diagnosis_findings": corpus_report.negative_diag_findings,
            "negative_marker_findings": corpus_report.negative_marker_findings,
            "levels": {k: dict(v) for k, v in corpus_report.levels.items()},
            "misses": [asdict(m) for m in corpus_report.misses],
            "false_findings": [asdict(f) for f in corpus_report.false],
            "other_entry": corpus_report.diag_other_entry,
        },
        "lookalikes": asdict(look),
        "lexicon": {**asdict(lex),
                    "by_inflection": {k: v.as_dict() for k, v in lex.by_inflection.items()},
                    "by_category": {k: v.as_dict() for k, v in lex.by_category.items()}},
        "speed": speed, "speed_ordinary": speed_ordinary, "pdf": pdf, "engine": engine,
        "targets": {"nir_recall": TARGET_NIR_RECALL, "diagnosis_recall": TARGET_DIAG_RECALL,
                    "diagnosis_fp": TARGET_DIAG_FP, "mbps": TARGET_MBPS,
                    "pdf_seconds": TARGET_PDF_S, "lookalike_false_findings": 0},
    }
    res["seconds"] = time.perf_counter() - started
    if args.json == "-":
        json.dump(res, sys.stdout, ensure_ascii=False, indent=1, default=str)
        print()
        return 0
    print_report(res, corpus_report, args.limit)
    print_lookalikes(look, args.limit)
    print_lexicon(lex, args.limit)
    print_rest(res, args.limit)
    if args.json:
        Path(args.json).write_text(json.dumps(res, ensure_ascii=False, indent=1, default=str),
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
