"""Shared fixtures: a capturing upstream, gateways in threads, an authenticated client."""

from __future__ import annotations

import os
import shutil
import smtplib
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config
from gateway.testing import CapturingUpstream, GatewayThread, config_for_tests
from gateway.users import UsersFile

USER, PASSWORD = "camille", "secret-password-1"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Compiled lexicon databases go to a cache of this test run (shared with the
    `vigie` processes the tests start), never to the user's own cache; set before
    collection, which already builds the packaged lexicon."""
    for key in ("CACHE_DIRECTORY", "XDG_CACHE_HOME"):
        _SAVED_ENV[key] = os.environ.pop(key, None)
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="vigie-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop("XDG_CACHE_HOME", ""), ignore_errors=True)
    for key, value in _SAVED_ENV.items():
        if value is not None:
            os.environ[key] = value


def require_dnsmasq() -> None:
    """dnsmasq (a real DNS server) for end-to-end tests: skip without it, but in CI."""
    from gateway.testing import Dnsmasq

    if Dnsmasq.program() is None:
        if os.environ.get("CI"):
            pytest.fail("dnsmasq is required in CI (.ci/run installs dnsmasq-base)")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base); CI installs it")


def require_program(name: str) -> str:
    """Path of a real program the test needs; skip with a reason (fail in CI)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} is not installed (apt-get install {name}); CI installs it")
    return path


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[CapturingUpstream]:
    up = CapturingUpstream(tmp_path).start()
    yield up
    up.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayThread]]:
    started: list[GatewayThread] = []

    def factory(cfg: Config | None = None, *, user: bool = True, **kwargs: Any
                ) -> GatewayThread:
        cfg = cfg or config_for_tests(tmp_path / "data")
        if user and cfg.auth_mode == "local":
            users = UsersFile(cfg.users_file)
            if USER not in users.load():
                users.add(USER, PASSWORD)
        gw = GatewayThread(cfg, **kwargs).start()
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()


@pytest.fixture
def relay_config(tmp_path: Path, upstream: CapturingUpstream) -> Config:
    """Local auth, relaying to the capturing upstream over verified STARTTLS."""
    cfg = upstream.configure(config_for_tests(tmp_path / "data"))
    cfg.auth.mode = "local"
    return cfg


def client_context(gw: GatewayThread) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=gw.cafile)


def connect(gw: GatewayThread, *, login: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gw.port, timeout=15)
    client.starttls(context=client_context(gw))
    client.ehlo()
    if login:
        client.login(USER, PASSWORD)
    return client


def start_data(client: smtplib.SMTP, options: list[str] | None = None) -> None:
    """MAIL, RCPT and DATA up to the 354, so a test can write raw bytes itself."""
    client.mail("camille@cabinet-kine.fr", options or [])
    client.rcpt("a@example.org")
    client.putcmd("data")
    assert client.getreply()[0] == 354
