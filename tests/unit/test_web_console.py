"""The console over aiohttp's test client: login, sessions, CSRF, headers, escaping,
one-click pages. The quarantine is an in-memory backend here (the real store is
used by tests/integration/test_web_console.py)."""

from __future__ import annotations

import datetime
import html as htmllib
import json
import os
import re
import time
import zoneinfo
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import Config
from gateway.testing import FakeResolver, config_for_tests
from gateway.users import UsersFile
from gateway.verdict import Reason
from gateway.web.app import Console
from gateway.web.backend import (
    Action,
    AuditEntry,
    Filters,
    Held,
    Outcome,
    Stats,
    TokenError,
    TokenInfo,
)
from gateway.web.security import CSP

ADMIN, ADMIN_PW = "admin", "admin-password-1"
STAFF, STAFF_PW = "secretaire", "staff-password-1"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_FILE = '"><img src=x onerror=alert(2)>.pdf'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryBackend:
    """An in-memory ``Backend`` recording what it was asked to do."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.raws: dict[str, bytes] = {}
        self.tokens: dict[str, tuple[str, Action, float, bool]] = {}
        self.acted: list[tuple[str, str, str]] = []
        self.events: list[tuple[str, str, str, dict[str, Any]]] = []

    def add(self, held: Held, raw: bytes) -> None:
        self.held[held.id] = held
        self.raws[held.id] = raw

    async def find(self, filters: Filters, *, limit: int, offset: int
                   ) -> tuple[list[Held], int]:
        items = [h for h in self.held.values()
                 if (filters.status is None or h.status == filters.status)
                 and (filters.direction is None or h.direction == filters.direction)
                 and (filters.category is None or h.category == filters.category)
                 and (filters.sender is None or filters.sender in h.sender)]
        items.sort(key=lambda h: h.received_at, reverse=True)
        return items[offset:offset + limit], len(items)

    async def get(self, message_id: str) -> Held | None:
        return self.held.get(message_id)

    async def raw(self, message_id: str) -> bytes | None:
        return self.raws.get(message_id)

    async def act(self, message_id: str, action: Action, who: str) -> Outcome:
        self.acted.append((message_id, action, who))
        h = self.held[message_id]
        status = {"release": "released", "delete": "deleted", "report": "held",
                  "allow": "released"}[action]
        self.held[message_id] = Held(**{**h.__dict__, "status": status})
        return Outcome(True, f"fait : {action}", f"done: {action}")

    async def check_signal_spam(self) -> Outcome:
        self.acted.append(("", "check_signal_spam", ""))
        return Outcome(False, "identifiants refusés", "credentials refused")

    async def stats(self, since: float) -> Stats:
        stats = Stats()
        for h in self.held.values():
            key = (h.category, h.direction)
            stats.by_reason[key] = stats.by_reason.get(key, 0) + 1
            stats.by_status[h.status] = stats.by_status.get(h.status, 0) + 1
        return stats

    async def peek_token(self, token: str) -> TokenInfo | TokenError:
        entry = self.tokens.get(token)
        if entry is None:
            return TokenError("invalid")
        message_id, action, expires, used = entry
        if used:
            return TokenError("used")
        if expires < time.time():
            return TokenError("expired")
        return TokenInfo(message_id, action)

    async def consume_token(self, token: str, action: Action) -> TokenInfo | TokenError:
        info = await self.peek_token(token)
        if isinstance(info, TokenError):
            return info
        if info.action != action:
            return TokenError("wrong_action")
        self.tokens[token] = (info.message_id, action, self.tokens[token][2], True)
        return info

    async def restore_token(self, token: str) -> None:
        message_id, action, expires, _ = self.tokens[token]
        self.tokens[token] = (message_id, action, expires, False)

    async def audit(self, event: str, who: str, message_id: str = "", **details: Any
                    ) -> None:
        self.events.append((event, who, message_id, details))

    async def audit_entries(self, *, limit: int, offset: int
                            ) -> tuple[list[AuditEntry], int]:
        entries = [AuditEntry(datetime.datetime.now(datetime.UTC), e, w, m, json.dumps(d))
                   for e, w, m, d in reversed(self.events)]
        return entries[offset:offset + limit], len(entries)


def mail(subject: str, body: str, *, html: str | None = None,
         attachment: tuple[str, bytes, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Expéditeur <exp@example.org>"
    msg["To"] = "camille@cabinet-kine.fr"
    msg["Subject"] = subject
    msg["Date"] = "Sun, 29 Nov 2026 09:00:00 +0100"
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data, ctype = attachment
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def held(message_id: str, *, direction: str = "inbound", subject: str | None = "Bonjour",
         category: str = "spam", sender: str = "exp@example.org") -> Held:
    return Held(id=message_id, received_at=time.time() - 3600, direction=direction,
                sender=sender, rcpt_domains=["cabinet-kine.fr"],
                subject=subject if direction == "inbound" else None, size=1234,
                symbols=["SPAM_LIKE"], reasons=[Reason("ressemble à un spam", "spam-like")],
                category=category, status="held", evidence=["lien vers bit.ly"])


Env = tuple[TestClient[web.Request, web.Application], MemoryBackend, Clock, Config]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    cfg = config_for_tests(tmp_path / "data")
    cfg.web.max_failures = 3
    users = UsersFile(cfg.users_file)
    users.add(ADMIN, ADMIN_PW, admin=True)
    users.add(STAFF, STAFF_PW)
    backend = MemoryBackend()
    clock = Clock()
    console = Console(cfg, backend, users, resolver=FakeResolver({"mssante.fr": [
        ("MX", (10, "mx.mssante.fr"))]}), clock=clock)
    client = TestClient(TestServer(console.app()))
    await client.start_server()
    try:
        yield client, backend, clock, cfg
    finally:
        await client.close()


async def words(resp: Any) -> str:
    """The page's text with entities decoded (autoescaping writes ' as &#39;)."""
    return htmllib.unescape(await resp.text())


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


async def login(client: TestClient[web.Request, web.Application], name: str = ADMIN,
                password: str = ADMIN_PW) -> ClientResponse:
    page = await client.get("/login")
    token = csrf_of(await page.text())
    return await client.post("/login", data={"name": name, "password": password,
                                             "csrf": token, "next": "/messages"},
                             allow_redirects=False)


# --- headers ----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/messages", "/nope", "/static/style.css",
                                  "/a/unknown-token-0123456789abcdef"])
async def test_every_answer_carries_the_strict_csp_and_security_headers(
        env: Env, path: str) -> None:
    client, *_ = env
    resp = await client.get(path, allow_redirects=False)
    assert resp.headers["Content-Security-Policy"] == CSP
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_pages_have_no_script_and_no_external_asset(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("Bonjour", "texte"))
    await login(client)
    for path in ("/login", "/messages", "/messages/M1", "/dashboard", "/audit", "/usb",
                 "/settings"):
        html = await (await client.get(path)).text()
        assert "<script" not in html.lower(), path
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html), path
        assert ("http://" not in html and "https://" not in html) or path == "/settings"


# --- login -------------------------------------------------------------------

async def test_login_failure_is_refused_in_french_and_audited(env: Env) -> None:
    client, backend, *_ = env
    resp = await login(client, password="wrong-password")
    assert resp.status == 401
    text = await resp.text()
    assert "Identifiant ou mot de passe incorrect" in text
    assert ("login_failed", ADMIN, "", {"ip": "127.0.0.1", "reason": "bad_password"}) \
        in backend.events
    assert (await client.get("/messages", allow_redirects=False)).status == 303


async def test_failed_login_with_an_unknown_name_does_not_log_the_name(env: Env) -> None:
    client, backend, *_ = env
    await login(client, name="my-password-typed-here", password="x" * 12)
    assert backend.events[-1][1] == "(inconnu)"


async def test_a_user_who_is_not_admin_cannot_log_into_the_console(env: Env) -> None:
    client, backend, *_ = env
    resp = await login(client, STAFF, STAFF_PW)
    assert resp.status == 403
    assert "seuls les administrateurs" in await resp.text()
    assert (await client.get("/messages", allow_redirects=False)).status == 303
    assert backend.events[-1][0] == "login_failed"


async def test_login_sets_a_new_strict_httponly_session_cookie_and_is_audited(
        env: Env) -> None:
    client, backend, *_ = env
    first = await client.get("/login")
    before = first.cookies["vigie_session"].value
    token = csrf_of(await first.text())
    resp = await client.post("/login", data={"name": ADMIN, "password": ADMIN_PW,
                                             "csrf": token, "next": "/dashboard"},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard"
    cookie = resp.cookies["vigie_session"]
    assert cookie.value != before  # no session fixation
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # plain http on loopback; https sets Secure
    assert ("login", ADMIN, "", {"ip": "127.0.0.1"}) in backend.events
    assert (await client.get("/messages")).status == 200


async def test_login_never_redirects_to_another_site(env: Env) -> None:
    client, *_ = env
    page = await client.get("/login")
    resp = await client.post("/login", data={
        "name": ADMIN, "password": ADMIN_PW, "csrf": csrf_of(await page.text()),
        "next": "//evil.example/"}, allow_redirects=False)
    assert resp.headers["Location"] == "/messages"


async def test_repeated_failures_block_the_login_without_checking_the_password(
        env: Env) -> None:
    client, _backend, clock, cfg = env
    for _ in range(cfg.web.max_failures):
        assert (await login(client, password="bad-password")).status == 401
    resp = await login(client)  # even the right password now
    assert resp.status == 429
    assert "Trop d'essais manqués" in await words(resp)
    clock.now += cfg.web.lockout_minutes * 60 + 1
    assert (await login(client)).status == 303


async def test_logout_ends_the_session_and_is_audited(env: Env) -> None:
    client, backend, *_ = env
    await login(client)
    page = await client.get("/messages")
    resp = await client.post("/logout", data={"csrf": csrf_of(await page.text())},
                             allow_redirects=False)
    assert resp.status == 303
    assert backend.events[-1][0] == "logout"
    assert (await client.get("/messages", allow_redirects=False)).status == 303


async def test_an_idle_session_expires(env: Env) -> None:
    client, _, clock, cfg = env
    await login(client)
    assert (await client.get("/messages")).status == 200
    clock.now += cfg.web.session_minutes * 60 + 1
    resp = await client.get("/messages", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/login?")
    assert "expired=1" in resp.headers["Location"]
    page = await client.get(resp.headers["Location"])
    assert "Votre session a expiré" in await page.text()


async def test_a_session_ends_after_its_maximum_age_even_when_used(env: Env) -> None:
    client, _, clock, cfg = env
    await login(client)
    for _ in range(int(cfg.web.session_max_hours * 60 / 20) + 1):
        clock.now += 20 * 60
        resp = await client.get("/messages", allow_redirects=False)
    assert resp.status == 303


async def test_deleting_an_admin_ends_their_sessions(env: Env) -> None:
    client, _, _, cfg = env
    await login(client)
    assert (await client.get("/messages")).status == 200
    users = UsersFile(cfg.users_file)
    users.delete(ADMIN)
    os.utime(cfg.users_file, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime
    resp = await client.get("/messages", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?")


# --- CSRF -------------------------------------------------------------------

async def test_a_post_without_a_valid_csrf_token_is_refused_and_does_nothing(
        env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("Bonjour", "texte"))
    await login(client)
    for data in ({}, {"csrf": ""}, {"csrf": "forged-token"}):
        resp = await client.post("/messages/M1/release", data=data, allow_redirects=False)
        assert resp.status == 403
        assert "Formulaire expiré" in await resp.text()
    assert backend.acted == []
    resp = await client.post("/logout", data={"csrf": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/messages")).status == 200  # still logged in


async def test_login_form_needs_its_csrf_token_too(env: Env) -> None:
    client, backend, *_ = env
    resp = await client.post("/login", data={"name": ADMIN, "password": ADMIN_PW},
                             allow_redirects=False)
    assert resp.status == 403
    assert backend.events == []


async def test_every_form_of_every_page_carries_the_csrf_token(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("Bonjour", "texte"))
    await login(client)
    for path in ("/messages", "/messages/M1", "/dashboard", "/audit", "/usb", "/settings"):
        html = await (await client.get(path)).text()
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S):
            assert 'name="csrf"' in form, (path, form)


async def test_actions_with_the_token_act_and_show_the_result_in_french(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("Bonjour", "texte"))
    await login(client)
    page = await client.get("/messages/M1")
    resp = await client.post("/messages/M1/release", data={"csrf": csrf_of(await page.text())})
    assert resp.status == 200
    assert "fait : release" in await resp.text()
    assert backend.acted == [("M1", "release", ADMIN)]


async def test_an_outbound_message_cannot_be_reported_as_spam(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M2", direction="outbound", category="patient_data"), mail("x", "y"))
    await login(client)
    page = await client.get("/messages/M2")
    html = await page.text()
    assert "/messages/M2/report" not in html
    resp = await client.post("/messages/M2/report", data={"csrf": csrf_of(html)})
    assert "ne se signale pas" in await resp.text()
    assert backend.acted == []


# --- escaping ---------------------------------------------------------------

async def test_a_hostile_subject_and_file_name_are_escaped(env: Env) -> None:
    client, backend, *_ = env
    raw = mail(HOSTILE, "corps", attachment=(HOSTILE_FILE, b"%PDF-1.4\n", "application/pdf"))
    backend.add(held("M1", subject=HOSTILE, sender='"<b>x</b>"@example.org'), raw)
    await login(client)
    for path in ("/messages", "/messages/M1"):
        html = await (await client.get(path)).text()
        assert HOSTILE not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "<b>x</b>" not in html
    html = await (await client.get("/messages/M1")).text()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;.pdf" in html


async def test_the_html_of_a_mail_is_shown_as_text_never_rendered(env: Env) -> None:
    client, backend, *_ = env
    html_part = ('<html><head><style>p{color:red}</style><script>steal()</script></head>'
                 '<body><p>Cher <b>client</b>,</p><img src="https://tracker.example/p.gif">'
                 '<a href="https://phish.example/login">cliquez ici</a></body></html>')
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "html"
    msg.set_content(html_part, subtype="html")
    backend.add(held("M1"), msg.as_bytes())
    await login(client)
    page = await (await client.get("/messages/M1")).text()
    assert "steal()" not in page and "color:red" not in page
    assert "<b>client</b>" not in page and "tracker.example" not in page
    assert "Cher client," in page
    assert "cliquez ici [https://phish.example/login]" in page
    assert "Texte extrait de la version HTML" in page


async def test_attachments_show_their_true_type(env: Env) -> None:
    client, backend, *_ = env
    exe = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200
    backend.add(held("M1", category="attachment"),
                mail("Facture", "ci-joint", attachment=("facture.pdf", exe, "application/pdf")))
    await login(client)
    page = await (await client.get("/messages/M1")).text()
    assert "facture.pdf" in page
    assert "application/pdf" in page
    assert "le contenu ne correspond pas au type annoncé" in page


async def test_outbound_content_is_hidden_until_asked_and_the_viewing_is_audited(
        env: Env) -> None:
    client, backend, *_ = env
    raw = mail("Bilan de Mme Durand", "NIR 1 85 05 78 006 084 91, lombalgie",
               attachment=("bilan-durand.pdf", b"%PDF-1.4\n", "application/pdf"))
    backend.add(held("M3", direction="outbound", category="patient_data"), raw)
    await login(client)
    page = await (await client.get("/messages/M3")).text()
    assert "Durand" not in page and "lombalgie" not in page and "1 85 05" not in page
    assert "camille@cabinet-kine.fr" not in page  # recipients (To) hidden too
    assert "données de santé" in page
    assert "application/pdf" in page  # types and sizes are still shown
    assert not any(e[0] == "view_content" for e in backend.events)
    page = await (await client.get("/messages/M3?contenu=1")).text()
    assert "lombalgie" in page and "bilan-durand.pdf" in page
    assert "Attention : ce contenu contient des données de santé" in page
    assert ("view_content", ADMIN, "M3", {"ip": "127.0.0.1"}) in backend.events


# --- list, filters and other pages -----------------------------------------

async def test_the_list_filters_and_pages(env: Env) -> None:
    client, backend, *_ = env
    for n in range(60):
        backend.add(held(f"I{n:03d}", sender=f"s{n}@example.org"), mail("x", "y"))
    backend.add(held("O001", direction="outbound", category="patient_data"), mail("x", "y"))
    await login(client)
    page = await (await client.get("/messages")).text()
    assert "61 message(s)" in page and "page 1 sur 2" in page
    assert 'rel="next"' in page
    page = await (await client.get("/messages?direction=outbound")).text()
    assert "1 message(s)" in page and "/messages/O001" in page
    page = await (await client.get("/messages?sender=s42@")).text()
    assert "1 message(s)" in page and "/messages/I042" in page
    page = await (await client.get("/messages?since=not-a-date")).text()
    assert "Date invalide ignorée" in page
    page = await (await client.get("/messages?page=2")).text()
    assert "page 2 sur 2" in page


async def test_dashboard_draws_an_svg_chart(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("I1", category="spam"), mail("x", "y"))
    backend.add(held("O1", direction="outbound", category="patient_data"), mail("x", "y"))
    await login(client)
    page = await (await client.get("/dashboard")).text()
    assert "<svg" in page and "Ressemble à un spam" in page
    assert "Données de santé vers une messagerie non sécurisée" in page


async def test_audit_page_lists_the_actions(env: Env) -> None:
    client, *_ = env
    await login(client)
    page = await (await client.get("/audit")).text()
    assert "login" in page and ADMIN in page


async def test_usb_page_tolerates_a_missing_folder_and_a_malformed_report(env: Env) -> None:
    client, _, _, cfg = env
    await login(client)
    assert "Aucun rapport" in await (await client.get("/usb")).text()
    folder = cfg.data_dir / "usb-reports"
    folder.mkdir(parents=True)
    (folder / "20261129-090000-bad.json").write_text("{not json", encoding="utf-8")
    (folder / "20261129-100000-CLE.json").write_text(json.dumps({
        "mount_point": "/media/CLE", "label": "CLE", "started": "2026-11-29T10:00:00",
        "counts": {"files": 12, "malicious": 1},
        "files": [{"path": "docs/a.pdf", "verdict": "clean", "findings": []},
                  {"path": f"docs/{HOSTILE_FILE}", "verdict": "malicious",
                   "findings": [{"symbol": "EICAR", "reason": {"fr": "virus de test",
                                                               "en": "test virus"}}]}]}),
        encoding="utf-8")
    page = await (await client.get("/usb")).text()
    assert "Rapport illisible" in page
    assert "/media/CLE" in page and "virus de test" in page
    assert "docs/a.pdf" not in page  # clean files are not listed
    assert "<img src=x" not in page
    page = await words(await client.get("/dashboard"))
    assert "Dernière clé USB analysée" in page and "1 fichier(s) signalé(s)" in page
    assert "signalé(s)Clés" not in re.sub(r"<[^>]+>", "", page)  # a space before the link
    assert "29/11/2026 11:00" in page  # 10:00 UTC, in Paris time like the rest


async def test_settings_page_checks_the_installation(env: Env) -> None:
    client, *_ = env
    await login(client)
    page = await (await client.get("/settings")).text()
    assert "pas de relais" in page  # no upstream configured: the local Maildir
    assert "le résolveur répond" in page
    assert "Récapitulatif quotidien" in page
    resp = await client.post("/settings/signal-spam", data={"csrf": csrf_of(page)})
    assert "identifiants refusés" in await resp.text()


async def test_english_is_available(env: Env) -> None:
    client, *_ = env
    resp = await client.get("/login?lang=en")
    assert "Log in to the console" in await resp.text()
    assert resp.cookies["vigie_lang"].value == "en"
    assert "Log in to the console" in await (await client.get("/login")).text()
    resp = await client.get("/login?lang=fr")
    assert "Connexion à la console" in await resp.text()
    other = await client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Connexion" in await other.text()  # the cookie (fr now) wins


async def test_pages_need_a_login(env: Env) -> None:
    client, *_ = env
    for path in ("/", "/messages", "/messages/X", "/audit", "/dashboard", "/usb",
                 "/settings"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/login?"), path


# --- one-click pages --------------------------------------------------------

def one_click(backend: MemoryBackend, action: Action = "release", *,
              expires: float | None = None) -> str:
    token = f"tok-{len(backend.tokens)}-0123456789abcdefghij"
    backend.tokens[token] = ("M1", action, expires or time.time() + 3600, False)
    return token


async def test_a_get_on_a_one_click_link_only_shows_a_confirmation(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1", subject=HOSTILE), mail("x", "y"))
    token = one_click(backend)
    for _ in range(3):  # link scanners fetch several times
        resp = await client.get(f"/a/{token}")
        assert resp.status == 200
    html = await resp.text()
    assert "Libérer ?" in html
    assert "Rien n'est fait tant que vous n'avez pas cliqué" in htmllib.unescape(html)
    assert len(re.findall(r"<button", html)) == 1
    assert HOSTILE not in html
    assert backend.acted == []
    assert backend.tokens[token][3] is False  # not used up
    head = await client.head(f"/a/{token}")
    assert head.status in (200, 405) and backend.acted == []


async def test_the_confirmation_post_acts_once(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    token = one_click(backend)
    html = await (await client.get(f"/a/{token}")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert nonce
    resp = await client.post(f"/a/{token}", data={"action": "release",
                                                  "nonce": nonce.group(1)})
    assert resp.status == 200
    assert "C'est fait" in await words(resp)
    assert backend.acted == [("M1", "release", "lien du récapitulatif / digest link")]
    again = await client.post(f"/a/{token}", data={"action": "release",
                                                   "nonce": nonce.group(1)})
    assert again.status == 410
    assert "déjà servi" in await again.text()
    assert len(backend.acted) == 1


async def test_a_post_without_the_page_nonce_does_nothing(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    token = one_click(backend)
    html = await (await client.get(f"/a/{token}")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert nonce
    for data in ({}, {"action": "release"}, {"action": "release", "nonce": "1.abc"},
                 {"action": "delete", "nonce": nonce.group(1)}):
        resp = await client.post(f"/a/{token}", data=data)
        assert resp.status == 403
        text = await words(resp)
        assert "Rien n'a été fait" in text
        # not «too old»: it was no confirmation page of this link at all
        assert "ne vient pas de la page de confirmation" in text and "trop ancienne" not in text
    assert backend.acted == []
    assert backend.tokens[token][3] is False


def test_a_nonce_is_expired_only_when_it_is_the_right_one_seen_too_long_ago(
        tmp_path: Path) -> None:
    from gateway.web.security import Nonces, load_secret

    now = [1000.0]
    nonces = Nonces(load_secret(tmp_path / "s"), ttl=60, clock=lambda: now[0])
    nonce = nonces.issue("t1\0release")
    assert nonces.status("t1\0release", nonce) == "ok"
    assert nonces.status("t1\0delete", nonce) == "invalid"
    assert nonces.status("t1\0release", nonce + "0") == "invalid"
    assert nonces.status("t1\0release", None) == "invalid"
    now[0] += 61
    assert nonces.status("t1\0release", nonce) == "expired"
    assert nonces.status("t1\0delete", nonce) == "invalid"


async def test_expired_tampered_and_wrong_action_links_show_a_french_page(
        env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    expired = one_click(backend, expires=time.time() - 1)
    resp = await client.get(f"/a/{expired}")
    assert resp.status == 410 and "Ce lien a expiré" in await resp.text()
    token = one_click(backend, "delete")
    resp = await client.get(f"/a/{token[:-1]}X")
    assert resp.status == 404 and "Ce lien n'est pas valable" in await words(resp)
    assert backend.acted == []


async def test_a_link_to_a_message_no_longer_held_offers_no_button(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    token = one_click(backend)
    await backend.act("M1", "delete", "someone")
    resp = await client.get(f"/a/{token}")
    assert resp.status == 409
    page = await words(resp)
    assert "plus en attente" in page and "<button" not in page.split("<main>")[1]


async def test_one_click_pages_need_no_login_and_serve_the_digest_path(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    token = one_click(backend, "delete")
    resp = await client.get(f"/action/{token}")
    assert resp.status == 200 and "Supprimer ?" in await resp.text()


def test_the_nonce_is_bound_to_token_and_expires(tmp_path: Path) -> None:
    from gateway.web.security import Nonces, load_secret

    now = [1000.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    nonces = Nonces(load_secret(tmp_path / "s"), ttl=60, clock=clock)
    nonce = nonces.issue("t1")
    assert nonces.check("t1", nonce)
    assert not nonces.check("t2", nonce)
    assert not nonces.check("t1", None)
    now[0] += 61
    assert not nonces.check("t1", nonce)
    assert load_secret(tmp_path / "s") == load_secret(tmp_path / "s")
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o600


async def test_cookies_are_secure_behind_an_https_proxy(tmp_path: Path) -> None:
    cfg = config_for_tests(tmp_path / "data")
    cfg.web.trusted_proxy = "127.0.0.1"
    console = Console(cfg, MemoryBackend(), UsersFile(cfg.users_file))
    async with TestClient(TestServer(console.app())) as client:
        plain = await client.get("/login")
        assert not plain.cookies["vigie_session"]["secure"]
        client.session.cookie_jar.clear()
        proxied = await client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert proxied.cookies["vigie_session"]["secure"]
        assert proxied.headers["Content-Security-Policy"] == CSP


async def test_a_report_link_for_outbound_mail_is_refused_and_english_is_available(
        env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1", direction="outbound", category="patient_data"), mail("x", "y"))
    token = one_click(backend, "report")
    html = await (await client.get(f"/a/{token}?lang=en")).text()
    assert "Report to Signal Spam ?" in html and "Nothing is done until" in html
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert nonce
    resp = await client.post(f"/a/{token}", data={"action": "report", "nonce": nonce.group(1)})
    assert resp.status == 409
    assert "Mail sent by the practice is not reported as spam" in await resp.text()
    assert backend.acted == []
    assert backend.tokens[token][3] is False  # not used up by a refusal


# --- review fixes (fix6) ------------------------------------------------------

RLO_FILE = "ordonnance.pdf\u202egpj.exe"


async def test_direction_controls_are_shown_not_obeyed(env: Env) -> None:
    """An RLO in a file name, subject or sender must not make «.exe» pass for «.jpg»:
    every page (list, message, one-click confirmation) shows it as a visible marker."""
    client, backend, *_ = env
    raw = mail("Facture\u202e fdp.exe", "corps",
               attachment=(RLO_FILE, b"MZ" + b"\x00" * 100, "application/pdf"))
    backend.add(held("M1", subject="Facture\u202e fdp.exe",
                     sender="exp\u2067@example.org"), raw)
    token = one_click(backend)
    pages = [await (await client.get(f"/a/{token}")).text()]
    await login(client)
    for path in ("/messages", "/messages/M1"):
        pages.append(await (await client.get(path)).text())
    for page in pages:
        for control in "\u202e\u2067\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2068\u2069":
            assert control not in page
        assert "Facture«U+202E» fdp.exe" in page
    assert "ordonnance.pdf«U+202E»gpj.exe" in pages[-1]
    assert "exp«U+2067»@example.org" in pages[-1]


async def test_the_from_header_evidence_and_every_reason_are_shown(env: Env) -> None:
    client, backend, *_ = env
    h = held("M1", sender="bob@example.org", category="attachment")
    backend.add(Held(**{**h.__dict__, "from_header": "Dr Paul Martin <pm@medecin.mssante.fr>",
                        "reasons": [Reason("nom trompeur", "misleading name"),
                                    Reason("programme Windows", "Windows program"),
                                    Reason("EICAR (règle eicar)", "EICAR")],
                        "evidence": ["ATT_MALICIOUS : ordonnance.pdf"]}),
                mail("x", "y"))
    token = one_click(backend)
    confirm = await words(await client.get(f"/a/{token}"))
    await login(client)
    listing = await words(await client.get("/messages"))
    page = await words(await client.get("/messages/M1"))
    for text in (confirm, listing, page):
        assert "Dr Paul Martin <pm@medecin.mssante.fr>" in text
        assert "bob@example.org" in text
    for text in (confirm, page):
        assert "De (en-tête From)" in text and "Expéditeur de l'enveloppe" in text
        assert "programme Windows" in text and "EICAR (règle eicar)" in text
    assert "ATT_MALICIOUS : ordonnance.pdf" in page


async def test_two_look_alike_held_mails_can_be_told_apart_on_the_confirmation_page(
        env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1", direction="outbound"), mail("x", "y"))
    page = await words(await client.get(f"/a/{one_click(backend)}"))
    stamp = datetime.datetime.fromtimestamp(backend.held["M1"].received_at,
                                            datetime.UTC).astimezone(
        zoneinfo.ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y %H:%M:%S")
    assert stamp in page  # to the second
    assert "M1" in page and "1 Ko" in page and "cabinet-kine.fr" in page


async def test_english_sizes_are_in_bytes(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    await login(client)
    page = await (await client.get("/messages?lang=en")).text()
    assert "1 KB" in page and "1 Ko" not in page


async def test_a_post_after_the_session_expired_goes_to_the_login_page(env: Env) -> None:
    client, backend, clock, cfg = env
    backend.add(held("M1"), mail("x", "y"))
    await login(client)
    csrf = csrf_of(await (await client.get("/messages/M1")).text())
    clock.now += cfg.web.session_minutes * 60 + 1
    resp = await client.post("/messages/M1/release", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?")
    assert "expired=1" in resp.headers["Location"]
    assert backend.acted == []
    # a POST without any session at all is sent to log in too; nothing is done
    client.session.cookie_jar.clear()
    resp = await client.post("/messages/M1/delete", data={"csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303 and backend.acted == []


async def test_one_click_actions_are_audited_with_the_address(env: Env) -> None:
    client, backend, *_ = env
    backend.add(held("M1"), mail("x", "y"))
    token = one_click(backend)
    html = await (await client.get(f"/a/{token}")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', html)
    assert nonce
    await client.post(f"/a/{token}", data={"action": "release", "nonce": nonce.group(1)})
    assert ("one_click", "lien du récapitulatif / digest link", "M1",
            {"action": "release", "ip": "127.0.0.1"}) in backend.events


async def test_failed_logins_reach_the_journal_without_the_password(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    client, *_ = env
    await login(client, password="wrong-password-42")
    await login(client, name="typed-my-password-here", password="x" * 12)
    assert "failed login for admin from 127.0.0.1 (bad_password)" in caplog.text
    assert "(unknown name)" in caplog.text
    assert "wrong-password-42" not in caplog.text and "typed-my-password" not in caplog.text


async def test_the_favicon_is_an_empty_answer_not_a_404(env: Env) -> None:
    client, *_ = env
    resp = await client.get("/favicon.ico")
    assert resp.status == 204
