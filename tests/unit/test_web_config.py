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
    cfg = load(write(tmp_path, '[web]\nlisten = ""\n'), environ={"HOME": str(tmp_path)})
    assert cfg.web.listen == ""


@pytest.mark.parametrize("section", ["web", "digest"])
def test_no_console_but_a_public_url_is_refused(tmp_path: Path, section: str) -> None:
    """The digest's links would lead to a console that does not exist."""
    text = ('[web]\nlisten = ""\n' + ("" if section == "web" else f"[{section}]\n")
            + 'public_url = "https://vigie.cabinet.fr"\n')
    with pytest.raises(ConfigError, match="console qui n'existe pas"):
        load(write(tmp_path, text), environ={"HOME": str(tmp_path)})


def test_a_listen_host_that_does_not_resolve_fails_the_config_check(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hôte inconnu 'nope\\.invalid'"):
        load(write(tmp_path, '[web]\nlisten = "nope.invalid:9025"\n'),
             environ={"HOME": str(tmp_path)})
    for ok in ("localhost:9025", "127.0.0.1:9025", "[::1]:9025", "0.0.0.0:9025"):
        assert load(write(tmp_path, f'[web]\nlisten = "{ok}"\n'),
                    environ={"HOME": str(tmp_path)}).web.listen == ok


def test_a_key_file_under_a_missing_or_non_folder_fails_the_config_check(
        tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    for bad in (tmp_path / "plain" / "q.key", tmp_path / "nonexistent" / "dir" / "q.key"):
        with pytest.raises(ConfigError, match="n'existe pas ou n'est pas un dossier"):
            load(write(tmp_path, f'[quarantine]\nkey_file = "{bad}"\n'),
                 environ={"HOME": str(tmp_path)})
    assert not (tmp_path / "nonexistent").exists()


def test_digest_recipients_may_be_at_localhost(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[digest]\nrecipients = ["camille@localhost"]\n'),
               environ={"HOME": str(tmp_path)})
    assert cfg.digest.recipients == ["camille@localhost"]


def test_environment_sets_the_console_address(tmp_path: Path) -> None:
    cfg = load(None, environ={"HOME": str(tmp_path), "VIGIE_WEB_LISTEN": "0.0.0.0:8443",
                              "VIGIE_WEB_TLS": "true"})
    assert cfg.web.listen == "0.0.0.0:8443" and cfg.web.tls is True
