"""Release over real loopback SMTP, the digest through the real relay, the services
``vigie serve`` runs, and the quarantine CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import Config
from gateway.quarantine import actions, digest
from gateway.quarantine.scheduler import DigestService
from gateway.quarantine.store import HoldMeta
from gateway.smtp.server import Gateway
from gateway.testing import CapturingUpstream, GatewayThread, make_message
from tests.conftest import connect

ROOT = Path(__file__).resolve().parents[2]

# a line starting with a dot, 8-bit text, a long header: bytes must come back exact
RAW = make_message(subject="Bilan", body="Bonjour,\r\n.ligne avec un point\r\nà demain\r\n",
                   extra={"X-Long": "y" * 200})


def outbound_meta(**kw: object) -> HoldMeta:
    values: dict[str, object] = dict(
        direction="outbound", mail_from="camille@cabinet-kine.fr",
        rcpt_tos=["confrere@example.org", "autre@example.net"],
        mail_options=["BODY=8BITMIME"], symbols=["PATIENT_DATA_WEBMAIL_MEDIUM"],
        category="patient_data")
    values.update(kw)
    return HoldMeta(**values)  # type: ignore[arg-type]


@pytest.fixture
async def gateway(relay_config: Config) -> AsyncIterator[Gateway]:
    gw = Gateway(relay_config)
    yield gw
    gw.quarantine.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_release_sends_the_exact_bytes_to_the_upstream(
        gateway: Gateway, upstream: CapturingUpstream) -> None:
    q = gateway.quarantine
    mid = await q.store.hold(RAW, outbound_meta())
    result = await actions.release(q, mid, actions.gateway_hops(gateway), "camille")
    assert result.ok and result.code == 250 and result.status == "released"
    assert "queued as UP1" in result.reply
    [got] = upstream.messages
    assert got.content.endswith(RAW)  # the original bytes, below our trace lines
    assert got.content.startswith(b"Received: from quarantine by ")
    assert b"X-Vigie-Released: by camille;" in got.content[:-len(RAW)]
    assert got.mail_from == "camille@cabinet-kine.fr"
    assert got.rcpt_tos == ["confrere@example.org", "autre@example.net"]
    assert got.mail_options == ["BODY=8BITMIME"]
    s = await q.store.get(mid)
    assert s is not None and s.status == "released" and s.status_by == "camille"
    assert s.release_reply is not None and s.release_reply.startswith("250")
    entries, _ = await q.audit.list()
    assert (entries[0].action, entries[0].who, entries[0].message_id) == (
        "release", "camille", mid)
    assert entries[0].details["reply_code"] == 250
    with pytest.raises(actions.AlreadyDone):  # a second click does not send it twice
        await actions.release(q, mid, actions.gateway_hops(gateway), "camille")
    assert len(upstream.messages) == 1


async def test_release_to_a_down_upstream_keeps_it_held_then_succeeds(
        relay_config: Config, upstream: CapturingUpstream) -> None:
    live_port = relay_config.upstream.port
    relay_config.upstream.port = free_port()  # nothing listens there
    gw = Gateway(relay_config)
    try:
        q = gw.quarantine
        mid = await q.store.hold(RAW, outbound_meta())
        result = await actions.release(q, mid, actions.gateway_hops(gw), "camille")
        assert not result.ok and 400 <= result.code < 500 and result.status == "held"
        assert "réessayez plus tard" in result.fr
        s = await q.store.get(mid)
        assert s is not None and s.status == "held"
        assert s.release_reply is not None and s.release_reply.startswith("4")
        assert upstream.messages == []
        relay_config.upstream.port = live_port  # the upstream is back: retry
        result = await actions.release(q, mid, actions.gateway_hops(gw), "camille")
        assert result.ok
        assert upstream.messages[0].content.endswith(RAW)
        entries, _ = await q.audit.list(action="release")
        assert [e.details["ok"] for e in entries] == [True, False]
    finally:
        gw.quarantine.close()


async def test_release_refused_for_good_is_recorded(
        gateway: Gateway, upstream: CapturingUpstream) -> None:
    upstream.behaviour.data_reply = "554 5.7.1 Message refused by policy"
    q = gateway.quarantine
    mid = await q.store.hold(RAW, outbound_meta())
    result = await actions.release(q, mid, actions.gateway_hops(gateway), None)
    assert not result.ok and result.code == 554 and result.status == "held"
    s = await q.store.get(mid)
    assert s is not None and s.release_reply == "554 5.7.1 Message refused by policy"
    upstream.behaviour.data_reply = None
    upstream.behaviour.rcpt_replies = {"confrere@example.org": "550 5.1.1 No such user"}
    result = await actions.release(q, mid, actions.gateway_hops(gateway), None)
    assert result.ok  # delivered to the recipient the upstream took
    assert upstream.messages[0].rcpt_tos == ["autre@example.net"]


async def test_inbound_release_goes_to_the_mailbox(relay_config: Config) -> None:
    gw = Gateway(relay_config)  # no [inbound] mailbox_host: the local Maildir
    try:
        q = gw.quarantine
        mid = await q.store.hold(RAW, HoldMeta("inbound", "x@example.org",
                                               ["camille@cabinet-kine.fr"], subject="Bilan"))
        result = await actions.release(q, mid, actions.gateway_hops(gw), "camille")
        assert result.ok
        [delivered] = list((relay_config.data_dir / "maildir" / "new").iterdir())
        assert delivered.read_bytes().endswith(RAW)
    finally:
        gw.quarantine.close()


async def test_delete_and_allow(gateway: Gateway) -> None:
    q = gateway.quarantine
    spam = await q.store.hold(RAW, HoldMeta("inbound", "spam@example.org",
                                            ["camille@cabinet-kine.fr"], category="spam",
                                            symbols=["HYG_NO_DATE"]))
    useless = await actions.allow_sender(q, spam, "camille")  # it would lift nothing
    assert not useless.ok and "ne change rien" in useless.fr
    inbound = await q.store.hold(RAW, HoldMeta("inbound", "Bob@Example.org",
                                               ["camille@cabinet-kine.fr"],
                                               category="impersonation",
                                               symbols=["IMP_NAME_KNOWN_WRONG_ADDRESS"]))
    result = await actions.allow_sender(q, inbound, "camille")
    assert result.ok and "bob@example.org" in result.fr.lower()
    assert await q.allow.is_allowed("bob@example.org", "inbound")
    outbound = await q.store.hold(RAW, outbound_meta())
    refused = await actions.allow_sender(q, outbound, "camille")
    assert not refused.ok and "données de patient" in refused.fr
    assert not await q.allow.is_allowed("camille@cabinet-kine.fr")
    result = await actions.delete(q, inbound, "camille")
    assert result.ok
    assert not (q.store.blobs / inbound).exists()
    entries, _ = await q.audit.list()
    assert [e.action for e in entries] == ["delete", "allow"]


async def test_digest_goes_through_the_relay_only_when_something_was_held(
        gateway: Gateway, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.digest.recipients = ["camille@cabinet-kine.fr", "secretariat@cabinet-kine.fr"]
    relay_config.digest.public_url = "https://vigie.cabinet-kine.fr"
    q = gateway.quarantine
    outcome = await digest.run_digest(q, relay_config, gateway.hop_factory)
    assert not outcome.sent and outcome.count == 0 and upstream.messages == []
    await q.store.hold(RAW, outbound_meta())
    outcome = await digest.run_digest(q, relay_config, gateway.hop_factory)
    assert outcome.sent and outcome.count == 1 and outcome.code == 250
    [got] = upstream.messages
    assert got.rcpt_tos == relay_config.digest.recipients
    assert got.mail_from == "vigie@vigie.test"
    msg = email.message_from_bytes(got.content, policy=email.policy.default)
    assert msg["Subject"] == "vigie : 1 message retenu"
    assert b"Bilan" not in got.content and b"point" not in got.content
    relay_config.digest.send_empty = True
    await q.store.set_status((await q.store.list())[0][0].id, "deleted")
    outcome = await digest.run_digest(q, relay_config, gateway.hop_factory)
    assert outcome.sent and outcome.count == 0 and len(upstream.messages) == 2


async def test_digest_service_sends_at_the_configured_time(
        gateway: Gateway, relay_config: Config, upstream: CapturingUpstream) -> None:
    relay_config.digest.recipients = ["camille@cabinet-kine.fr"]
    relay_config.digest.time = "08:00"
    await gateway.quarantine.store.hold(RAW, outbound_meta())
    due = digest.next_run(datetime.now(UTC), "08:00", ZoneInfo("Europe/Paris")).timestamp()
    started = time.monotonic()

    def clock() -> float:  # 0.3 s before 08:00 in Paris, then running
        return due - 0.3 + (time.monotonic() - started)

    service = DigestService(gateway.quarantine, relay_config, gateway.hop_factory, clock)
    await service.start()
    try:
        for _ in range(100):
            if upstream.messages:
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
    assert len(upstream.messages) == 1
    assert service.last_outcome is not None and service.last_outcome.sent
    # the next digest starts where this one ended; after days off, it covers them
    now = clock()
    assert service._since(now) == pytest.approx(now - 86400)
    service._sent(now - 3 * 86400)
    assert service._since(now) == pytest.approx(now - 3 * 86400)
    service._sent(now - 90 * 86400)
    assert service._since(now) == pytest.approx(now - 30 * 86400)


def test_held_over_smtp_then_released_arrives_unchanged(
        make_gateway: Callable[..., GatewayThread], relay_config: Config,
        upstream: CapturingUpstream) -> None:
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    gw = make_gateway(relay_config)
    raw = make_message(message_id=False)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr", ["BODY=8BITMIME"])
        c.rcpt("confrere@example.org")
        code, msg = c.data(raw)
    assert code == 250 and upstream.messages == []
    mid = msg.decode().split("(id ")[1].split(")")[0]
    gateway = gw.gateway
    result = gw._lt.run(actions.release(gateway.quarantine, mid, actions.gateway_hops(gateway),
                                        "camille"))
    assert result.ok
    assert upstream.messages[0].content.endswith(raw)


def _vigie(cfg_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "-c", str(cfg_path), *args],
                          cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=60)


def test_cli(tmp_path: Path, upstream: CapturingUpstream) -> None:
    cfg_path = tmp_path / "vigie.toml"
    cfg_path.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[server]\nhostname = "vigie.test"\n'
        f'[upstream]\nhost = "localhost"\nport = {upstream.port}\n'
        f'ca_file = "{upstream.cert}"\n[auth]\nmode = "local"\n'
        '[digest]\nrecipients = ["camille@cabinet-kine.fr"]\n'
        'public_url = "https://vigie.cabinet-kine.fr"\n')
    from gateway.config import load
    from gateway.quarantine.service import Quarantine

    q = Quarantine.open(load(cfg_path))
    mid = q.store.hold_sync(RAW, dataclasses.replace(outbound_meta(), queue_id="CLI0000001"))
    q.close()
    listing = _vigie(cfg_path, "quarantine", "list")
    assert listing.returncode == 0, listing.stderr
    assert mid in listing.stdout and "example.net, example.org" in listing.stdout
    assert "Bilan" not in listing.stdout
    dry = _vigie(cfg_path, "digest", "--dry-run")
    assert dry.returncode == 0 and "vigie.cabinet-kine.fr/a/" in dry.stdout
    # a printed digest carries placeholders, never working release links
    assert "/a/LIEN-D-EXEMPLE-inactif-dry-run" in dry.stdout
    assert not re.search(r"/a/[A-Za-z0-9_-]{43}\b", dry.stdout)
    assert upstream.messages == []
    released = _vigie(cfg_path, "quarantine", "release", mid)
    assert released.returncode == 0, released.stderr
    assert "libéré" in released.stdout
    assert upstream.messages[0].content.endswith(RAW)
    again = _vigie(cfg_path, "quarantine", "release", mid)
    assert again.returncode == 1 and "déjà libéré" in again.stderr
    missing = _vigie(cfg_path, "quarantine", "delete", "NOSUCH1234")
    assert missing.returncode == 1 and "introuvable" in missing.stderr
    assert "Traceback" not in missing.stderr + again.stderr


def test_a_hold_that_cannot_be_written_is_a_4xx_and_nothing_is_lost(
        make_gateway: Callable[..., GatewayThread], relay_config: Config,
        upstream: CapturingUpstream) -> None:
    relay_config.policy = {"symbols": {"HYG_NO_MESSAGE_ID": {"action": "hold"}}}
    blobs = relay_config.data_dir / "quarantine" / "blobs"
    blobs.parent.mkdir(parents=True)
    blobs.write_text("in the way")  # the blob folder cannot be created: a disk problem
    gw = make_gateway(relay_config)
    with connect(gw) as c:
        c.mail("camille@cabinet-kine.fr")
        c.rcpt("confrere@example.org")
        code, msg = c.data(make_message(message_id=False))
    assert code == 451, msg  # the client keeps the message and retries
    assert "Mise en attente impossible" in msg.decode()
    assert upstream.messages == []


async def test_release_of_inbound_mail_drops_a_forged_authentication_results_in_our_name(
        gateway: Gateway, upstream: CapturingUpstream) -> None:
    from gateway.quarantine.store import HoldMeta

    gateway.cfg.inbound.mailbox_host = "localhost"
    upstream.configure_mailbox(gateway.cfg)
    forged = (f"Authentication-Results: {gateway.cfg.hostname}; spf=pass; dmarc=pass\r\n"
              .encode() + RAW)
    mid = await gateway.quarantine.store.hold(forged, HoldMeta(
        direction="inbound", mail_from="x@example.net", rcpt_tos=["camille@cabinet.test"],
        mail_options=[], symbols=["DMARC_FAIL_REJECT"], reasons=[], category="impersonation",
        subject="s", auth_user=None, queue_id="Q"))
    result = await actions.release(gateway.quarantine, mid, actions.gateway_hops(gateway),
                                   "camille")
    assert result.ok
    got = upstream.messages[0].content
    assert got.endswith(RAW) and b"Authentication-Results" not in got
