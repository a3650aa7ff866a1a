"""The quarantine store: round trips, encryption at rest, listing, purge, crash safety."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, load
from gateway.quarantine.crypto import QuarantineKeyError
from gateway.quarantine.scheduler import migrate_hold_folder
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import Gone, HoldMeta, NotFound
from gateway.testing import config_for_tests, make_message
from gateway.verdict import Reason

ROOT = Path(__file__).resolve().parents[2]
NIR = "1 85 05 78 006 084 36"
BODY = f"Bilan de Mme Martin, lombalgie chronique, NIR {NIR}\r\n"


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return config_for_tests(tmp_path / "data")


@pytest.fixture
async def q(cfg: Config) -> AsyncIterator[Quarantine]:
    quarantine = Quarantine.open(cfg)
    yield quarantine
    quarantine.close()


def outbound(**kw: object) -> HoldMeta:
    values: dict[str, object] = dict(
        direction="outbound", mail_from="camille@cabinet-kine.fr",
        rcpt_tos=["martin.patient@gmail.com", "x@orange.fr"], mail_options=["BODY=8BITMIME"],
        symbols=["PATIENT_DATA_WEBMAIL_HIGH", "PD_NIR"],
        reasons=[Reason("données de patient", "patient data")], category="patient_data",
        subject="Bilan lombalgie Mme Martin", queue_id="ABCDEF0123")
    values.update(kw)
    return HoldMeta(**values)  # type: ignore[arg-type]


async def test_round_trip_keeps_exact_bytes_and_envelope(q: Quarantine) -> None:
    raw = make_message(subject="Bilan", body=BODY) + b"\x00\xff odd bytes\r\n"
    mid = await q.store.hold(raw, outbound())
    assert mid == "ABCDEF0123"  # the queue id the SMTP reply and the log line name
    held = await q.store.open(mid)
    assert held.raw == raw
    assert held.mail_from == "camille@cabinet-kine.fr"
    assert held.rcpt_tos == ["martin.patient@gmail.com", "x@orange.fr"]
    assert held.mail_options == ["BODY=8BITMIME"]
    s = held.summary
    assert (s.direction, s.status, s.size, s.category) == ("outbound", "held", len(raw),
                                                            "patient_data")
    assert s.rcpt_domains == ["gmail.com", "orange.fr"]
    assert s.symbols == ["PATIENT_DATA_WEBMAIL_HIGH", "PD_NIR"]
    assert await q.store.raw(mid) == raw


async def test_outbound_metadata_has_no_subject_nor_recipient_address(q: Quarantine,
                                                                      cfg: Config) -> None:
    mid = await q.store.hold(make_message(subject="Bilan lombalgie", body=BODY), outbound())
    s = await q.store.get(mid)
    assert s is not None and s.subject is None
    assert "martin.patient" not in repr(s)
    # nothing of the message, nor a recipient address, is in clear anywhere on disk
    for path in (cfg.data_dir / "quarantine").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (b"lombalgie", NIR.encode(), b"martin.patient", b"Martin"):
                assert secret not in data, (path, secret)


async def test_inbound_keeps_its_subject(q: Quarantine) -> None:
    mid = await q.store.hold(make_message(), outbound(direction="inbound", subject="Facture",
                                                      queue_id=""))
    s = await q.store.get(mid)
    assert s is not None and s.subject == "Facture" and len(mid) == 10


async def test_ids_never_collide(q: Quarantine) -> None:
    first = await q.store.hold(b"Subject: a\r\n\r\n", outbound())
    second = await q.store.hold(b"Subject: b\r\n\r\n", outbound())
    assert first != second
    assert await q.store.raw(second) == b"Subject: b\r\n\r\n"


async def test_key_file_is_private_and_a_wrong_key_is_a_clear_error(cfg: Config) -> None:
    q = Quarantine.open(cfg)
    mid = await q.store.hold(b"Subject: a\r\n\r\nx\r\n", outbound())
    q.close()
    key = cfg.data_dir / "quarantine.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cfg.quarantine.key = base64.b64encode(b"k" * 32).decode()
    other = Quarantine.open(cfg)
    with pytest.raises(QuarantineKeyError, match="pas la clé qui a chiffré") as caught:
        await other.store.open(mid)
    assert "VIGIE_QUARANTINE_KEY" in str(caught.value)
    assert "configuration invalide" not in str(caught.value)
    other.close()
    key.write_text("not base64 at all")
    cfg.quarantine.key = ""
    with pytest.raises(ConfigError, match="clé de quarantaine invalide"):
        Quarantine.open(cfg)


async def test_a_lost_key_file_is_not_replaced_when_something_is_sealed(
        cfg: Config) -> None:
    q = Quarantine.open(cfg)
    await q.store.hold(b"Subject: a\r\n\r\nx\r\n", outbound())
    q.close()
    key = cfg.data_dir / "quarantine.key"
    key.unlink()
    with pytest.raises(QuarantineKeyError) as caught:
        Quarantine.open(cfg)
    text = str(caught.value)
    assert str(key) in text and "sauvegarde" in text and "backup" in text
    assert "configuration invalide" not in text
    assert not key.exists()


async def test_a_lost_key_file_is_not_replaced_when_a_secret_is_saved(cfg: Config) -> None:
    q = Quarantine.open(cfg)
    await q.secrets.put("signal_spam", b"login:password")
    q.close()
    (cfg.data_dir / "quarantine.key").unlink()
    with pytest.raises(QuarantineKeyError, match="ne crée pas de nouvelle clé"):
        Quarantine.open(cfg)
    assert not (cfg.data_dir / "quarantine.key").exists()


def test_the_folders_of_a_configured_key_file_are_never_created(cfg: Config,
                                                                  tmp_path: Path) -> None:
    cfg.quarantine.key_file = str(tmp_path / "nonexistent" / "dir" / "q.key")
    with pytest.raises(QuarantineKeyError, match="n'existe pas"):
        Quarantine.open(cfg)
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "keys").mkdir()
    cfg.quarantine.key_file = str(tmp_path / "keys" / "q.key")
    Quarantine.open(cfg).close()  # an existing folder: the first start creates the key
    assert stat.S_IMODE((tmp_path / "keys" / "q.key").stat().st_mode) == 0o600


def test_a_key_file_readable_by_others_is_warned_about(
        cfg: Config, caplog: pytest.LogCaptureFixture) -> None:
    Quarantine.open(cfg).close()
    key = cfg.data_dir / "quarantine.key"
    key.chmod(0o644)
    Quarantine.open(cfg).close()
    assert "chmod 600" in caplog.text and str(key) in caplog.text


def test_key_from_the_environment(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    cfg = load(environ={"VIGIE_QUARANTINE_KEY": key, "VIGIE_STORAGE_DATA_DIR": str(tmp_path)})
    q = Quarantine.open(cfg)
    q.close()
    assert not (tmp_path / "quarantine.key").exists()
    with pytest.raises(ConfigError, match="32 octets"):
        load(environ={"VIGIE_QUARANTINE_KEY": "c2hvcnQ="})


async def test_a_blob_moved_to_another_id_does_not_open(q: Quarantine) -> None:
    a = await q.store.hold(b"Subject: a\r\n\r\n", outbound(queue_id="AAAAAAAAAA"))
    b = await q.store.hold(b"Subject: b\r\n\r\n", outbound(queue_id="BBBBBBBBBB"))
    (q.store.blobs / b).write_bytes((q.store.blobs / a).read_bytes())
    with pytest.raises(QuarantineKeyError):
        await q.store.open(b)


async def test_list_filters_pages_and_counts(q: Quarantine) -> None:
    base = 1_790_000_000.0
    for i in range(30):
        await q.store.hold(b"Subject: x\r\n\r\n", outbound(
            queue_id="", received_at=base + i * 60,
            direction="inbound" if i % 3 == 0 else "outbound",
            mail_from=f"sender{i}@example.org",
            category="spam" if i % 2 else "patient_data"))
    page, total = await q.store.list(limit=10)
    assert total == 30 and len(page) == 10
    assert [s.received_at for s in page] == sorted((s.received_at for s in page), reverse=True)
    page2, _ = await q.store.list(limit=10, offset=10)
    assert not {s.id for s in page} & {s.id for s in page2}
    _, n = await q.store.list(direction="inbound")
    assert n == 10
    _, n = await q.store.list(category="spam", direction="outbound")
    assert n == len([i for i in range(30) if i % 2 and i % 3])
    _, n = await q.store.list(since=base + 60 * 10, until=base + 60 * 20)
    assert n == 10
    items, n = await q.store.list(sender_like="SENDER1")
    assert n == 11 and all("sender1" in s.sender for s in items)
    _, n = await q.store.list(sender_like="%")  # a LIKE wildcard is a plain character
    assert n == 0
    stats = await q.store.stats(0)
    assert sum(r.count for r in stats) == 30
    assert {r.direction for r in stats} == {"inbound", "outbound"}


async def test_status_changes_delete_and_purge(q: Quarantine) -> None:
    old = await q.store.hold(b"Subject: old\r\n\r\n", outbound(
        queue_id="", direction="inbound", subject="vieux", received_at=time.time() - 40 * 86400))
    new = await q.store.hold(b"Subject: new\r\n\r\n", outbound(queue_id=""))
    gone = await q.store.hold(b"Subject: gone\r\n\r\n", outbound(queue_id=""))
    await q.store.set_status(new, "released", reply="250 2.0.0 Ok", who="camille")
    s = await q.store.get(new)
    assert s is not None and (s.status, s.release_reply, s.status_by) == (
        "released", "250 2.0.0 Ok", "camille")
    await q.store.set_status(gone, "deleted", who="camille")
    assert not (q.store.blobs / gone).exists()
    with pytest.raises(Gone):
        await q.store.open(gone)
    with pytest.raises(NotFound):
        await q.store.set_status("NOSUCHID", "deleted")
    with pytest.raises(NotFound):
        await q.store.open("../../etc/passwd")
    assert await q.purge_expired() == 1
    s = await q.store.get(old)
    assert s is not None and s.status == "purged" and s.subject is None
    assert not (q.store.blobs / old).exists()
    assert await q.purge_expired() == 0
    assert await q.store.raw(new) == b"Subject: new\r\n\r\n"
    entries, _ = await q.audit.list()
    assert entries[0].action == "purge" and entries[0].details["count"] == 1


async def test_a_failure_between_blob_and_row_leaves_nothing(q: Quarantine) -> None:
    def boom(message_id: str) -> None:
        raise OSError(28, "No space left on device")

    q.store._between_steps = boom
    with pytest.raises(OSError):
        await q.store.hold(b"Subject: a\r\n\r\n", outbound())
    assert await q.store.list(status=None) == ([], 0)
    assert list(q.store.blobs.iterdir()) == []


_CHILD = """
import asyncio, os, sys
from gateway.config import load
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HoldMeta

cfg = load(environ={"VIGIE_STORAGE_DATA_DIR": sys.argv[1]})
q = Quarantine.open(cfg)
meta = HoldMeta("outbound", "camille@cabinet-kine.fr", ["p@gmail.com"])
if sys.argv[2] == "crash":
    def die(message_id):
        os._exit(9)  # killed between the blob write and the row commit
    q.store._between_steps = die
    q.store.hold_sync(b"Subject: crash\\r\\n\\r\\nbody\\r\\n", meta)
else:
    i = 0
    while True:
        i += 1
        mid = q.store.hold_sync(b"Subject: %d\\r\\n\\r\\n" % i + b"x" * 5000 + b"\\r\\n", meta)
        print(mid, i, flush=True)  # only printed once hold() returned: the 250
"""


def _child(data: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(data), mode], cwd=ROOT,
                            stdout=subprocess.PIPE)


async def test_a_process_killed_between_the_steps_loses_nothing_it_acknowledged(
        cfg: Config) -> None:
    child = _child(cfg.data_dir, "crash")
    assert child.wait(30) == 9
    assert child.stdout is not None
    child.stdout.close()
    q = Quarantine.open(cfg)
    try:
        assert await q.store.list(status=None) == ([], 0)  # no half entry visible
        assert len(list(q.store.blobs.iterdir())) == 1  # the sealed orphan
        assert q.store.recover() == 1
        assert list(q.store.blobs.iterdir()) == []
        assert len(list(q.store.orphans.iterdir())) == 1  # kept aside, never dropped
    finally:
        q.close()


async def test_sigkill_during_holds_keeps_every_acknowledged_message(cfg: Config) -> None:
    child = _child(cfg.data_dir, "loop")
    assert child.stdout is not None
    acknowledged: dict[str, int] = {}
    while len(acknowledged) < 25:
        line = child.stdout.readline().decode()
        mid, n = line.split()
        acknowledged[mid] = int(n)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    child.stdout.close()
    q = Quarantine.open(cfg)
    try:
        q.store.recover()
        items, _ = await q.store.list(status=None, limit=1000)
        assert set(acknowledged) <= {s.id for s in items}
        for s in items:  # every visible row opens: no half entry
            raw = await q.store.raw(s.id)
            assert raw.startswith(b"Subject: ")
        for mid, i in acknowledged.items():
            assert (await q.store.raw(mid)).startswith(b"Subject: %d\r\n" % i)
        assert {p.name for p in q.store.blobs.iterdir()} == {s.id for s in items}
    finally:
        q.close()


async def test_the_old_clear_text_hold_folder_moves_into_the_store(q: Quarantine,
                                                                   cfg: Config) -> None:
    folder = cfg.data_dir / "hold"
    folder.mkdir(parents=True)
    raw = make_message(body=BODY)
    (folder / "Q1.eml").write_bytes(raw)
    (folder / "Q1.json").write_text(json.dumps({
        "queue_id": "Q1OLDHOLD", "direction": "outbound", "mail_from": "a@cabinet.fr",
        "rcpt_tos": ["p@gmail.com"], "mail_options": [], "symbols": ["PATIENT_DATA_WEBMAIL_HIGH"],
        "received_at": 1_790_000_000.0}))
    assert migrate_hold_folder(q, folder) == 1
    assert list(folder.iterdir()) == []
    held = await q.store.open("Q1OLDHOLD")
    assert held.raw == raw and held.rcpt_tos == ["p@gmail.com"]
    assert held.summary.category == "patient_data"
    assert held.summary.received_at == 1_790_000_000.0


async def test_allow_list(q: Quarantine) -> None:
    assert await q.allow.add("<Bob@Example.org>", "inbound", "camille")
    assert not await q.allow.add("bob@example.org", "inbound")
    assert await q.allow.is_allowed("BOB@example.org", "inbound")
    assert await q.allow.is_allowed("bob@example.org")
    assert not await q.allow.is_allowed("bob@example.org", "outbound")
    assert [a.sender for a in await q.allow.list()] == ["bob@example.org"]
    assert await q.allow.remove("bob@example.org", "inbound")
    assert not await q.allow.is_allowed("bob@example.org")


async def test_secrets_are_sealed(q: Quarantine, cfg: Config) -> None:
    await q.secrets.put("signal_spam", b'{"login": "camille", "password": "p4ss-w0rd"}')
    assert await q.secrets.get("signal_spam") == b'{"login": "camille", "password": "p4ss-w0rd"}'
    q.close()
    for path in (cfg.data_dir / "quarantine").rglob("*"):
        if path.is_file():
            assert b"p4ss-w0rd" not in path.read_bytes()
    assert await q.secrets.get("nothing") is None


def test_hold_meta_keeps_one_line_of_inbound_subject_and_nothing_outbound() -> None:
    from gateway.model import Direction, Envelope, Message
    from gateway.smtp.handler import hold_meta

    raw = make_message(subject="=?utf-8?q?Facture_=0D=0Ainject=C3=A9e?=", body=BODY)
    inbound = hold_meta(Message(raw, Envelope("x@example.org", ["camille@cabinet-kine.fr"],
                                              Direction.INBOUND)), ["HYG_NO_DATE"])
    assert inbound.subject == "Facture injectée"
    assert inbound.category == "spam"
    outbound = hold_meta(Message(raw, Envelope("camille@cabinet-kine.fr", ["p@gmail.com"],
                                               Direction.OUTBOUND)),
                         ["PATIENT_DATA_WEBMAIL_HIGH", "PD_NIR", "PD_DIAGNOSIS"])
    assert outbound.subject is None and outbound.category == "patient_data"
    assert [r.fr for r in outbound.reasons] == [
        "données de patient vers une messagerie gratuite (non sécurisée)",
        "numéro de sécurité sociale dans le message", "termes médicaux dans le message"]


async def test_evidence_and_the_from_header_are_kept_and_erased_by_the_purge(
        q: Quarantine) -> None:
    raw = (b"From: \"Dr Paul Martin\" <paul.martin@medecin.mssante.fr>\r\n"
           b"Subject: Courrier\r\n\r\nx\r\n")
    meta = HoldMeta(direction="inbound", mail_from="bob@example.org",
                    rcpt_tos=["camille@cabinet-kine.fr"], symbols=["ATT_MALICIOUS"],
                    reasons=[Reason("Bilan_Dupont.exe dangereux", "dangerous")],
                    category="attachment", subject="Courrier",
                    evidence=["ATT_MALICIOUS : Bilan_Dupont.exe"], queue_id="EVID000001",
                    received_at=time.time() - 40 * 86400)
    mid = await q.store.hold(raw, meta)
    s = await q.store.get(mid)
    assert s is not None
    assert s.evidence == ["ATT_MALICIOUS : Bilan_Dupont.exe"]
    assert s.from_header == "Dr Paul Martin <paul.martin@medecin.mssante.fr>"
    assert s.sender == "bob@example.org"
    await q.purge_expired()
    s = await q.store.get(mid)
    assert s is not None and s.status == "purged"
    assert s.evidence == [] and s.reasons == [] and s.from_header is None
    assert s.category == "attachment"


def test_a_database_of_the_first_version_gains_the_new_columns(cfg: Config) -> None:
    import sqlite3

    root = cfg.data_dir / "quarantine"
    root.mkdir(parents=True)
    old = sqlite3.connect(root / "quarantine.sqlite")
    old.executescript(
        "CREATE TABLE held (id TEXT PRIMARY KEY, queue_id TEXT NOT NULL DEFAULT '',"
        " received_at REAL NOT NULL, direction TEXT NOT NULL, sender TEXT NOT NULL,"
        " sender_lower TEXT NOT NULL, rcpt_domains TEXT NOT NULL, subject TEXT,"
        " size INTEGER NOT NULL, symbols TEXT NOT NULL, reasons TEXT NOT NULL,"
        " category TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'held', status_at REAL,"
        " status_by TEXT, release_reply TEXT);"
        "INSERT INTO held (id, received_at, direction, sender, sender_lower, rcpt_domains,"
        " size, symbols, reasons, category) VALUES ('OLD0000001', 1.0, 'inbound', 'a@b.fr',"
        " 'a@b.fr', '[]', 3, '[]', '[]', 'spam');")
    old.close()
    (cfg.data_dir / "quarantine.key").write_text(base64.b64encode(os.urandom(32)).decode())
    quarantine = Quarantine.open(cfg)
    try:
        s = quarantine.store.get_sync("OLD0000001")
        assert s is not None and s.evidence == [] and s.from_header is None
    finally:
        quarantine.close()


async def test_every_file_of_the_quarantine_is_private_from_the_first_start(
        q: Quarantine) -> None:
    """The SQLite -wal and -shm files were 0644 on a first start."""
    await q.store.hold(b"Subject: a\r\n\r\nx\r\n", outbound())
    root = q.store.root
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"quarantine.sqlite", "quarantine.sqlite-wal",
                                       "quarantine.sqlite-shm"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_quarantine_list_shows_direction_controls_as_markers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    cfg_path = tmp_path / "vigie.toml"
    cfg_path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    q = Quarantine.open(load(cfg_path))
    q.store.hold_sync(b"Subject: x\r\n\r\ny\r\n", HoldMeta(
        direction="inbound", mail_from="a@example.org", rcpt_tos=["b@example.org"],
        symbols=["ATT_MALICIOUS"], category="attachment",
        reasons=[Reason("fichier ordonnance.pdf\u202egpj.exe dangereux", "dangerous")],
        subject="Facture\u202e fdp.exe"))
    q.close()
    assert main(["-c", str(cfg_path), "quarantine", "list"]) == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out
    assert "ordonnance.pdf«U+202E»gpj.exe" in out and "Facture«U+202E» fdp.exe" in out
