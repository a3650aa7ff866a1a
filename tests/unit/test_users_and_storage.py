"""Local users (scrypt, 0600, atomic) and the durable folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.quarantine.folder import HoldFolder, Maildir, durable_write_file
from gateway.users import UserError, UsersFile, hash_password, verify_password


def test_hash_and_verify() -> None:
    h = hash_password("correct horse battery", ln=10)
    assert h.startswith("$scrypt$ln=10,")
    assert verify_password("correct horse battery", h)
    assert not verify_password("wrong", h)
    assert hash_password("correct horse battery", ln=10) != h  # salted
    assert not verify_password("x", "garbage")
    assert not verify_password("x", "$bcrypt$a$b$c")


def test_users_file_roundtrip(tmp_path: Path) -> None:
    uf = UsersFile(tmp_path / "d" / "users")
    uf.add("camille", "long-enough-pw")
    uf.add("admin@cabinet.fr", "long-enough-pw2", admin=True)
    assert (tmp_path / "d" / "users").stat().st_mode & 0o777 == 0o600
    users = uf.load()
    assert set(users) == {"camille", "admin@cabinet.fr"}
    assert users["admin@cabinet.fr"].admin and not users["camille"].admin
    assert uf.verify("camille", "long-enough-pw") is not None
    assert uf.verify("camille", "nope") is None
    assert uf.verify("ghost", "long-enough-pw") is None
    assert "long-enough-pw" not in (tmp_path / "d" / "users").read_text()
    with pytest.raises(UserError, match="existe déjà"):
        uf.add("camille", "another-password")
    uf.add("camille", "another-password", replace=True)
    assert uf.verify("camille", "another-password") is not None
    uf.delete("camille")
    assert set(uf.load()) == {"admin@cabinet.fr"}


@pytest.mark.parametrize(("name", "pw", "msg"), [
    ("bad name", "long-enough-pw", "invalide"),
    ("camille:x", "long-enough-pw", "invalide"),
    ("camille", "short", "trop court"),
])
def test_users_bad_input(tmp_path: Path, name: str, pw: str, msg: str) -> None:
    with pytest.raises(UserError, match=msg):
        UsersFile(tmp_path / "users").add(name, pw)


def test_corrupt_users_file_is_named_with_line(tmp_path: Path) -> None:
    p = tmp_path / "users"
    p.write_text("# comment\ncamille:$scrypt$x\nthis line is broken\n")
    with pytest.raises(UserError) as err:
        UsersFile(p).load()
    assert "ligne 3" in str(err.value) and str(p) in str(err.value)


def test_durable_write_replaces_atomically(tmp_path: Path) -> None:
    p = tmp_path / "f"
    durable_write_file(p, b"one")
    durable_write_file(p, b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]


def test_durable_write_crash_before_rename_leaves_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "f"
    durable_write_file(p, b"old")

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        durable_write_file(p, b"new")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]  # no temp file left behind


def test_maildir_delivery(tmp_path: Path) -> None:
    md = Maildir(tmp_path / "maildir")
    name = md.deliver(b"Subject: x\r\n\r\nhi\r\n")
    assert (tmp_path / "maildir" / "new" / name).read_bytes() == b"Subject: x\r\n\r\nhi\r\n"
    assert list((tmp_path / "maildir" / "tmp").iterdir()) == []
    assert md.deliver(b"a") != md.deliver(b"a")


def test_hold_folder(tmp_path: Path) -> None:
    hf = HoldFolder(tmp_path / "hold")
    hf.hold("Q1", b"raw", {"queue_id": "Q1", "symbols": ["A"]})
    assert hf.list_ids() == ["Q1"]
    assert json.loads((tmp_path / "hold" / "Q1.json").read_text())["symbols"] == ["A"]
    assert (tmp_path / "hold" / "Q1.eml").stat().st_mode & 0o777 == 0o600


def test_self_signed_certificate_is_a_server_certificate(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from gateway.config import Config
    from gateway.smtp.tls import certificate_paths

    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    cfg.server.hostname = "vigie.cabinet.test"
    cfg.submission.listen = ["192.168.1.20:587", "0.0.0.0:2587"]
    cert_path, key_path, created = certificate_paths(cfg)
    assert created and certificate_paths(cfg)[2] is False  # made once
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "vigie.cabinet.test" in san.get_values_for_type(x509.DNSName)
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert {"192.168.1.20", "127.0.0.1"} <= ips and "0.0.0.0" not in ips
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_login_cache_keeps_no_password_and_follows_the_file(tmp_path: Path) -> None:
    uf = UsersFile(tmp_path / "users")
    uf.add("camille", "long-enough-pw")
    assert uf.verify_cached("camille", "long-enough-pw") is None  # nothing cached yet
    user = uf.verify("camille", "long-enough-pw")
    assert user is not None
    uf.remember(user, "long-enough-pw")
    assert uf.verify_cached("camille", "long-enough-pw") == user
    assert uf.verify_cached("camille", "other-password") is None
    assert all(b"long-enough-pw" not in k for k in uf._cache)
    import time as _time

    _time.sleep(0.01)
    uf.add("camille", "a-new-password", replace=True)  # the file changes: cache emptied
    assert uf.verify_cached("camille", "long-enough-pw") is None
