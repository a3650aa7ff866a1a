"""The console served by a real gateway on loopback, over its real quarantine and a
real upstream: a held message listed, released from the console and from a
one-click link; a GET on the link releases nothing."""

from __future__ import annotations

import html
import json
import logging
import socket
import ssl
import urllib.request
from collections.abc import Callable

import pytest

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, make_message
from gateway.users import UsersFile
from tests.conftest import connect
from tests.web_helpers import (
    ADMIN,
    ADMIN_PW,
    Browserless,
    console_url,
    field,
    held_ids,
    hold_inbound,
    issue_token,
    status_of,
)

MakeGW = Callable[..., GatewayThread]


@pytest.fixture
def gw(make_gateway: MakeGW, relay_config: Config) -> GatewayThread:
    """A gateway whose policy holds outbound mail without a Message-ID."""
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    UsersFile(relay_config.users_file).add(ADMIN, ADMIN_PW, admin=True)
    return make_gateway(relay_config)


def send_held(gw: GatewayThread) -> tuple[str, bytes]:
    raw = make_message(subject="Compte rendu", message_id=False)
    before = set(held_ids(gw.cfg))
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        c.rcpt("confrere@example.org")
        code, _ = c.data(raw)
    assert code == 250
    (new,) = set(held_ids(gw.cfg)) - before
    return new, raw


def test_the_console_lists_and_shows_a_held_message(gw: GatewayThread,
                                                    upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    web = Browserless(console_url(gw))
    assert web.login() == 303
    status, headers, page = web.get("/messages")
    assert status == 200
    assert "Content-Security-Policy" in headers
    assert f"/messages/{message_id}" in page
    assert "camille@cabinet-kine.fr" in page and "example.org" in page
    assert "Compte rendu" not in page  # outbound: never the subject in the list
    status, _, page = web.get(f"/messages/{message_id}")
    assert status == 200
    assert "HYG_NO_MESSAGE_ID" in page
    assert "Compte rendu" not in page  # nor on the page until asked for


def test_release_from_the_console_reaches_the_upstream(
        gw: GatewayThread, upstream: CapturingUpstream) -> None:
    message_id, raw = send_held(gw)
    web = Browserless(console_url(gw))
    web.login()
    _, _, page = web.get(f"/messages/{message_id}")
    status, _, _ = web.post(f"/messages/{message_id}/release",
                                  {"csrf": field(page, "csrf")})
    assert status == 303
    _, _, page = web.get(f"/messages/{message_id}")
    assert "message libéré" in page
    assert [m.content.endswith(raw) for m in upstream.messages] == [True]
    assert status_of(gw.cfg, message_id) == "released"
    entries = [json.loads(line) for line in gw.cfg.audit_log.read_text().splitlines()]
    events = [(e["event"], e.get("who")) for e in entries]
    assert ("login", ADMIN) in events and ("release", ADMIN) in events


def test_a_post_without_csrf_releases_nothing(gw: GatewayThread,
                                              upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    web = Browserless(console_url(gw))
    web.login()
    status, _, page = web.post(f"/messages/{message_id}/release", {"csrf": "nope"})
    assert status == 403 and "Formulaire expiré" in page
    assert upstream.messages == []
    assert status_of(gw.cfg, message_id) == "held"


def test_one_click_get_releases_nothing_and_the_post_does(
        gw: GatewayThread, upstream: CapturingUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    message_id, raw = send_held(gw)
    token = issue_token(gw.cfg, message_id, "release")
    visitor = Browserless(console_url(gw))  # no login: the token is the credential
    for _ in range(3):
        status, _, page = visitor.get(f"/a/{token}")
        assert status == 200
    assert upstream.messages == []
    assert status_of(gw.cfg, message_id) == "held"
    status, _, done = visitor.post(f"/a/{token}", {"action": "release",
                                                   "nonce": field(page, "nonce")})
    assert status == 200
    assert "C&#39;est fait" in done and "message libéré" in done
    assert [m.content.endswith(raw) for m in upstream.messages] == [True]
    status, _, _ = visitor.post(f"/a/{token}", {"action": "release",
                                                    "nonce": field(page, "nonce")})
    assert status == 410
    assert len(upstream.messages) == 1
    assert token not in caplog.text  # the link is a credential: never in a log line
    assert "one-click: release on" in caplog.text


def test_one_click_wrong_action_and_tampered_links_do_nothing(
        gw: GatewayThread, upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    token = issue_token(gw.cfg, message_id, "delete")
    visitor = Browserless(console_url(gw))
    _, _, page = visitor.get(f"/a/{token}")
    nonce = field(page, "nonce")
    status, _, _ = visitor.post(f"/a/{token}", {"action": "release", "nonce": nonce})
    assert status == 403  # the nonce is bound to (token, action)
    status, _, text = visitor.get(f"/a/{token[:-2]}xx")
    assert status == 404 and "pas valable" in text
    assert status_of(gw.cfg, message_id) == "held"
    assert upstream.messages == []
    status, _, text = visitor.post(f"/a/{token}", {"action": "delete", "nonce": nonce})
    assert status == 200 and "message supprimé" in text
    assert status_of(gw.cfg, message_id) == "deleted"


def test_inbound_subject_is_shown_escaped(gw: GatewayThread) -> None:
    raw = make_message(subject="<script>alert(1)</script>")
    message_id = hold_inbound(gw.cfg, raw, "<script>alert(1)</script>")
    web = Browserless(console_url(gw))
    web.login()
    for path in ("/messages", f"/messages/{message_id}"):
        _, _, page = web.get(path)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_dashboard_and_settings_over_the_real_gateway(gw: GatewayThread,
                                                      upstream: CapturingUpstream) -> None:
    send_held(gw)
    web = Browserless(console_url(gw))
    web.login()
    _, _, page = web.get("/dashboard")
    assert "<svg" in page
    _, _, page = web.get("/settings")
    assert f"localhost:{upstream.port} répond (EHLO, starttls)" in page


def test_a_busy_console_port_does_not_stop_the_mail(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        relay_config.web.listen = f"127.0.0.1:{busy.getsockname()[1]}"
        gw = make_gateway(relay_config)
        with connect(gw) as c:
            assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"],
                              make_message()) == {}
    assert len(upstream.messages) == 1
    assert "impossible d'écouter" in caplog.text and "[web] listen" in caplog.text


def test_no_console_when_listen_is_empty(make_gateway: MakeGW, relay_config: Config) -> None:
    relay_config.web.listen = ""
    gw = make_gateway(relay_config)
    assert not hasattr(gw.gateway, "console")


def test_a_release_the_upstream_refuses_for_now_keeps_the_message_held(
        gw: GatewayThread, upstream: CapturingUpstream) -> None:
    message_id, _ = send_held(gw)
    upstream.behaviour.data_reply = "451 4.3.0 Try again later"
    token = issue_token(gw.cfg, message_id, "release")
    visitor = Browserless(console_url(gw))
    _, _, page = visitor.get(f"/a/{token}")
    status, _, text = visitor.post(f"/a/{token}", {"action": "release",
                                                   "nonce": field(page, "nonce")})
    assert status == 502
    assert "le message reste retenu" in text and "ouvrez la console" in text
    assert upstream.messages == []
    assert status_of(gw.cfg, message_id) == "held"
    # the link was not used up: it says so, and works once the upstream is back
    assert "toujours retenu et ce lien reste valable" in html.unescape(text)
    upstream.behaviour.data_reply = None
    status, _, page = visitor.get(f"/a/{token}")
    assert status == 200, page
    status, _, text = visitor.post(f"/a/{token}", {"action": "release",
                                                   "nonce": field(page, "nonce")})
    assert status == 200, text
    assert len(upstream.messages) == 1
    assert status_of(gw.cfg, message_id) == "released"


def test_the_console_can_serve_https_with_the_gateway_certificate(
        make_gateway: MakeGW, relay_config: Config) -> None:
    relay_config.web.tls = True
    UsersFile(relay_config.users_file).add(ADMIN, ADMIN_PW, admin=True)
    gw = make_gateway(relay_config)
    url = console_url(gw)
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=gw.cafile)
    with urllib.request.urlopen(url + "/login", context=context, timeout=15) as resp:
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert resp.headers["Strict-Transport-Security"]
