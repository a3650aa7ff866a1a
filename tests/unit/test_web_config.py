"""[web] settings: defaults and the errors a person can fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vigie.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_listen_on_localhost_only(tmp_path: Path) -> None:
    cfg = load(None, environ={"HOME": str(tmp_path)})
    assert cfg.web.listen == "127.0.0.1:8025"
    assert cfg.web.public_url == "" and cfg.web.tls is False


@pytest.mark.parametrize(("text", "key", "words"), [
    ('[web]\nlisten = "localhost"\n', "[web] listen", "adresse d'écoute invalide"),
    ('[web]\npublic_url = "vigie.cabinet.fr"\n', "[web] public_url", "adresse invalide"),
    ('[web]\nsession_minutes = 0\n', "[web] session_minutes", "strictement positif"),
    ('[web]\nmax_failures = 0\n', "[web] max_failures", "au moins 1"),
    ('[web]\ntrusted_proxy = "nginx"\n', "[web] trusted_proxy", "adresse IP invalide"),
])
def test_bad_web_settings_say_where_and_what(tmp_path: Path, text: str, key: str,
                                              words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ={"HOME": str(tmp_path)})
    message = str(err.value)
    assert key in message and words in message and "ligne 2" in message


def test_an_empty_listen_turns_the_console_off(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[web]\nlisten = ""\npublic_url = "https://vigie.cabinet.fr"\n'),
               environ={"HOME": str(tmp_path)})
    assert cfg.web.listen == "" and cfg.web.public_url == "https://vigie.cabinet.fr"


def test_environment_sets_the_console_address(tmp_path: Path) -> None:
    cfg = load(None, environ={"HOME": str(tmp_path), "VIGIE_WEB_LISTEN": "0.0.0.0:8443",
                              "VIGIE_WEB_TLS": "true"})
    assert cfg.web.listen == "0.0.0.0:8443" and cfg.web.tls is True
