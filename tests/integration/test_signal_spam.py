"""The Signal Spam client against a local HTTP server behaving like the endpoint."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import Config
from gateway.quarantine import signal_spam
from gateway.quarantine.service import Quarantine
from gateway.quarantine.signal_spam import ReportStatus, SignalSpamClient, strip_own_received
from gateway.quarantine.store import HoldMeta
from gateway.testing import config_for_tests, make_message

LOGIN, PASSWORD = "camille@cabinet-kine.fr", "mot-de-passe-Signal"
OURS = (b"Received: from mx.spammer.example ([203.0.113.9])\r\n"
        b"\tby vigie.test (vigie) with ESMTPS id 1A2B3C4D5E;\r\n"
        b"\tSun, 29 Nov 2026 08:00:00 +0100\r\n")
THEIRS = (b"Received: from [198.51.100.7] by mx.spammer.example with SMTP;\r\n"
          b" Sun, 29 Nov 2026 06:59:58 +0000\r\n")
SPAM = make_message(sender="promo@spammer.example", to="camille@cabinet-kine.fr",
                    subject="Gagnez un iPhone", body="Cliquez ici\r\n")


@dataclass
class Endpoint:
    """Answers from a script: (status, delay) per request, then 200."""

    script: list[tuple[int, float]] = field(default_factory=list)
    requests: list[tuple[str, str | None, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        self.requests.append((request.method, request.headers.get("Authorization"),
                              {k: str(v) for k, v in form.items()}))
        status, delay = self.script.pop(0) if self.script else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if status == 302:
            raise web.HTTPFound("/connexion")
        return web.Response(status=status, text="ok" if status < 300 else "erreur")


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_route("*", "/api/signaler", ep.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    ep.url = f"http://127.0.0.1:{port}/api/signaler"
    yield ep
    await runner.cleanup()


def client(ep: Endpoint, *, timeout: float = 5.0, retries: int = 3,
           creds: tuple[str, str] | None = (LOGIN, PASSWORD)) -> SignalSpamClient:
    return SignalSpamClient(ep.url, creds, timeout=timeout, retries=retries, backoff=0.01)


async def test_report_posts_the_message_in_base64_with_basic_auth(endpoint: Endpoint) -> None:
    result = await client(endpoint).report(SPAM)
    assert result.ok and result.status is ReportStatus.OK and result.attempts == 1
    assert result.fr.startswith("message signalé")
    [(method, auth, form)] = endpoint.requests
    assert method == "POST"
    assert auth == "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    assert base64.b64decode(form["message"]) == SPAM
    assert form["dossier"] == "0"


@pytest.mark.parametrize(("status", "expected"), [
    (201, ReportStatus.OK), (202, ReportStatus.OK),
    (401, ReportStatus.BAD_CREDENTIALS), (302, ReportStatus.BAD_CREDENTIALS),
    (403, ReportStatus.NOT_CONFIRMED), (400, ReportStatus.REFUSED),
    (404, ReportStatus.NOT_FOUND), (410, ReportStatus.NOT_FOUND),
])
async def test_answers_are_typed_and_not_retried(endpoint: Endpoint, status: int,
                                                 expected: ReportStatus) -> None:
    endpoint.script = [(status, 0.0)]
    result = await client(endpoint).report(SPAM)
    assert result.status is expected and result.http_status == status
    assert len(endpoint.requests) == 1
    fr, en = result.fr, result.en
    assert fr and en and fr != en


async def test_server_errors_are_retried_with_backoff(endpoint: Endpoint) -> None:
    endpoint.script = [(500, 0.0), (503, 0.0)]
    result = await client(endpoint).report(SPAM)
    assert result.ok and result.attempts == 3 and len(endpoint.requests) == 3


async def test_a_slow_answer_times_out_and_is_retried(endpoint: Endpoint) -> None:
    endpoint.script = [(200, 3.0)]
    result = await client(endpoint, timeout=0.5).report(SPAM)
    assert result.ok and result.attempts == 2


async def test_gives_up_after_the_retries(endpoint: Endpoint) -> None:
    endpoint.script = [(500, 0.0)] * 10
    result = await client(endpoint, retries=2).report(SPAM)
    assert result.status is ReportStatus.UNAVAILABLE and result.http_status == 500
    assert result.attempts == 3 and "réessayez plus tard" in result.fr


async def test_unreachable_endpoint_is_unavailable() -> None:
    c = SignalSpamClient("http://127.0.0.1:9/api/signaler", (LOGIN, PASSWORD), timeout=1,
                         retries=1, backoff=0.01)
    result = await c.report(SPAM)
    assert result.status is ReportStatus.UNAVAILABLE and result.http_status is None


async def test_check_credentials_is_a_get(endpoint: Endpoint) -> None:
    assert (await client(endpoint).check_credentials()).ok
    endpoint.script = [(401, 0.0)]
    assert (await client(endpoint).check_credentials()).status is ReportStatus.BAD_CREDENTIALS
    assert [r[0] for r in endpoint.requests] == ["GET", "GET"]
    assert all(r[1] is not None for r in endpoint.requests)


async def test_without_credentials_nothing_is_sent(endpoint: Endpoint) -> None:
    result = await client(endpoint, creds=None).report(SPAM)
    assert result.status is ReportStatus.NO_CREDENTIALS and endpoint.requests == []
    assert "signal-spam.fr" in result.fr


def test_only_our_own_received_line_is_removed() -> None:
    raw = OURS + THEIRS + SPAM
    assert strip_own_received(raw, "vigie.test") == THEIRS + SPAM
    # not ours (another host, or below the header): unchanged
    assert strip_own_received(THEIRS + SPAM, "vigie.test") == THEIRS + SPAM
    assert strip_own_received(raw, "vigie.test.example") == raw
    body_line = SPAM + b"\r\n" + OURS
    assert strip_own_received(body_line, "vigie.test") == body_line
    # only the topmost of ours
    assert strip_own_received(OURS + OURS + SPAM, "vigie.test") == OURS + SPAM


@pytest.fixture
async def quarantine(tmp_path: Path, endpoint: Endpoint) -> AsyncIterator[Quarantine]:
    cfg = config_for_tests(tmp_path / "data")
    q = Quarantine.open(cfg)
    q.cfg = cfg  # type: ignore[attr-defined]
    yield q
    q.close()


def _cfg(q: Quarantine, ep: Endpoint) -> Config:
    cfg: Config = q.cfg  # type: ignore[attr-defined]
    cfg.signal_spam.endpoint = ep.url
    cfg.signal_spam.retries = 1
    return cfg


async def test_report_a_held_message(quarantine: Quarantine, endpoint: Endpoint,
                                     tmp_path: Path) -> None:
    cfg = _cfg(quarantine, endpoint)
    await signal_spam.save_credentials(quarantine, LOGIN, PASSWORD, "camille")
    assert await signal_spam.load_credentials(quarantine) == (LOGIN, PASSWORD)
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes()
    mid = await quarantine.store.hold(OURS + THEIRS + SPAM, HoldMeta(
        "inbound", "promo@spammer.example", ["camille@cabinet-kine.fr"], category="spam"))
    result = await signal_spam.report_held(quarantine, cfg, mid, "camille")
    assert result.ok and result.status == "deleted"
    [(_, _, form)] = endpoint.requests
    assert base64.b64decode(form["message"]) == THEIRS + SPAM
    entries, _ = await quarantine.audit.list()
    assert entries[0].action == "report" and entries[0].details["result"] == "ok"
    assert entries[1].action == "signal_spam_login"
    assert PASSWORD not in repr(entries)


async def test_a_refused_report_keeps_the_message(quarantine: Quarantine,
                                                  endpoint: Endpoint) -> None:
    cfg = _cfg(quarantine, endpoint)
    await signal_spam.save_credentials(quarantine, LOGIN, "wrong")
    endpoint.script = [(401, 0.0)]
    mid = await quarantine.store.hold(SPAM, HoldMeta("inbound", "promo@spammer.example",
                                                     ["camille@cabinet-kine.fr"]))
    result = await signal_spam.report_held(quarantine, cfg, mid, "camille")
    assert not result.ok and result.status == "held" and "mot de passe" in result.fr
    assert await quarantine.store.raw(mid) == SPAM


async def test_outbound_mail_is_never_reported(quarantine: Quarantine,
                                               endpoint: Endpoint) -> None:
    cfg = _cfg(quarantine, endpoint)
    await signal_spam.save_credentials(quarantine, LOGIN, PASSWORD)
    mid = await quarantine.store.hold(SPAM, HoldMeta("outbound", "camille@cabinet-kine.fr",
                                                     ["patient@gmail.com"]))
    result = await signal_spam.report_held(quarantine, cfg, mid, "camille")
    assert not result.ok and endpoint.requests == []
    assert "envoyé par le cabinet" in result.fr


async def test_a_404_says_the_endpoint_may_have_moved(endpoint: Endpoint) -> None:
    endpoint.script = [(404, 0.0)]
    result = await client(endpoint).check_credentials()
    assert result.status is ReportStatus.NOT_FOUND
    assert "[signal_spam] endpoint" in result.fr and "[signal_spam] endpoint" in result.en


async def test_a_person_waiting_is_answered_within_the_deadline(endpoint: Endpoint) -> None:
    """The console waited timeout × 4 attempts + backoff (~30 s) on a slow endpoint;
    with a deadline it stops trying when no time is left for another attempt."""
    endpoint.script = [(200, 3.0)] * 4
    slow = SignalSpamClient(endpoint.url, (LOGIN, PASSWORD), timeout=5.0, retries=3,
                            backoff=0.5, deadline=1.0)
    result = await slow.report(SPAM)
    assert result.status is ReportStatus.UNAVAILABLE
    assert result.attempts == 1 and len(endpoint.requests) == 1
    # without a deadline (the CLI), the retries happen as configured
    endpoint.requests.clear()
    endpoint.script = [(500, 0.0)] * 4
    patient = SignalSpamClient(endpoint.url, (LOGIN, PASSWORD), timeout=5.0, retries=3,
                               backoff=0.01)
    assert (await patient.report(SPAM)).attempts == 4
