"""No relaying without AUTH, AUTH only after TLS, and the two auth modes."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, config_for_tests, make_message
from tests.conftest import PASSWORD, USER, client_context, connect, start_data

MakeGW = Callable[..., GatewayThread]


def test_auth_is_not_offered_before_tls(make_gateway: MakeGW, relay_config: Config) -> None:
    gw = make_gateway(relay_config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        assert not c.has_extn("auth")
        # Trying anyway: refused, and the password never crosses in clear.
        code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(
            f"\0{USER}\0{PASSWORD}".encode()).decode())
        assert code == 530


@pytest.mark.parametrize("command", ["MAIL FROM:<camille@cabinet-kine.fr>",
                                     "RCPT TO:<victim@example.org>", "DATA"])
def test_nothing_before_starttls(make_gateway: MakeGW, relay_config: Config,
                                 command: str) -> None:
    gw = make_gateway(relay_config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as c:
        c.ehlo()
        code, _ = c.docmd(command)
        assert code == 530


def test_no_relay_without_auth_after_starttls(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw, login=False) as c:
        assert c.has_extn("auth")
        for sender in ("camille@cabinet-kine.fr", "", "postmaster@cabinet-kine.fr"):
            code, _ = c.docmd(f"MAIL FROM:<{sender}>")
            assert code == 530
        code, _ = c.docmd("RCPT TO:<victim@example.org>")
        assert code == 530
        code, _ = c.docmd("DATA")
        assert code == 530
    assert upstream.messages == []
    assert upstream.connections == 0  # not even a connection to upstream


def test_no_relay_without_auth_on_implicit_tls(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with smtplib.SMTP_SSL("127.0.0.1", gw.tls_port, context=client_context(gw),
                          timeout=10) as c:
        c.ehlo()
        assert c.docmd("MAIL FROM:<camille@cabinet-kine.fr>")[0] == 530
        assert c.docmd("RCPT TO:<victim@example.org>")[0] in (503, 530)
        assert c.docmd("DATA")[0] in (503, 530)
    assert upstream.messages == []
    assert upstream.connections == 0


@pytest.mark.parametrize("recipient", [
    "victim%example.org@cabinet-kine.fr",       # percent hack
    "@relay.example:victim@example.org",        # source route
    "example.org!victim@cabinet-kine.fr",       # bang path
])
def test_routing_tricks_are_refused_with_or_without_auth(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        recipient: str) -> None:
    gw = make_gateway(relay_config)
    with connect(gw, login=False) as c:
        c.docmd("MAIL FROM:<camille@cabinet-kine.fr>")
        assert c.docmd(f"RCPT TO:<{recipient}>")[0] in (503, 530, 553)
    with connect(gw) as c:
        assert c.mail("camille@cabinet-kine.fr")[0] == 250
        code, _ = c.docmd(f"RCPT TO:<{recipient}>")
        assert code in (501, 553)
    assert upstream.messages == []


def test_bare_lf_smuggling_does_not_inject_a_second_message(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        start_data(c)
        smuggled = (
            b"From: camille@cabinet-kine.fr\r\nTo: a@example.org\r\nSubject: hi\r\n"
            b"Date: Sun, 29 Nov 2026 10:00:00 +0100\r\nMessage-ID: <a@b>\r\n\r\nhello\r\n"
            b"\n.\n"  # a bare-LF "end of data" some servers would honour
            b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            b"From: ceo@bank.example\r\n\r\nPay now\r\n"
            b"\r\n.\r\n"
        )
        c.send(smuggled)
        code, msg = c.getreply()
        assert code == 550
        assert b"smuggling" in msg
        assert c.noop()[0] == 250  # the conversation is still in sync
    assert upstream.messages == []


def test_wrong_password_then_too_many_failures(make_gateway: MakeGW,
                                               relay_config: Config) -> None:
    relay_config.auth.max_failures = 3
    gw = make_gateway(relay_config)
    c = connect(gw, login=False)
    bad = "PLAIN " + base64.b64encode(f"\0{USER}\0wrong-password-123".encode()).decode()
    assert c.docmd("AUTH", bad)[0] == 535
    assert c.docmd("AUTH", bad)[0] == 535
    code, msg = c.docmd("AUTH", bad)
    assert code == 421
    assert "Trop d'échecs".encode() in msg
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    c.close()
    # The gateway still serves the right password on a new connection.
    with connect(gw) as c2:
        assert c2.noop()[0] == 250


def test_unknown_user_is_refused(make_gateway: MakeGW, relay_config: Config) -> None:
    gw = make_gateway(relay_config)
    with connect(gw, login=False) as c, pytest.raises(smtplib.SMTPAuthenticationError):
        c.login("nobody", PASSWORD)


def test_auth_login_mechanism(make_gateway: MakeGW, relay_config: Config,
                              upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw, login=False) as c:
        c.user, c.password = USER, PASSWORD
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235
        assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message()) == {}
    assert len(upstream.messages) == 1


# --- upstream auth mode ---------------------------------------------------

@pytest.fixture
def auth_upstream(tmp_path: Path) -> Iterator[CapturingUpstream]:
    (tmp_path / "auth-up").mkdir()
    up = CapturingUpstream(tmp_path / "auth-up",
                           users={"camille@orange.fr": "orange-password-9"}).start()
    yield up
    up.stop()


def test_upstream_mode_checks_credentials_against_upstream_and_reuses_that_session(
        tmp_path: Path, make_gateway: MakeGW, auth_upstream: CapturingUpstream) -> None:
    cfg = auth_upstream.configure(config_for_tests(tmp_path / "data"))
    assert cfg.auth_mode == "upstream"
    gw = make_gateway(cfg)
    ctx = client_context(gw)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as c:
        c.starttls(context=ctx)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("camille@orange.fr", "not-the-password")
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as c:
        c.starttls(context=ctx)
        c.login("camille@orange.fr", "orange-password-9")
        for _ in range(2):
            assert c.sendmail("camille@orange.fr", ["a@example.org"], make_message()) == {}
    assert len(auth_upstream.messages) == 2
    before = auth_upstream.connections
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as c:
        c.starttls(context=ctx)
        c.login("camille@orange.fr", "orange-password-9")
        for _ in range(3):
            assert c.sendmail("camille@orange.fr", ["a@example.org"], make_message()) == {}
    # the upstream session opened to check the password relays all three messages
    assert auth_upstream.connections == before + 1
    assert len(auth_upstream.messages) == 5
    assert not cfg.users_file.exists()  # vigie stores no password in this mode


def test_upstream_mode_with_upstream_down_gives_454(
        tmp_path: Path, make_gateway: MakeGW) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config_for_tests(tmp_path / "data", upstream={"host": "127.0.0.1", "port": port})
    gw = make_gateway(cfg)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as c:
        c.starttls(context=client_context(gw))
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            c.login("camille@orange.fr", "orange-password-9")
        assert err.value.smtp_code == 454


def test_local_mode_relays_with_the_configured_upstream_account(
        tmp_path: Path, make_gateway: MakeGW, auth_upstream: CapturingUpstream) -> None:
    cfg = auth_upstream.configure(config_for_tests(tmp_path / "data"))
    cfg.auth.mode = "local"
    cfg.upstream.username = "camille@orange.fr"
    pw = tmp_path / "upstream-password"
    pw.write_text("orange-password-9\n")
    cfg.upstream.password_file = str(pw)
    gw = make_gateway(cfg)
    with connect(gw) as c:
        assert c.sendmail("camille@orange.fr", ["a@example.org"], make_message()) == {}
    assert len(auth_upstream.messages) == 1


def test_tls_client_certificate_is_ours(make_gateway: MakeGW, relay_config: Config) -> None:
    gw = make_gateway(relay_config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as c:
        c.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(context=ssl.create_default_context())  # not trusted by default
