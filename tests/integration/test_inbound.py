"""The inbound listener over real loopback sockets: smtplib in, a capturing mailbox out."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.checks.hygiene import HygieneCheck
from gateway.config import Config
from gateway.engine import Engine
from gateway.testing import CapturingUpstream, GatewayThread, config_for_tests

MSG = (b"From: Dr Martin <martin@medecin.example>\r\nTo: camille@cabinet.test\r\n"
       b"Subject: Compte rendu\r\nDate: Mon, 30 Nov 2026 09:00:00 +0100\r\n"
       b"Message-ID: <cr-1@medecin.example>\r\n\r\nBonjour,\r\nle compte rendu suit.\r\n")


def inbound_config(tmp_path: Path, mailbox: CapturingUpstream | None = None, **inbound: object
                   ) -> Config:
    cfg = config_for_tests(tmp_path / "data")
    cfg.inbound.listen = ["127.0.0.1:0"]
    cfg.inbound.domains = ["cabinet.test"]
    cfg.inbound.addresses = ["secretariat@autre.test"]
    for key, value in inbound.items():
        setattr(cfg.inbound, key, value)
    if mailbox is not None:
        mailbox.configure_mailbox(cfg)
    return cfg


def hygiene_only(cfg: Config) -> Engine:
    return Engine(cfg, checks=[HygieneCheck(max_header_size=cfg.limits.header_size)])


@pytest.fixture
def inbound_gw(tmp_path: Path, upstream: CapturingUpstream,
               make_gateway: Callable[..., GatewayThread]) -> GatewayThread:
    cfg = inbound_config(tmp_path, upstream)
    return make_gateway(cfg, user=False, engine=hygiene_only(cfg))


def client(gw: GatewayThread) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", gw.inbound_port, timeout=15)


def test_mail_for_the_practice_reaches_the_mailbox(inbound_gw: GatewayThread,
                                                   upstream: CapturingUpstream) -> None:
    with client(inbound_gw) as c:
        c.ehlo("mx.medecin.example")
        assert not c.has_extn("auth")  # no AUTH offered on the inbound port
        assert c.has_extn("starttls")
        refused = c.sendmail("martin@medecin.example", ["camille@cabinet.test",
                                                        "SECRETARIAT@autre.test"], MSG)
    assert refused == {}
    assert len(upstream.messages) == 1
    got = upstream.messages[0]
    assert got.rcpt_tos == ["camille@cabinet.test", "SECRETARIAT@autre.test"]
    assert got.content.endswith(MSG)
    first = got.content.split(b"\r\n", 1)[0]
    assert first.startswith(b"Received: from mx.medecin.example ([127.0.0.1])")


def test_never_a_relay(inbound_gw: GatewayThread, upstream: CapturingUpstream) -> None:
    with client(inbound_gw) as c:
        c.ehlo("spammer.example")
        c.mail("x@spammer.example")
        code, text = c.rcpt("victim@gmail.com")
        assert code == 550 and b"5.7.1" in text and b"pas de relais" in text
        code, _ = c.rcpt("camille@cabinet.test.evil.example")
        assert code == 550
        code, _ = c.rcpt("camille%gmail.com@cabinet.test")
        assert code == 553
        code, _ = c.docmd("DATA")
        assert code == 503
    assert upstream.messages == []


def test_no_auth_on_the_inbound_port(inbound_gw: GatewayThread) -> None:
    with client(inbound_gw) as c:
        c.ehlo("x.example")
        c.starttls(context=ssl._create_unverified_context())
        c.ehlo("x.example")
        assert not c.has_extn("auth")
        code, text = c.docmd("AUTH", "PLAIN AGRlbW8AZGVtbw==")
        assert code == 502 and b"Pas d'authentification" in text


def test_starttls_is_offered_and_works(inbound_gw: GatewayThread,
                                       upstream: CapturingUpstream) -> None:
    with client(inbound_gw) as c:
        c.starttls(context=ssl.create_default_context(cafile=inbound_gw.cafile))
        c.sendmail("martin@medecin.example", ["camille@cabinet.test"], MSG)
    assert b"with ESMTPS id" in upstream.messages[0].content.split(b"\r\n\r\n")[0]


def test_mailbox_down_means_4xx_and_nothing_lost(tmp_path: Path,
                                                 make_gateway: Callable[..., GatewayThread]
                                                 ) -> None:
    cfg = inbound_config(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        cfg.inbound.mailbox_host, cfg.inbound.mailbox_port = "127.0.0.1", s.getsockname()[1]
    cfg.inbound.mailbox_tls = "none"
    gw = make_gateway(cfg, user=False, engine=hygiene_only(cfg))
    with client(gw) as c, pytest.raises(smtplib.SMTPSenderRefused) as err:
        c.sendmail("martin@medecin.example", ["camille@cabinet.test"], MSG)
    assert 400 <= err.value.smtp_code < 500


def test_embedded_default_delivers_to_the_local_maildir(tmp_path: Path,
                                                        make_gateway: Callable[..., GatewayThread]
                                                        ) -> None:
    cfg = inbound_config(tmp_path)
    gw = make_gateway(cfg, user=False, engine=hygiene_only(cfg))
    with client(gw) as c:
        c.sendmail("martin@medecin.example", ["camille@cabinet.test"], MSG)
    delivered = list((tmp_path / "data" / "maildir" / "new").iterdir())
    assert len(delivered) == 1 and delivered[0].read_bytes().endswith(MSG)


def test_proxy_protocol_gives_the_real_client(tmp_path: Path, upstream: CapturingUpstream,
                                              make_gateway: Callable[..., GatewayThread]
                                              ) -> None:
    cfg = inbound_config(tmp_path, upstream, proxy_protocol=True)
    gw = make_gateway(cfg, user=False, engine=hygiene_only(cfg))
    with socket.create_connection(("127.0.0.1", gw.inbound_port), timeout=15) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n")
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        for cmd in (b"EHLO mx.example.net", b"MAIL FROM:<a@example.net>",
                    b"RCPT TO:<camille@cabinet.test>", b"DATA"):
            sock.sendall(cmd + b"\r\n")
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            assert line[:1] in (b"2", b"3"), line
        sock.sendall(MSG + b".\r\n")
        assert f.readline().startswith(b"250")
        sock.sendall(b"QUIT\r\n")
    assert b"([203.0.113.7])" in upstream.messages[0].content.split(b"\r\n", 2)[0] + \
        upstream.messages[0].content.split(b"\r\n", 2)[1]


def test_without_the_proxy_header_the_connection_is_refused(
        tmp_path: Path, upstream: CapturingUpstream,
        make_gateway: Callable[..., GatewayThread]) -> None:
    cfg = inbound_config(tmp_path, upstream, proxy_protocol=True)
    gw = make_gateway(cfg, user=False, engine=hygiene_only(cfg))
    with socket.create_connection(("127.0.0.1", gw.inbound_port), timeout=15) as sock:
        sock.sendall(b"EHLO direct.example\r\n")
        data = sock.recv(1024)
    assert not data.startswith(b"250")
    assert upstream.messages == []


def test_a_dangerous_attachment_from_outside_is_held_never_delivered(
        tmp_path: Path, upstream: CapturingUpstream,
        make_gateway: Callable[..., GatewayThread]) -> None:
    from email.message import EmailMessage

    from gateway.checks.attachments import AttachmentCheck
    from gateway.testing import eicar
    from tests.quarantine_helpers import held_messages

    cfg = inbound_config(tmp_path, upstream)
    engine = Engine(cfg, checks=[HygieneCheck(max_header_size=cfg.limits.header_size),
                                 AttachmentCheck.from_config(cfg)])
    gw = make_gateway(cfg, user=False, engine=engine)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = ("x@example.net", "camille@cabinet.test",
                                                 "Ordonnance")
    mail["Date"], mail["Message-ID"] = "Mon, 30 Nov 2026 09:00:00 +0100", "<o-1@example.net>"
    mail.set_content("Voir pièce jointe.")
    mail.add_attachment(eicar(), maintype="application", subtype="pdf",
                        filename="ordonnance.pdf")
    raw = mail.as_bytes().replace(b"\n", b"\r\n")
    with client(gw) as c:
        c.ehlo("mx.example.net")
        c.mail("x@example.net")
        c.rcpt("camille@cabinet.test")
        code, text = c.data(raw)
    assert code == 250 and "retenu" in text.decode()
    assert upstream.messages == []
    (held,) = held_messages(cfg)
    assert held.summary.category == "attachment" and "ATT_MALICIOUS" in held.summary.symbols


def test_a_bounce_with_the_null_sender_reaches_the_mailbox(inbound_gw: GatewayThread,
                                                           upstream: CapturingUpstream) -> None:
    bounce = MSG.replace(b"From: Dr Martin <martin@medecin.example>",
                         b"From: Mail Delivery System <MAILER-DAEMON@mx.example>")
    with client(inbound_gw) as c:
        c.ehlo("mx.example")
        code, _ = c.docmd("MAIL FROM:<>")
        assert code == 250
        code, text = c.rcpt("camille@cabinet.test")
        assert code == 250, text
        code, text = c.data(bounce)
        assert code == 250, text
    assert upstream.messages[0].mail_from in ("", "<>")


def test_the_sender_on_the_internet_never_reads_internal_hosts_or_mailbox_errors(
        tmp_path: Path, upstream: CapturingUpstream,
        make_gateway: Callable[..., GatewayThread]) -> None:
    cfg = inbound_config(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg.inbound.mailbox_host, cfg.inbound.mailbox_port = "127.0.0.1", dead
    cfg.inbound.mailbox_tls = "none"
    gw = make_gateway(cfg, user=False, engine=hygiene_only(cfg))
    with client(gw) as c:
        c.ehlo("mx.example.net")
        code, text = c.docmd("MAIL FROM:<a@example.net>")
        if code == 250:
            code, text = c.rcpt("camille@cabinet.test")
    assert code == 451
    assert str(dead).encode() not in text and b"127.0.0.1" not in text
    assert b"logiciel" not in text and b"retry later" in text
    # the mailbox's own 5xx text (it may name its files) is not passed on
    cfg2 = inbound_config(tmp_path / "b", upstream)
    upstream.behaviour.rcpt_replies["camille@cabinet.test"] = (
        "550 5.1.1 /var/spool/mail/camille: no such file")
    gw2 = make_gateway(cfg2, user=False, engine=hygiene_only(cfg2))
    with client(gw2) as c:
        c.ehlo("mx.example.net")
        c.mail("a@example.net")
        code, text = c.rcpt("camille@cabinet.test")
    assert code == 550 and b"5.1.1" in text and b"/var/spool" not in text


def test_a_bare_postmaster_is_accepted(inbound_gw: GatewayThread,
                                       upstream: CapturingUpstream) -> None:
    with client(inbound_gw) as c:
        c.ehlo("mx.example.net")
        c.mail("a@example.net")
        code, text = c.rcpt("postmaster")
        assert code == 250, text
        assert c.data(MSG)[0] == 250
    assert upstream.messages[0].rcpt_tos == ["postmaster@cabinet.test"]
