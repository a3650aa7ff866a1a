"""The inbound checks' glue over an in-memory resolver and directory: which symbols,
which decision, the shared verdict, trusted Authentication-Results, the banner."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from gateway.checks.hygiene import HygieneCheck
from gateway.checks.impersonation import ImpersonationCheck, webmail_domains
from gateway.checks.sender_auth import SenderAuthCheck
from gateway.config import Config
from gateway.detect.impersonation import DirectoryEntry
from gateway.directory import load_skeleton
from gateway.engine import Engine, warning_text
from gateway.model import Direction, Envelope, Message
from gateway.policy import rules_dir
from gateway.testing import (
    TIMEOUT,
    FakeRecord,
    FakeResolver,
    MemoryDirectory,
    config_for_tests,
    make_message,
)
from gateway.verdict import Finding, Outcome, Reason

ZONE: dict[str, list[FakeRecord]] = {
    "medecin-martin.fr": [("TXT", "v=spf1 ip4:192.0.2.25 -all")],
    "_dmarc.medecin-martin.fr": [("TXT", "v=DMARC1; p=reject")],
    "medecin.mssante.fr": [("TXT", "v=spf1 ip4:198.51.100.0/24 -all")],
    "_dmarc.mssante.fr": [("TXT", "v=DMARC1; p=reject")],
    "slow.example": [TIMEOUT],
    "_dmarc.slow.example": [TIMEOUT],
}


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    cfg = config_for_tests(tmp_path / "data")
    cfg.inbound.domains = ["kine-dupont.fr"]
    return cfg


def engine(cfg: Config, resolver: FakeResolver) -> Engine:
    entries = [DirectoryEntry(source="contacts", display_name="Paul Martin",
                              address="paul@medecin-martin.fr", domain="medecin-martin.fr",
                              kind="", profession_code="", profession_label="")]
    webmail = webmail_domains(cfg)
    directory = MemoryDirectory(entries, load_skeleton(rules_dir(cfg)), webmail=webmail)
    return Engine(cfg, checks=[
        HygieneCheck(max_header_size=cfg.limits.header_size),
        SenderAuthCheck(cfg, resolver),
        ImpersonationCheck(cfg, resolver, directory, webmail)])


def message(raw: bytes, mail_from: str, ip: str | None = "192.0.2.25", *, hops: int = 0,
            direction: Direction = Direction.INBOUND) -> Message:
    return Message(raw, Envelope(mail_from, ["camille@kine-dupont.fr"], direction,
                                 client_ip=ip, helo="mx.example", queue_id="Q1",
                                 relay_hops=hops))


async def test_an_authenticated_confrere_is_delivered(cfg: Config) -> None:
    resolver = FakeResolver(ZONE)
    msg = message(make_message(sender="Paul Martin <paul@medecin-martin.fr>"),
                  "paul@medecin-martin.fr")
    decision = await engine(cfg, resolver).screen(msg)
    assert decision.action == "deliver"
    assert {"SPF_PASS", "DMARC_PASS"} <= {f.symbol for f in decision.findings}
    value = msg.notes["authentication_results"]
    assert value.startswith(f"{cfg.hostname}; ") and "dmarc=pass" in value
    # SPF, DKIM and DMARC were asked once for both checks (one shared verdict)
    assert resolver.queries.count(("TXT", "_dmarc.medecin-martin.fr")) == 1


async def test_spoofed_mssante_is_held_with_both_reasons(cfg: Config) -> None:
    msg = message(make_message(sender="Dr Paul Martin <paul.martin@medecin.mssante.fr>"),
                  "paul.martin@medecin.mssante.fr", ip="203.0.113.9")
    decision = await engine(cfg, FakeResolver(ZONE)).screen(msg)
    assert decision.action == "hold"
    symbols = {f.symbol for f in decision.findings}
    assert {"SPF_FAIL", "DMARC_FAIL_REJECT", "IMP_MSSANTE_UNAUTHENTICATED"} <= symbols


async def test_dns_timeout_is_a_tempfail_or_a_tag_never_a_pass(cfg: Config) -> None:
    raw = make_message(sender="x <a@slow.example>")
    decision = await engine(cfg, FakeResolver(ZONE)).screen(message(raw, "a@slow.example"))
    assert decision.action == "tempfail"
    assert "AUTH_TEMPERROR" in decision.symbols
    cfg.inbound.dns_error = "tag"
    decision = await engine(cfg, FakeResolver(ZONE)).screen(message(raw, "a@slow.example"))
    assert decision.action == "tag" and "AUTH_DNS_UNCHECKED" in decision.symbols


async def test_outbound_mail_is_not_looked_at(cfg: Config) -> None:
    resolver = FakeResolver(ZONE)
    eng = engine(cfg, resolver)
    msg = message(make_message(sender="camille@kine-dupont.fr"), "camille@kine-dupont.fr",
                  direction=Direction.OUTBOUND)
    decision = await eng.screen(msg)
    assert decision.action == "deliver" and resolver.queries == []
    assert [c.name for c in eng.pipeline.by_direction[Direction.OUTBOUND]] == ["hygiene"]


async def test_trusted_authentication_results_are_believed_only_from_a_trusted_hop(
        cfg: Config) -> None:
    cfg.inbound.trusted_authserv_ids = ["mx.provider.test"]
    raw = (b"Authentication-Results: mx.provider.test; spf=fail; dmarc=fail (p=reject) "
           b"header.from=medecin-martin.fr\r\n"
           + make_message(sender="Paul Martin <paul@medecin-martin.fr>"))
    held = await engine(cfg, FakeResolver(ZONE)).screen(
        message(raw, "paul@medecin-martin.fr", hops=1))
    assert held.action == "hold" and "DMARC_FAIL_REJECT" in held.symbols
    assert "AUTH_TRUSTED_RESULTS" in {f.symbol for f in held.findings}
    # a pass in the relay's name but below the relay's own Received field was in the
    # message before the relay saw it: anyone can write that one
    forged = (b"Received: from mail.x ([203.0.113.66]) by mx.provider.test (Postfix);\r\n"
              b"\tMon, 30 Nov 2026 09:00:00 +0100\r\n"
              b"Authentication-Results: mx.provider.test; spf=pass; dmarc=pass "
              b"header.from=medecin.mssante.fr\r\n"
              + make_message(sender="Dr Paul Martin <paul.martin@medecin.mssante.fr>"))
    spoof = await engine(cfg, FakeResolver(ZONE)).screen(
        message(forged, "paul.martin@medecin.mssante.fr", ip="203.0.113.66", hops=1))
    assert spoof.action == "hold" and "AUTH_TRUSTED_RESULTS" not in {
        f.symbol for f in spoof.findings}
    # the same header on a direct connection is the sender's own claim: ignored
    direct = await engine(cfg, FakeResolver(ZONE)).screen(
        message(raw, "paul@medecin-martin.fr", hops=0))
    assert direct.action == "deliver"


async def test_a_tagged_inbound_mail_gets_the_prefix_the_banner_and_the_header(
        cfg: Config) -> None:
    eng = engine(cfg, FakeResolver(ZONE))
    raw = make_message(sender="Paul Martin <paul.martin.kine@cabinet-ailleurs.example>",
                       subject="Facture", body="Bonjour,\r\nla facture.\r\n",
                       extra={"Reply-To": "compta@autre.example"})
    msg = message(raw, "paul.martin.kine@cabinet-ailleurs.example")
    decision = await eng.screen(msg)
    assert decision.action == "tag", decision.symbols
    out = message_from_bytes(eng.prepare(msg, decision), policy=default)
    assert str(out["Subject"]) == "[SUSPECT] Facture"
    body = out.get_content()
    assert body.startswith("⚠ Avertissement de vigie") and body.rstrip().endswith("la facture.")


def test_warning_text_is_short_plain_french() -> None:
    f = Finding("impersonation", "IMP_X", Outcome.HIT,
                (Reason("le domaine imite mssante.fr", "look-alike"),))
    text = warning_text([f, f])
    assert text.count("Le domaine imite mssante.fr.") == 1
    assert "DMARC" not in text and "SPF" not in text


async def test_the_practices_own_domain_from_outside_unauthenticated_is_tagged(
        cfg: Config) -> None:
    zone: dict[str, list[FakeRecord]] = {
        **ZONE, "kine-dupont.fr": [("TXT", "v=spf1 ip4:192.0.2.80 -all")]}
    raw = make_message(sender="Camille <camille@kine-dupont.fr>", subject="Virement")
    decision = await engine(cfg, FakeResolver(zone)).screen(
        message(raw, "info@klne-dupont.fr", ip="203.0.113.9"))
    assert decision.action in ("tag", "hold")
    assert "IMP_OWN_DOMAIN_UNAUTH" in decision.symbols
    # from the practice's own server it is just mail
    ok = await engine(cfg, FakeResolver(zone)).screen(
        message(raw, "camille@kine-dupont.fr", ip="192.0.2.80"))
    assert "IMP_OWN_DOMAIN_UNAUTH" not in ok.symbols


@pytest.mark.parametrize("display", ["Pаul Mаrtin", "Dr Paul Martіn", "DR MARTIN Paul"])
async def test_a_known_name_written_with_look_alike_letters_is_still_recognised(
        cfg: Config, display: str) -> None:
    raw = make_message(sender=f"{display} <paul.martin.cabinet@gmail.com>")
    decision = await engine(cfg, FakeResolver(ZONE)).screen(
        message(raw, "paul.martin.cabinet@gmail.com"))
    assert "IMP_NAME_KNOWN_WEBMAIL" in decision.symbols, decision.symbols
