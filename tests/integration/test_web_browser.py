"""Browser tests in Debian's headless chromium (Playwright's sync API, never a
downloaded browser): log in, see a held message, open it; open the digest's
release link, confirm, and the upstream receives the message; a GET on the link
alone releases nothing. The gateway runs in its own thread, so these tests are
plain (not asyncio) functions."""

from __future__ import annotations

import email
import email.policy
import os
import socket
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, make_message
from gateway.users import UsersFile
from tests.conftest import connect
from tests.web_helpers import (
    ADMIN,
    ADMIN_PW,
    console_url,
    held_ids,
    hold_inbound,
    issue_token,
    status_of,
    with_quarantine,
)

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Dialog, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
HOSTILE = "<script>alert(1)</script>"
MakeGW = Callable[..., GatewayThread]


def _browser_or_skip() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is required in CI (.ci/run installs it)")
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium); CI installs it")


class Watched:
    """A page plus what it must never do: run a script (dialog), break the CSP,
    fetch anything from outside the console."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.outside: list[str] = []
        self.base = base
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("request", self._request)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.base, "data:")):
            self.outside.append(request.url)

    def clean(self) -> None:
        assert self.dialogs == []
        assert not [m for m in self.console if "Content Security Policy" in m], self.console
        assert self.outside == []


@pytest.fixture
def gw(make_gateway: MakeGW, relay_config: Config) -> GatewayThread:
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    UsersFile(relay_config.users_file).add(ADMIN, ADMIN_PW, admin=True)
    return make_gateway(relay_config)


def _page() -> Iterator[Page]:
    """A fresh French browser page. Playwright's sync API keeps an event loop
    running in this thread while it is open, so it is opened after the gateway
    (whose thread's loop is closed from here) and closed before it stops."""
    _browser_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(locale="fr-FR")  # Camille's browser
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
            context.close()
        finally:
            browser.close()


@pytest.fixture
def page(gw: GatewayThread) -> Iterator[Page]:
    yield from _page()


def send_held(gw: GatewayThread) -> tuple[str, bytes]:
    """Send through the gateway a message its policy holds; its quarantine id."""
    raw = make_message(subject="Compte rendu", message_id=False)
    before = set(held_ids(gw.cfg))
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        c.rcpt("confrere@example.org")
        assert c.data(raw)[0] == 250
    (new,) = set(held_ids(gw.cfg)) - before
    return new, raw


def log_in(page: Page, base: str) -> None:
    page.goto(base + "/messages")
    assert "/login" in page.url
    page.get_by_label("Identifiant").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(ADMIN_PW)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(base + "/messages")


def test_log_in_see_the_held_message_and_open_it(gw: GatewayThread, page: Page,
                                                 upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    inbound_id = hold_inbound(gw.cfg, make_message(subject=HOSTILE), HOSTILE)
    base = console_url(gw)
    watched = Watched(page, base)
    log_in(page, base)
    rows = page.locator("table.held tbody tr")
    assert rows.count() == 2
    assert page.locator(f'a[href="/messages/{message_id}"]').count() >= 1
    # the hostile subject is text on the page, never markup
    assert page.get_by_text(HOSTILE).count() == 1
    page.locator(f'a[href="/messages/{message_id}"]').first.click()
    page.wait_for_url(f"{base}/messages/{message_id}")
    assert page.locator("h1").inner_text().startswith("Message retenu")
    assert page.get_by_text("HYG_NO_MESSAGE_ID").count() == 1
    assert page.get_by_role("button", name="Libérer").count() == 1
    page.goto(f"{base}/messages/{inbound_id}")
    assert page.get_by_text(HOSTILE).count() >= 1
    # the chart of the dashboard is inline SVG, drawn by the server
    page.goto(base + "/dashboard")
    assert page.locator("svg.chart rect").count() >= 2
    watched.clean()
    assert upstream.messages == []


def test_release_from_the_console_page(gw: GatewayThread, page: Page,
                                       upstream: CapturingUpstream) -> None:
    message_id, raw = send_held(gw)
    base = console_url(gw)
    watched = Watched(page, base)
    log_in(page, base)
    page.goto(f"{base}/messages/{message_id}")
    page.get_by_role("button", name="Libérer").click()
    page.wait_for_url(f"{base}/messages/{message_id}")
    assert "message libéré" in page.locator(".flash").inner_text()
    assert [m.content.endswith(raw) for m in upstream.messages] == [True]
    watched.clean()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def digest_gw(make_gateway: MakeGW, relay_config: Config) -> GatewayThread:
    """A gateway whose digest links point at its own console."""
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    port = free_port()
    relay_config.web.listen = f"127.0.0.1:{port}"
    relay_config.web.public_url = f"http://127.0.0.1:{port}"
    relay_config.digest.recipients = ["camille@cabinet-kine.fr"]
    return make_gateway(relay_config)


@pytest.fixture
def digest_page(digest_gw: GatewayThread) -> Iterator[Page]:
    yield from _page()


def send_digest(gw: GatewayThread, upstream: CapturingUpstream) -> str:
    """Run the real daily digest through the relay; the HTML part the upstream got."""
    from gateway.quarantine.digest import run_digest

    outcome = with_quarantine(gw.cfg, lambda q: run_digest(q, gw.cfg, gw.gateway.hop_factory))
    assert outcome.sent and outcome.count == 1
    (mail,) = [m for m in upstream.messages if b"X-Vigie-Digest: 1" in m.content]
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_the_digest_release_link_confirm_and_the_upstream_receives_it(
        digest_gw: GatewayThread, digest_page: Page, upstream: CapturingUpstream) -> None:
    gw, page = digest_gw, digest_page
    message_id, raw = send_held(gw)
    digest_html = send_digest(gw, upstream)
    assert message_id in digest_html
    page.set_content(digest_html)  # Camille's mail program shows the digest
    watched = Watched(page, console_url(gw))
    page.get_by_role("link", name="Libérer").click()  # the link in the mail
    page.wait_for_url(f"{console_url(gw)}/a/*")
    link = page.url
    assert page.locator("h1").inner_text() == "Libérer ?"
    button = page.get_by_role("button")
    assert button.count() == 1
    assert [m.content for m in upstream.messages if m.content.endswith(raw)] == []  # nothing yet
    assert status_of(gw.cfg, message_id) == "held"
    button.click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "C'est fait"
    assert "message libéré" in page.locator(".flash").inner_text()
    assert len([m for m in upstream.messages if m.content.endswith(raw)]) == 1
    assert status_of(gw.cfg, message_id) == "released"
    # the link has served: opening it again says so and does nothing more
    page.goto(link)
    assert "déjà servi" in page.locator("main").inner_text()
    assert len([m for m in upstream.messages if m.content.endswith(raw)]) == 1
    watched.clean()


def test_a_get_on_the_link_alone_releases_nothing(gw: GatewayThread, page: Page,
                                                  upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    link = f"{console_url(gw)}/a/{issue_token(gw.cfg, message_id, 'release')}"
    for _ in range(3):  # a link scanner, a preview, the person
        response = page.goto(link)
        assert response is not None and response.status == 200
    page.reload()
    assert upstream.messages == []
    assert status_of(gw.cfg, message_id) == "held"
    # and the link still works for the person who clicks the button
    page.get_by_role("button").click()
    page.wait_for_load_state()
    assert len(upstream.messages) == 1
