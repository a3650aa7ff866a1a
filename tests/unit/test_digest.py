"""The daily digest: content of a realistic day, no outbound content ever, links, and
the scheduler's time computation across daylight-saving changes."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import Config
from gateway.engine import Engine
from gateway.model import Direction, Envelope, Message
from gateway.quarantine import digest
from gateway.quarantine.service import Quarantine
from gateway.quarantine.tokens import TokenUsed
from gateway.smtp.handler import hold_meta
from gateway.testing import config_for_tests, make_message

NIR = "1 85 05 78 006 084 91"
PARIS = ZoneInfo("Europe/Paris")
DAY_START = datetime(2026, 11, 28, 9, 0, tzinfo=PARIS).timestamp()

# (direction, sender, recipient, subject, body) — a Tuesday at the practice
DAY = [
    ("outbound", "camille@cabinet-kine.fr", "martin.dupont@gmail.com",
     "Bilan lombalgie Mme Dupont",
     f"Bonjour,\r\nCompte rendu : lombalgie chronique, hernie discale L5-S1.\r\nNIR {NIR}\r\n"),
    ("outbound", "camille@cabinet-kine.fr", "jeanne.petit@orange.fr",
     "Ordonnance de Jeanne Petit",
     "Voici votre bilan : tendinite de la coiffe des rotateurs, 12 séances.\r\n"),
    ("outbound", "secretariat@cabinet-kine.fr", "paul.leroy@yahoo.fr", "Compte rendu séance",
     "Compte rendu kiné : entorse de la cheville, rééducation proprioceptive.\r\n"),
    ("inbound", "promo@deals.example", "camille@cabinet-kine.fr", "Gagnez un iPhone",
     "Cliquez vite\r\n"),
    ("inbound", "dr.martin@mssante-fr.com", "camille@cabinet-kine.fr",
     "Courrier du Dr Martin", "Voir la pièce jointe\r\n"),
]
SECRETS = ("lombalgie", "hernie", "tendinite", "entorse", "Dupont", "dupont", "Jeanne",
           "jeanne", "Petit", "leroy", "Leroy", "Ordonnance", "Bilan", "Compte rendu",
           "006 084", "1850578006084", "Compte")


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    cfg = config_for_tests(tmp_path / "data")
    cfg.digest.recipients = ["camille@cabinet-kine.fr"]
    cfg.digest.public_url = "https://vigie.cabinet-kine.fr/"
    return cfg


@pytest.fixture
async def day(cfg: Config) -> AsyncIterator[Quarantine]:
    """The day's messages screened by the real engine and held by the real hold path."""
    q = Quarantine.open(cfg)
    engine = Engine(cfg)
    for i, (direction, sender, rcpt, subject, body) in enumerate(DAY):
        raw = make_message(sender=sender, to=rcpt, subject=subject, body=body,
                           message_id=direction == "outbound")
        env = Envelope(sender, [rcpt], Direction(direction), queue_id=f"DAY{i:07d}")
        message = Message(raw, env)
        decision = await engine.screen(message)
        symbols = decision.symbols
        if i == 4:  # what the inbound impersonation checks (issue 4) will report
            symbols = ["LOOKALIKE_MSSANTE", *symbols]
        meta = hold_meta(message, symbols, decision.findings)
        await q.store.hold(raw, dataclasses.replace(meta, received_at=DAY_START + i * 3600))
    yield q
    q.close()


async def test_realistic_day(day: Quarantine, cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    assert d.count == 5
    assert d.subject == "vigie : 5 messages retenus"
    for part in (d.text, d.html, d.subject):
        for secret in SECRETS:
            assert secret not in part, secret
    # inbound lines show their subject; outbound lines name recipient domains only
    assert "Gagnez un iPhone" in d.text and "Courrier du Dr Martin" in d.text
    assert "gmail.com" in d.text and "orange.fr" in d.text and "yahoo.fr" in d.text
    # grouped by reason, patient data first, with plain-words reasons and dates
    text = d.text
    pd = text.index("Données de patient vers une messagerie non sécurisée (3)")
    fake = text.index("Faux confrère suspecté (1)")
    spam = text.index("Ressemble à du spam (1)")
    assert pd < fake < spam
    assert "données de patient vers une messagerie gratuite" in text
    assert "termes médicaux dans le message" in text
    assert "28/11/2026 09:00" in text and "28/11/2026 13:00" in text
    assert "DMARC" not in text
    # one-click links to <public_url>/a/<token>, each bound to its message and action:
    # three for inbound mail («always allow» is offered only where it would lift the
    # hold: not for a look-alike domain nor for spam-like mail), release and delete only
    # for the practice's own mail
    links = re.findall(r"https://vigie\.cabinet-kine\.fr/a/([A-Za-z0-9_-]{43})", text)
    assert len(links) == 3 * 2 + 2 * 3 and len(set(links)) == len(links)
    assert "https://vigie.cabinet-kine.fr//a/" not in text
    first_block = text[pd:fake]
    assert "Signal Spam" not in first_block and "Toujours autoriser" not in first_block
    release = re.search(r"Libérer : https://[^/]+/a/(\S+)", first_block)
    assert release is not None
    info = await day.tokens.check(release.group(1))
    assert info.action == "release" and info.message_id.startswith("DAY")
    inbound_block = text[fake:]
    assert "Toujours autoriser" not in inbound_block
    for label, action in (("Supprimer", "delete"), ("Signaler à Signal Spam", "report")):
        m = re.search(label + r" : https://[^/]+/a/(\S+)", inbound_block)
        assert m is not None
        got = await day.tokens.check(m.group(1))
        assert got.action == action and got.message_id == "DAY0000004"
    # the HTML part has the same buttons, escaped, and no external asset
    assert d.html.count('href="https://vigie.cabinet-kine.fr/a/') == 12
    assert "<script" not in d.html and "src=" not in d.html
    assert "Libérer</a>" in d.html


async def test_links_are_single_use_once_the_digest_is_out(day: Quarantine,
                                                           cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    token = re.findall(r"/a/(\S+)", d.text)[0]
    await day.tokens.consume(token, "release")
    with pytest.raises(TokenUsed):
        await day.tokens.consume(token, "release")


async def test_period_and_status(day: Quarantine, cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START + 3 * 3600 - 1, until=DAY_START + 86400)
    assert d.count == 2
    await day.store.set_status("DAY0000003", "deleted")
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    assert d.count == 4 and "Gagnez" not in d.text
    empty = await digest.build(day, cfg, since=0, until=1)
    assert empty.count == 0 and "Aucun message" in empty.text


async def test_a_long_day_is_cut_with_a_count(day: Quarantine, cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400,
                           max_lines=2)
    assert d.count == 5 and d.subject == "vigie : 5 messages retenus"
    assert "… et 3 autre(s) message(s) retenu(s)" in d.text
    assert d.text.count("Libérer : ") == 2


async def test_without_public_url_no_links_but_a_hint(day: Quarantine, cfg: Config) -> None:
    cfg.digest.public_url = ""
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    assert "/a/" not in d.text and "public_url" in d.text
    assert "vigie quarantine" in d.text


async def test_english(day: Quarantine, cfg: Config) -> None:
    cfg.digest.language = "en"
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    assert d.subject == "vigie: 5 messages held"
    assert "Patient data to an unsecured mailbox (3)" in d.text
    assert "Release: https://" in d.text


async def test_mime_message(day: Quarantine, cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400)
    raw = digest.as_message(d, cfg)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "vigie : 5 messages retenus"
    assert msg["To"] == "camille@cabinet-kine.fr"
    assert msg["From"] == "vigie <vigie@vigie.test>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "Gagnez un iPhone" in plain.get_content()
    assert "Libérer</a>" in html.get_content()
    for secret in SECRETS:
        assert secret.encode() not in raw


@pytest.mark.parametrize(("now", "at", "expected"), [
    # an ordinary day: later today, or tomorrow once past
    ("2026-11-29T06:00:00+00:00", "08:00", "2026-11-29T07:00:00+00:00"),
    ("2026-11-29T07:00:00+00:00", "08:00", "2026-11-30T07:00:00+00:00"),
    ("2026-11-29T07:30:00+00:00", "08:00", "2026-11-30T07:00:00+00:00"),
    # summer time begins (Sunday 29 March 2026, 02:00 CET -> 03:00 CEST)
    ("2026-03-28T08:00:00+00:00", "08:00", "2026-03-29T06:00:00+00:00"),
    ("2026-03-28T23:00:00+00:00", "08:00", "2026-03-29T06:00:00+00:00"),
    # 02:30 does not exist that night: it runs at 03:30 CEST (01:30 UTC)
    ("2026-03-28T12:00:00+00:00", "02:30", "2026-03-29T01:30:00+00:00"),
    # winter time (Sunday 25 October 2026, 03:00 CEST -> 02:00 CET)
    ("2026-10-24T08:00:00+00:00", "08:00", "2026-10-25T07:00:00+00:00"),
    # 02:30 happens twice: the first one (CEST, 00:30 UTC), and once only
    ("2026-10-24T12:00:00+00:00", "02:30", "2026-10-25T00:30:00+00:00"),
    ("2026-10-25T00:30:00+00:00", "02:30", "2026-10-26T01:30:00+00:00"),
    ("2026-10-25T00:45:00+00:00", "02:30", "2026-10-26T01:30:00+00:00"),
    # midnight and the last minute
    ("2026-11-29T22:59:00+00:00", "00:00", "2026-11-29T23:00:00+00:00"),
    ("2026-11-29T22:59:00+00:00", "23:59", "2026-11-30T22:59:00+00:00"),
])
def test_next_run_across_dst(now: str, at: str, expected: str) -> None:
    got = digest.next_run(datetime.fromisoformat(now), at, PARIS)
    assert got == datetime.fromisoformat(expected)
    assert got.tzinfo is UTC


def test_next_run_other_zone() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert digest.next_run(now, "08:00", ZoneInfo("America/Cayenne")) == datetime(
        2026, 11, 30, 11, 0, tzinfo=UTC)


async def test_direction_controls_are_made_visible_in_both_parts(cfg: Config) -> None:
    q = Quarantine.open(cfg)
    try:
        raw = make_message(sender="a@example.org", to="camille@cabinet-kine.fr",
                           subject="ordonnance.pdf\u202egpj.exe", body="x\r\n")
        message = Message(raw, Envelope("a\u202e@example.org", ["camille@cabinet-kine.fr"],
                                        Direction.INBOUND, queue_id="RLO0000001"))
        meta = hold_meta(message, ["SPAM_LIKE"])
        await q.store.hold(raw, dataclasses.replace(meta, received_at=DAY_START))
        d = await digest.build(q, cfg, since=DAY_START - 60, until=DAY_START + 60)
    finally:
        q.close()
    for part in (d.text, d.html):
        assert "\u202e" not in part
        assert "ordonnance.pdf«U+202E»gpj.exe" in part
        assert "a«U+202E»@example.org" in part


async def test_a_dry_run_prints_placeholder_links_and_stores_no_token(
        day: Quarantine, cfg: Config) -> None:
    d = await digest.build(day, cfg, since=DAY_START - 60, until=DAY_START + 86400,
                           dry_run=True)
    assert d.count == 5
    assert f"/a/{digest.DRY_RUN_TOKEN}" in d.text
    assert not re.findall(r"/a/([A-Za-z0-9_-]{43})\b", d.text)
    count = day.store.db.call(lambda c: c.execute("SELECT count(*) FROM tokens").fetchone())
    assert count == (0,)


async def test_messages_still_held_from_earlier_days_come_back(day: Quarantine,
                                                               cfg: Config) -> None:
    """A release that failed (or was never clicked) must not vanish from the digests."""
    since = DAY_START + 3 * 3600 - 1
    d = await digest.build(day, cfg, since=since, until=DAY_START + 86400, earlier=True)
    assert d.count == 5
    older = d.text.index("Toujours retenus depuis les jours précédents (3)")
    assert d.text.index("Ressemble à du spam (1)") < older
    assert len(re.findall(r"/a/[A-Za-z0-9_-]{43}", d.text[older:])) == 3 * 2
    await day.store.set_status("DAY0000000", "released")
    d = await digest.build(day, cfg, since=since, until=DAY_START + 86400, earlier=True)
    assert "Toujours retenus depuis les jours précédents (2)" in d.text


async def test_inbound_lines_show_the_from_header_then_the_envelope(cfg: Config) -> None:
    """A forged «Dr Paul Martin» showed as «De : bob@example.org»."""
    q = Quarantine.open(cfg)
    try:
        raw = make_message(sender='"Dr Paul Martin" <paul.martin@medecin.mssante.fr>',
                           to="camille@cabinet-kine.fr", subject="Courrier", body="x\r\n")
        message = Message(raw, Envelope("bob@example.org", ["camille@cabinet-kine.fr"],
                                        Direction.INBOUND, queue_id="FROM000001"))
        meta = hold_meta(message, ["IMP_DISPLAY_NAME"])
        await q.store.hold(raw, dataclasses.replace(meta, received_at=DAY_START + 7))
        d = await digest.build(q, cfg, since=DAY_START - 60, until=DAY_START + 60)
    finally:
        q.close()
    assert "De : Dr Paul Martin <paul.martin@medecin.mssante.fr>" in d.text
    assert "Expéditeur de l'enveloppe : bob@example.org" in d.text
    assert "28/11/2026 09:00:07" in d.text and "Taille : " in d.text


@pytest.mark.parametrize(("direction", "symbols", "offered"), [
    ("inbound", ["IMP_NAME_KNOWN_WRONG_ADDRESS"], True),
    ("inbound", ["DMARC_FAIL_REJECT", "SPF_FAIL"], True),
    ("inbound", ["IMP_LOOKALIKE_DOMAIN", "DMARC_FAIL_REJECT"], False),
    ("inbound", ["IMP_MSSANTE_UNAUTHENTICATED"], False),
    ("inbound", ["ATT_MALICIOUS", "IMP_REPLY_TO_ELSEWHERE"], False),
    ("inbound", ["HYG_NO_DATE"], False),
    ("outbound", ["ATT_MALICIOUS"], False),
])
def test_always_allow_is_offered_only_where_it_would_lift_the_hold(
        direction: str, symbols: list[str], offered: bool) -> None:
    from gateway.quarantine.store import HeldSummary

    summary = HeldSummary(id="X", received_at=0.0, direction=direction, sender="a@b.example",
                          rcpt_domains=["c.example"], subject=None, size=1, symbols=symbols,
                          reasons=[], category="impersonation", status="held")
    assert ("allow" in digest.actions_for(summary)) is offered
