"""Relaying through vigie over real loopback sockets: what the client and the upstream see."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable

import pytest

from gateway.config import Config
from gateway.engine import Engine
from gateway.model import Message
from gateway.testing import CapturingUpstream, GatewayThread, config_for_tests, make_message
from gateway.verdict import Finding
from tests.conftest import PASSWORD, USER, client_context, connect, start_data
from tests.quarantine_helpers import held_messages

MakeGW = Callable[..., GatewayThread]


def strip_received(content: bytes) -> tuple[bytes, bytes]:
    """Split off our Received field (the first header, with its continuation lines)."""
    assert content.startswith(b"Received: ")
    lines = content.split(b"\r\n")
    n = 1
    while lines[n].startswith((b"\t", b" ")):
        n += 1
    return b"\r\n".join(lines[:n]) + b"\r\n", b"\r\n".join(lines[n:])


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_relayed_message_is_byte_identical_but_for_our_received_line(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    raw = make_message(body="Ligne 1\r\n.point en début de ligne\r\n..deux\r\n\r\nfin é\r\n")
    with connect(gw) as c:
        refused = c.sendmail("camille@cabinet-kine.fr", ["a@example.org", "b@example.net"], raw,
                             mail_options=["BODY=8BITMIME"])
    assert refused == {}
    assert len(upstream.messages) == 1
    got = upstream.messages[0]
    received, rest = strip_received(got.content)
    assert rest == raw
    assert b"by vigie.test (vigie) with ESMTPSA" in received
    assert b"a@example.org" not in received  # no recipient address in headers we add
    assert got.mail_from == "camille@cabinet-kine.fr"
    assert got.rcpt_tos == ["a@example.org", "b@example.net"]
    assert "BODY=8BITMIME" in got.mail_options


def test_client_hears_the_upstream_answer(make_gateway: MakeGW, relay_config: Config,
                                          upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, text = c.data(make_message())
    assert code == 250
    assert b"queued as UP1" in text


def test_one_upstream_connection_serves_several_messages(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        for i in range(3):
            c.sendmail("camille@cabinet-kine.fr", [f"p{i}@example.org"], make_message())
    assert len(upstream.messages) == 3
    assert upstream.connections == 1


def test_per_recipient_refusals_reach_the_client(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    upstream.behaviour.rcpt_replies["nobody@example.org"] = "550 5.1.1 No such user here"
    upstream.behaviour.rcpt_replies["later@example.org"] = "450 4.2.1 Mailbox busy"
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        refused = c.sendmail("camille@cabinet-kine.fr",
                             ["ok@example.org", "nobody@example.org", "later@example.org"],
                             make_message())
    assert refused == {"nobody@example.org": (550, b"5.1.1 No such user here"),
                       "later@example.org": (450, b"4.2.1 Mailbox busy")}
    assert [m.rcpt_tos for m in upstream.messages] == [["ok@example.org"]]


def test_all_recipients_refused_means_nothing_sent(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    upstream.behaviour.rcpt_replies["nobody@example.org"] = "550 5.1.1 No such user here"
    gw = make_gateway(relay_config)
    with connect(gw) as c, pytest.raises(smtplib.SMTPRecipientsRefused):
        c.sendmail("camille@cabinet-kine.fr", ["nobody@example.org"], make_message())
    assert upstream.messages == []


@pytest.mark.parametrize(("upstream_reply", "client_code", "text"), [
    ("451 4.3.0 Upstream busy, come back later", 451, b"Upstream busy"),
    ("421 4.3.2 Upstream shutting down", 451, b"shutting down"),
    ("550 5.7.1 Upstream refuses this content", 550, b"Upstream refuses this content"),
    ("554 5.6.0 Upstream message rejected", 554, b"Upstream message rejected"),
])
def test_upstream_refusal_at_data(make_gateway: MakeGW, relay_config: Config,
                                  upstream: CapturingUpstream, upstream_reply: str,
                                  client_code: int, text: bytes) -> None:
    upstream.behaviour.data_reply = upstream_reply
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, msg = c.data(make_message())
    assert code == client_code
    assert text in msg
    assert upstream.messages == []


@pytest.mark.parametrize(("upstream_reply", "code"), [
    ("553 5.7.1 Sender not owned by user", 553),
    ("451 4.3.0 Try again later", 451),
])
def test_upstream_refusal_at_mail_reaches_the_client_at_rcpt(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        upstream_reply: str, code: int) -> None:
    """vigie answers MAIL at once and gives the next hop's answer at the first RCPT
    (the client's RCPT travels while the upstream answers): a refused sender is then
    the answer to every recipient, so nothing is sent."""
    upstream.behaviour.mail_reply = upstream_reply
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        assert c.mail("someone-else@example.com")[0] == 250
        for rcpt in ("a@example.org", "b@example.org"):
            got, msg = c.rcpt(rcpt)
            assert got == code
            assert upstream_reply[10:].encode() in msg
            if code >= 500:
                assert "Expéditeur refusé".encode() in msg and b"Sender refused" in msg
        assert c.docmd("DATA")[0] == 503  # no recipient accepted: no message
        c.rset()
        upstream.behaviour.mail_reply = None
        assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message()) == {}
    assert len(upstream.messages) == 1
    with connect(gw) as c:  # smtplib's sendmail sees the refusal too, and sends nothing
        upstream.behaviour.mail_reply = upstream_reply
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("someone-else@example.com", ["a@example.org"], make_message())
    assert len(upstream.messages) == 1


def test_upstream_down_gives_4xx_and_the_client_keeps_its_mail(
        make_gateway: MakeGW, relay_config: Config) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    relay_config.upstream.port = free_port  # nothing listens there
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        code, msg = c.mail("camille@cabinet-kine.fr")
    assert code == 451
    assert b"injoignable" in msg and b"cannot be reached" in msg


def test_upstream_slow_past_timeout_gives_4xx_and_no_duplicate(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.upstream.data_timeout = 1.0
    upstream.behaviour.data_delay = 3.0
    gw = make_gateway(relay_config)
    raw = make_message()
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, msg = c.data(raw)
        assert code == 451
        assert b"Nothing is lost" in msg
        # The client retries on the same connection once upstream is fast again.
        upstream.behaviour.data_delay = 0.0
        assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], raw) == {}
    time.sleep(3.5)  # past the slow upstream's delay: it must not have delivered anything
    assert len(upstream.messages) == 1


def test_client_disconnecting_mid_data_loses_and_duplicates_nothing(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    c = connect(gw)
    start_data(c)
    c.send(b"From: camille@cabinet-kine.fr\r\nSubject: half\r\n\r\nhalf a mess")
    c.sock.close()  # type: ignore[union-attr]
    time.sleep(0.5)
    assert upstream.messages == []
    # The gateway is unharmed and the next client gets through.
    with connect(gw) as c2:
        assert c2.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message()) == {}
    assert len(upstream.messages) == 1


def test_upstream_certificate_is_verified_by_default(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.upstream.ca_file = ""  # the upstream's self-signed cert is not trusted
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        code, _msg = c.mail("camille@cabinet-kine.fr")
    assert code == 451
    assert upstream.messages == []


def test_upstream_without_starttls_is_refused_when_tls_required(
        tmp_path: object, make_gateway: MakeGW) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    plain = CapturingUpstream(tmp_path / "plain", tls=False)
    (tmp_path / "plain").mkdir()
    plain.start()
    try:
        cfg = plain.configure(config_for_tests(tmp_path / "data"))
        cfg.upstream.tls = "starttls"  # required, but this upstream does not offer it
        cfg.auth.mode = "local"
        gw = make_gateway(cfg)
        with connect(gw) as c:
            code, _ = c.mail("camille@cabinet-kine.fr")
        assert code == 451
        assert plain.messages == []
    finally:
        plain.stop()


def test_crashing_check_gives_451(make_gateway: MakeGW, relay_config: Config,
                                  upstream: CapturingUpstream) -> None:
    class Boom:
        name = "boom"
        description = "always crashes"

        async def run(self, message: Message) -> list[Finding]:
            raise RuntimeError("secret patient text 1 85 05 78 006 084 36")

    gw = make_gateway(relay_config, engine=Engine(relay_config, checks=[Boom()]))
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, msg = c.data(make_message())
    assert code == 451
    assert b"secret" not in msg and b"85 05" not in msg
    assert upstream.messages == []


def test_check_timeout_gives_451(make_gateway: MakeGW, relay_config: Config,
                                 upstream: CapturingUpstream) -> None:
    import asyncio

    class Slow:
        name = "slow"
        description = "never finishes in time"

        async def run(self, message: Message) -> list[Finding]:
            await asyncio.sleep(10)
            return []

    relay_config.limits.check_timeout = 0.3
    gw = make_gateway(relay_config, engine=Engine(relay_config, checks=[Slow()]))
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, _ = c.data(make_message())
    assert code == 451
    assert upstream.messages == []


def test_hygiene_reject_is_explained_in_french_then_english(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    raw = b"To: a@example.org\r\nSubject: sans expediteur\r\n\r\nbody\r\n"
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, msg = c.data(raw)
    assert code == 550
    text = msg.decode("utf-8")
    assert text.index("Message refusé") < text.index("Message refused")
    assert "From" in text
    assert upstream.messages == []


def test_tag_adds_one_header_and_a_subject_prefix(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "tag"}}}
    gw = make_gateway(relay_config)
    raw = make_message(subject="Bilan", message_id=False)
    with connect(gw) as c:
        assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], raw) == {}
    _, rest = strip_received(upstream.messages[0].content)
    first, _, after = rest.partition(b"\r\n")
    # outbound: the recipient outside is not told what was found
    assert first == b"X-Vigie-Verdict: tag"
    assert after == raw.replace(b"Subject: Bilan", b"Subject: [vigie] Bilan")


def test_hold_keeps_the_message_durably_and_answers_250(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    gw = make_gateway(relay_config)
    raw = make_message(message_id=False)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        c.rcpt("a@example.org")
        code, msg = c.data(raw)
    assert code == 250
    assert b"retenu" in msg
    assert upstream.messages == []
    held = held_messages(relay_config)
    assert len(held) == 1
    assert held[0].raw == raw
    assert held[0].rcpt_tos == ["a@example.org"]
    assert held[0].mail_options == ["BODY=8BITMIME"]
    assert held[0].summary.symbols == ["HYG_NO_MESSAGE_ID"]
    assert held[0].summary.subject is None  # outbound: never the subject
    assert held[0].summary.rcpt_domains == ["example.org"]
    assert held[0].summary.id in msg.decode()
    # at rest the message is encrypted: its bytes are nowhere in clear
    store = relay_config.data_dir / "quarantine"
    for path in store.rglob("*"):
        if path.is_file():
            assert b"Rendez-vous" not in path.read_bytes(), path
    assert not list(store.rglob(".*.tmp"))
    assert not (relay_config.data_dir / "hold").exists()


def test_too_many_recipients(make_gateway: MakeGW, relay_config: Config) -> None:
    relay_config.limits.recipients = 2
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        assert c.rcpt("a@example.org")[0] == 250
        assert c.rcpt("b@example.org")[0] == 250
        assert c.rcpt("c@example.org")[0] == 452


def test_message_size_limit(make_gateway: MakeGW, relay_config: Config,
                            upstream: CapturingUpstream) -> None:
    relay_config.limits.message_size = 10_000
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        assert c.has_extn("size") and c.esmtp_features["size"] == "10000"
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        code, _ = c.data(make_message(body=("x" * 70 + "\r\n") * 300))
    assert code == 552
    assert upstream.messages == []


def test_implicit_tls_port(make_gateway: MakeGW, relay_config: Config,
                           upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with smtplib.SMTP_SSL("127.0.0.1", gw.tls_port, context=client_context(gw),
                          timeout=15) as c:
        c.ehlo()
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        assert not c.has_extn("starttls")
        c.login(USER, PASSWORD)
        assert c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message()) == {}
    assert len(upstream.messages) == 1
    assert b"with ESMTPSA" in upstream.messages[0].content


def test_embedded_default_delivers_into_the_local_maildir(
        make_gateway: MakeGW, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    cfg = config_for_tests(tmp_path / "data")
    gw = make_gateway(cfg)
    raw = make_message()
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("patient@gmail.com")
        code, reply = c.data(raw)
    assert code == 250
    files = list((cfg.data_dir / "maildir" / "new").iterdir())
    assert len(files) == 1
    received, rest = strip_received(files[0].read_bytes())
    assert rest == raw
    # the reply names the queue id of the log line and the Received field
    queue_id = received.split(b" id ")[1].split(b";")[0]
    assert b"(id " + queue_id + b")" in reply
    assert list((cfg.data_dir / "maildir" / "tmp").iterdir()) == []


def test_non_ascii_address_without_smtputf8_is_refused_for_good(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        c.send("MAIL FROM:<camillé@cabinet.fr>\r\n".encode())
        code, msg = c.getreply()
        assert code == 553 and b"SMTPUTF8" in msg
        assert c.mail("camille@cabinet-kine.fr")[0] == 250
        c.send("RCPT TO:<pé@exemple.fr>\r\n".encode())
        code, _ = c.getreply()
        assert code == 553
        assert c.rcpt("a@example.org")[0] == 250  # the upstream session is still fine
        code, _ = c.data(make_message())
        assert code == 250
    assert len(upstream.messages) == 1


def test_smtputf8_addresses_are_relayed(make_gateway: MakeGW, relay_config: Config,
                                        upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        assert c.has_extn("smtputf8")
        assert c.sendmail("camillé@cabinet.fr", ["hélène@exemple.fr"], make_message(),
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    assert upstream.messages[0].mail_from == "camillé@cabinet.fr"
    assert upstream.messages[0].rcpt_tos == ["hélène@exemple.fr"]


def test_builtin_refusals_are_french_first(make_gateway: MakeGW, relay_config: Config) -> None:
    relay_config.limits.message_size = 10_000
    gw = make_gateway(relay_config)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as c:
        c.ehlo()
        code, msg = c.docmd("MAIL FROM:<a@b.fr>")
        assert code == 530 and b"Chiffrement obligatoire" in msg
    with connect(gw) as c:
        code, msg = c.docmd("MAIL FROM:<camille@cabinet-kine.fr> SIZE=20000")
        assert code == 552 and b"Message trop gros" in msg
        code, msg = c.docmd("RCPT TO:<postmaster>")
        assert code in (503, 553)
        code, msg = c.docmd("DATA")
        assert code == 503 and b"attendue" in msg


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096])
def test_data_read_in_any_chunking_gives_the_same_message(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        chunk: int) -> None:
    gw = make_gateway(relay_config)
    body = ("Fin de phrase.\r\n.ligne qui commence par un point\r\n..deux\r\n.\r\n"
            "x.\r\n" + "y" * 998 + "\r\nfin.\r\n")
    raw = make_message(body=body)
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    with connect(gw) as c:
        start_data(c, ["BODY=8BITMIME"])
        wire = stuffed + b".\r\n"
        for i in range(0, len(wire), chunk):
            c.sock.sendall(wire[i:i + chunk])  # type: ignore[union-attr]
        code, _ = c.getreply()
        assert code == 250
        assert c.noop()[0] == 250
    _, rest = strip_received(upstream.messages[0].content)
    assert rest == raw


def test_a_line_over_998_characters_is_refused(make_gateway: MakeGW, relay_config: Config,
                                              upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        start_data(c)
        c.send(make_message(body="z" * 1000 + "\r\n") + b".\r\n")
        code, msg = c.getreply()
        assert code == 500 and b"Ligne trop longue" in msg
        assert c.noop()[0] == 250
    assert upstream.messages == []


def test_finished_connections_are_freed_without_the_cycle_collector(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    import gc

    from gateway.smtp.server import VigieSMTP

    gw = make_gateway(relay_config)
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            with connect(gw) as c:
                c.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message())
        time.sleep(0.3)
        alive = [o for o in gc.get_objects() if isinstance(o, VigieSMTP)]
        assert alive == []
    finally:
        gc.enable()


def test_a_message_not_sent_after_the_early_data_leaves_nothing_upstream(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    """vigie asks the next hop for DATA while the client's content travels; a message
    then refused (a crashing check), or too big, must not reach the next hop in part,
    and the next message on the same connection goes through."""
    class Boom:
        name = "boom"
        description = "crashes on the first message only"
        calls = 0

        async def run(self, message: Message) -> list[Finding]:
            Boom.calls += 1
            if Boom.calls == 1:
                raise RuntimeError("boom")
            return []

    relay_config.limits.message_size = 10_000
    gw = make_gateway(relay_config, engine=Engine(relay_config, checks=[Boom()]))
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        assert c.data(make_message())[0] == 451
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("a@example.org")
        assert c.data(make_message(body="x" * 20_000 + "\r\n"))[0] == 552
        c.rset()
        assert c.sendmail("camille@cabinet-kine.fr", ["b@example.org"], make_message()) == {}
    assert [m.rcpt_tos for m in upstream.messages] == [["b@example.org"]]
    assert all(len(m.content) < 10_000 for m in upstream.messages)


def test_client_gone_after_data_drops_the_upstream_transaction(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    c = connect(gw)
    start_data(c)
    c.send(b"From: a@b.fr\r\nSubject: half\r\n\r\nhalf a message")
    c.close()
    assert wait_for(lambda: gw.gateway.pool is not None and len(gw.gateway.pool) == 0)
    time.sleep(0.3)
    send = connect(gw)
    assert send.sendmail("camille@cabinet-kine.fr", ["a@example.org"], make_message()) == {}
    send.quit()
    assert len(upstream.messages) == 1
    assert b"half a message" not in upstream.messages[0].content
