"""The real `vigie` process and real clients (swaks), as a practice or provider uses them."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, make_message
from tests.conftest import PASSWORD, USER, require_program

MakeGW = Callable[..., GatewayThread]
VIGIE = [sys.executable, "-m", "gateway"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"vigie exited early: {proc.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("vigie did not start listening")


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIE, *args], capture_output=True, text=True, input=stdin,
                          timeout=60, env={**os.environ, **(env or {})}, check=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], int, int]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path | None = None, env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[str], int, int]:
        p1, p2, p3, p4 = free_port(), free_port(), free_port(), free_port()
        environ = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"),
                   "VIGIE_SUBMISSION_LISTEN": f"127.0.0.1:{p1}",
                   "VIGIE_SUBMISSION_LISTEN_TLS": f"127.0.0.1:{p2}",
                   # not the demo's 127.0.0.1:2525, which a running `make run` may hold
                   "VIGIE_INBOUND_LISTEN": f"127.0.0.1:{p3}",
                   "VIGIE_INBOUND_DOMAINS": "localhost",
                   "VIGIE_WEB_LISTEN": f"127.0.0.1:{p4}", **(env or {})}
        args = [*VIGIE, "serve"] + (["--config", str(config)] if config else [])
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=environ)
        procs.append(proc)
        for port in (p1, p2, p3):  # every listener, not only the first one
            wait_port(port, proc)
        return proc, p1, p2

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_embedded_defaults_first_start_creates_a_demo_user_and_delivers_locally(
        served: Callable[..., tuple[subprocess.Popen[str], int, int]], tmp_path: Path) -> None:
    proc, port, _ = served()
    data = tmp_path / "xdg" / "vigie"
    ctx = ssl.create_default_context(cafile=str(data / "tls" / "selfsigned.crt"))
    # The password is printed once on the terminal; read it from there.
    deadline = time.monotonic() + 10
    password = None
    while password is None and time.monotonic() < deadline:
        if (data / "users").exists():
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
            m = re.search(r"mot de passe : (\S+)", err)
            assert m, err
            password = m.group(1)
        time.sleep(0.1)
    assert password is not None
    assert proc.returncode == 0
    assert "certificat auto-signé" in err
    # Second start: the demo user exists, no new password is printed.
    proc, port, _ = served()
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as c:
        c.starttls(context=ctx)
        c.login("demo", password)
        assert c.sendmail("demo@cabinet.test", ["patient@gmail.com"], make_message()) == {}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "mot de passe :" not in err
    assert len(list((data / "maildir" / "new").iterdir())) == 1
    # One log line for the message: domains, decision, never the local part.
    line = next(ln for ln in err.splitlines() if "queue_id=" in ln)
    assert "rcpt_domains=gmail.com" in line and "action=deliver" in line
    assert "patient@" not in err


def test_serve_with_a_config_file_relays_to_upstream(
        served: Callable[..., tuple[subprocess.Popen[str], int, int]], tmp_path: Path,
        upstream: CapturingUpstream) -> None:
    cfg_file = tmp_path / "vigie.toml"
    cfg_file.write_text(f"""
[server]
hostname = "vigie.cabinet.test"
[auth]
mode = "local"
failure_delay = 0
[upstream]
host = "localhost"
port = {upstream.port}
tls = "starttls"
ca_file = "{upstream.cert}"
[storage]
data_dir = "{tmp_path / 'data'}"
""")
    r = run("user", "add", USER, "--password-stdin", "--config", str(cfg_file),
            stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert run("user", "list", "--config", str(cfg_file)).stdout.strip() == USER
    proc, _port, tls_port = served(cfg_file)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "data" / "tls" / "selfsigned.crt"))
    with smtplib.SMTP_SSL("127.0.0.1", tls_port, context=ctx, timeout=15) as c:
        c.login(USER, PASSWORD)
        assert c.sendmail("camille@cabinet.test", ["a@example.org"], make_message()) == {}
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert len(upstream.messages) == 1
    assert b"by vigie.cabinet.test (vigie)" in upstream.messages[0].content


def test_serve_with_a_bad_config_says_where_and_what(tmp_path: Path) -> None:
    bad = tmp_path / "vigie.toml"
    bad.write_text('[upstream]\nhost = "smtp.orange.fr"\ntls = "startls"\n')
    r = run("serve", "--config", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "ligne 3" in r.stderr and "[upstream] tls" in r.stderr
    assert '"starttls"' in r.stderr and "line 3" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("serve", env={"XDG_DATA_HOME": str(tmp_path),
                              "VIGIE_SUBMISSION_LISTEN": f"127.0.0.1:{port}",
                              "VIGIE_SUBMISSION_LISTEN_TLS": f"127.0.0.1:{free_port()}"})
    assert r.returncode == 2
    assert "port déjà pris" in r.stderr and "Traceback" not in r.stderr


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "ok.toml"
    good.write_text('[upstream]\nhost = "smtp.example.org"\n[limits]\nrecipients = 20\n')
    r = run("config", "check", str(good))
    assert r.returncode == 0, r.stderr
    assert "configuration correcte" in r.stdout and "upstream" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[limits]\nrecipients = 20\nmessage_sise = 10\n')
    r = run("config", "check", str(bad))
    assert r.returncode == 2
    assert "ligne 3" in r.stderr and "message_sise" in r.stderr and "clé inconnue" in r.stderr
    r = run("config", "check", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "fichier introuvable" in r.stderr


def test_config_check_names_a_bad_policy_override(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy.symbols.HYG_NO_DATE]\naction = "drop"\n')
    r = run("config", "check", str(bad))
    assert r.returncode == 2
    assert "HYG_NO_DATE" in r.stderr and "drop" in r.stderr and "Traceback" not in r.stderr


def test_user_commands(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    r = run("user", "add", "secretariat", "--generate", env=env)
    assert r.returncode == 0 and "mot de passe" in r.stdout
    assert (tmp_path / "vigie" / "users").stat().st_mode & 0o777 == 0o600
    r = run("user", "add", "secretariat", "--password-stdin", stdin="another-password\n",
            env=env)
    assert r.returncode == 2 and "existe déjà" in r.stderr
    r = run("user", "add", "x", "--password-stdin", stdin="short\n", env=env)
    assert r.returncode == 2 and "trop court" in r.stderr
    assert run("user", "del", "secretariat", env=env).returncode == 0
    r = run("user", "del", "secretariat", env=env)
    assert r.returncode == 2 and "inconnu" in r.stderr


def test_check_command_offline(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    good = tmp_path / "good.eml"
    good.write_bytes(make_message().replace(b"\r\n", b"\n"))  # as saved on disk
    r = run("check", str(good), "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["action"] == "deliver" and out["findings"] == []
    assert set(out) >= {"action", "reply", "findings", "suggestions"}

    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"To: a@example.org\nSubject: x\n\nhello\n")
    r = run("check", str(bad), "--rcpt", "a@example.org", "--json", env=env)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["action"] == "reject"
    assert {f["symbol"] for f in out["findings"]} >= {"HYG_NO_FROM", "HYG_NO_DATE"}
    f = next(f for f in out["findings"] if f["symbol"] == "HYG_NO_FROM")
    assert set(f) == {"check", "symbol", "outcome", "reasons", "evidence"}
    assert out["reply"].startswith("550-5.7.1 ")

    r = run("check", str(bad), env=env)
    assert r.returncode == 1
    assert "refus (reject)" in r.stdout and "HYG_NO_FROM" in r.stdout

    for unusable in (tmp_path / "nope.eml", tmp_path):
        r = run("check", str(unusable), env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    assert run("check", str(empty), env=env).returncode == 2
    binary = tmp_path / "scan.pdf"  # not an e-mail at all: unusable input, not «reject»
    binary.write_bytes(b"%PDF-1.4\n\x00\xff\xfe binary\n")
    r = run("check", str(binary), env=env)
    assert r.returncode == 2 and "exportez le message en .eml" in r.stderr
    assert r.stdout == ""


# --- swaks, a real SMTP client -------------------------------------------

def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_program("swaks")
    return subprocess.run([exe, "--timeout", "20", *args], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.swaks
def test_swaks_submission_with_starttls_and_auth(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream,
        tmp_path: Path) -> None:
    gw = make_gateway(relay_config)
    msg = tmp_path / "m.eml"
    msg.write_bytes(make_message())
    r = swaks("--server", f"127.0.0.1:{gw.port}", "--tls", "--auth", "PLAIN",
              "--auth-user", USER, "--auth-password", PASSWORD,
              "--from", "camille@cabinet-kine.fr", "--to", "a@example.org",
              "--data", f"@{msg}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<~  250 2.0.0 Ok: queued as UP1" in r.stdout
    assert len(upstream.messages) == 1


@pytest.mark.swaks
def test_swaks_open_relay_attempts_are_refused(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    r = swaks("--server", f"127.0.0.1:{gw.port}", "--from", "spam@example.com",
              "--to", "victim@example.org")
    assert r.returncode != 0
    assert "530" in r.stdout
    r = swaks("--server", f"127.0.0.1:{gw.port}", "--tls", "--from", "spam@example.com",
              "--to", "victim@example.org")
    assert r.returncode != 0
    assert "530 5.7.0 Authentification obligatoire / Authentication required" in r.stdout
    r = swaks("--server", f"127.0.0.1:{gw.port}", "--auth", "PLAIN", "--auth-user", USER,
              "--auth-password", PASSWORD, "--from", "camille@cabinet-kine.fr",
              "--to", "victim@example.org")  # AUTH without TLS
    assert r.returncode != 0
    assert upstream.messages == []
    assert upstream.connections == 0


@pytest.mark.swaks
def test_swaks_implicit_tls_and_auth_login(
        make_gateway: MakeGW, relay_config: Config, upstream: CapturingUpstream) -> None:
    gw = make_gateway(relay_config)
    r = swaks("--server", f"127.0.0.1:{gw.tls_port}", "--tlsc", "--auth", "LOGIN",
              "--auth-user", USER, "--auth-password", PASSWORD,
              "--from", "camille@cabinet-kine.fr", "--to", "a@example.org")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(upstream.messages) == 1


def test_config_option_before_or_after_the_subcommand(tmp_path: Path) -> None:
    cfg = tmp_path / "vigie.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    for args in (["--config", str(cfg), "user", "add", "a1", "--generate"],
                 ["user", "--config", str(cfg), "add", "a2", "--generate"],
                 ["user", "add", "a3", "--generate", "--config", str(cfg)]):
        assert run(*args, env=env).returncode == 0
    assert run("user", "list", "-c", str(cfg), env=env).stdout.split() == ["a1", "a2", "a3"]
    assert not (tmp_path / "xdg").exists()
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_config_check_catches_an_unreadable_password_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[upstream]\nhost = "x"\nusername = "u"\npassword_file = "/nope/pw"\n')
    r = run("config", "check", str(bad))
    assert r.returncode == 2 and "[upstream] password_file" in r.stderr and "ligne 4" in r.stderr


def test_user_add_without_a_terminal_says_what_to_do(tmp_path: Path) -> None:
    r = subprocess.run([*VIGIE, "user", "add", "camille"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60, check=False,
                       env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 2
    assert "--password-stdin" in r.stderr and "Traceback" not in r.stderr
    r = run("user", "add", "-x", "--generate", env={"XDG_DATA_HOME": str(tmp_path)})
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_broken_users_file_and_data_dir_give_messages_not_tracebacks(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_bytes(b"\xff\xfe garbage")
    cfg = tmp_path / "v.toml"
    cfg.write_text(f'[auth]\nusers_file = "{users}"\n[storage]\ndata_dir = "{tmp_path}/d"\n')
    r = run("user", "list", "--config", str(cfg))
    assert r.returncode == 2 and "UTF-8" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text(f'[auth]\nusers_file = "{tmp_path}"\n')
    r = run("user", "list", "--config", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize(("section", "needle"), [
    ('trusted_domains = ["gmail.com"]', "messagerie gratuite"),
    ('trusted_domains = "gmail.com, chu.fr"', "n'est pas un nom de domaine"),
    ('trusted_domains = ["https://chu.fr"]', "n'est pas un nom de domaine"),
    ('override_marker = "ok"', "override_marker"),
    ("contacts_file = \"{contacts}\"", "en-tête attendu"),
])
def test_config_check_validates_patient_data(tmp_path: Path, section: str,
                                             needle: str) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("nom,email\nDupont,d@gmail.com\n")
    cfg = tmp_path / "v.toml"
    cfg.write_text("[patient_data]\n" + section.replace("{contacts}", str(contacts)) + "\n")
    r = run("config", "check", str(cfg))
    assert r.returncode == 2, r.stdout
    assert needle in r.stderr and "Traceback" not in r.stderr
