"""Upstream sessions of the shared account kept for the next client (mail programs open
a connection per message): reused, never past idle_timeout, and a session the upstream
dropped meanwhile costs the client nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, make_message
from tests.conftest import connect

MakeGW = Callable[..., GatewayThread]
FROM, TO = "camille@cabinet-kine.fr", ["confrere@example.org"]


def send(gw: GatewayThread, n: int = 1) -> None:
    for _ in range(n):
        with connect(gw) as client:
            assert client.sendmail(FROM, TO, make_message()) == {}


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.02)
    return pred()


def test_one_upstream_session_serves_client_after_client(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    send(gw, 4)
    assert len(upstream.messages) == 4
    assert upstream.connections == 1


def test_a_client_that_left_mid_transaction_leaves_a_clean_session(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    client = connect(gw)
    client.mail(FROM)
    client.rcpt(TO[0])
    client.close()  # gone without DATA or QUIT: the session is reset before it is kept
    time.sleep(0.2)
    send(gw)
    assert [m.rcpt_tos for m in upstream.messages] == [TO]
    assert upstream.connections == 1


def test_a_session_the_upstream_dropped_is_replaced_without_a_4xx(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    send(gw)
    upstream.drop_connections()  # the upstream's idle timeout
    send(gw)  # sendmail raises on any refusal
    assert len(upstream.messages) == 2
    assert upstream.connections == 2


def test_sessions_are_not_kept_past_idle_timeout(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.upstream.idle_timeout = 0.2
    gw = make_gateway(relay_config)
    send(gw)
    time.sleep(0.4)
    send(gw)
    assert upstream.connections == 2


def test_idle_sessions_zero_closes_each_session(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.upstream.idle_sessions = 0
    gw = make_gateway(relay_config)
    send(gw, 3)
    assert upstream.connections == 3


def test_upstream_auth_sessions_are_never_shared(
        make_gateway: MakeGW, tmp_path: Path) -> None:
    up = CapturingUpstream(tmp_path, users={"camille": "secret-password-1"}).start()
    try:
        from gateway.testing import config_for_tests

        cfg = up.configure(config_for_tests(tmp_path / "data"))
        cfg.auth.mode = "upstream"
        gw = make_gateway(cfg, user=False)
        send(gw, 2)
        assert len(up.messages) == 2
        assert up.connections == 2  # each client logs in with its own password
    finally:
        up.stop()


def test_stopping_vigie_closes_the_kept_sessions(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    send(gw)
    pool = gw.gateway.pool
    assert pool is not None and len(pool) == 1
    gw.stop()
    assert len(pool) == 0


def test_a_refused_data_command_leaves_a_clean_kept_session(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    """The upstream refuses the DATA command itself: the client hears it, and the kept
    session is reset, so later clients do not meet «nested MAIL command»."""
    gw = make_gateway(relay_config)
    upstream.behaviour.data_command_reply = "451 4.3.0 Try again later"
    with connect(gw) as client:
        client.mail(FROM)
        client.rcpt(TO[0])
        assert client.data(make_message())[0] == 451
    upstream.behaviour.data_command_reply = None
    send(gw, 2)  # sendmail raises on any refusal
    assert len(upstream.messages) == 2
    assert upstream.connections == 1


def test_next_message_after_a_too_big_one_waits_for_the_dropped_session(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    """The client is told 552 before the upstream's 354 came back; its next MAIL must
    not go out on the session that is about to be dropped."""
    relay_config.limits.message_size = 10_000
    upstream.behaviour.data_command_delay = 0.5
    gw = make_gateway(relay_config)
    with connect(gw) as client:
        client.mail(FROM)
        client.rcpt(TO[0])
        assert client.data(make_message(body=("x" * 70 + "\r\n") * 300))[0] == 552
        upstream.behaviour.data_command_delay = 0.0
        assert client.sendmail(FROM, TO, make_message()) == {}
    assert len(upstream.messages) == 1
    assert len(upstream.messages[0].content) < 10_000


def test_a_small_size_limit_is_said_in_kilobytes(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.limits.message_size = 10_000
    gw = make_gateway(relay_config)
    with connect(gw) as client:
        client.mail(FROM)
        client.rcpt(TO[0])
        code, text = client.data(make_message(body=("x" * 70 + "\r\n") * 300))
    assert code == 552
    assert b"maximum 10 Ko" in text and b"limit 10 KB" in text
