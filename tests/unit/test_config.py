"""Config: defaults, file, environment; every error names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load, parse_listen


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "vigie.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_embedded_defaults(tmp_path: Path) -> None:
    cfg = load(environ={"XDG_DATA_HOME": str(tmp_path)})
    assert cfg.source is None
    assert cfg.auth_mode == "local"
    assert cfg.upstream.host == ""
    assert cfg.data_dir == tmp_path / "vigie"
    assert cfg.submission.listen == ["127.0.0.1:2587"]
    assert cfg.submission.listen_tls == ["127.0.0.1:2465"]
    assert cfg.limits.message_size == 25 * 1024 * 1024
    assert cfg.upstream.verify is True and cfg.upstream.tls == "starttls"


def test_file_values_and_derived_defaults(tmp_path: Path) -> None:
    p = write(tmp_path, """
[submission]
listen = "0.0.0.0:587"
[upstream]
host = "smtp.orange.fr"
tls = "implicit"
[dns]
nameservers = ["127.0.0.1"]
port = 5353
timeout = 2
[limits]
recipients = 20
""")
    cfg = load(p, environ={})
    assert cfg.submission.listen == ["0.0.0.0:587"]
    assert cfg.auth_mode == "upstream"
    assert cfg.upstream_port == 465
    assert cfg.dns.nameservers == ["127.0.0.1"] and cfg.dns.timeout == 2.0
    assert cfg.limits.recipients == 20
    assert cfg.source == str(p)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, '[upstream]\nhost = "a.example"\nport = 25\ntls = "none"\n'
                        '[auth]\nmode = "local"\n')
    cfg = load(p, environ={"VIGIE_UPSTREAM_HOST": "b.example", "VIGIE_UPSTREAM_PORT": "2525",
                           "VIGIE_UPSTREAM_VERIFY": "non"})
    assert cfg.upstream.host == "b.example"
    assert cfg.upstream.port == 2525
    assert cfg.upstream.verify is False


def test_vigie_config_variable_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "[limits]\nrecipients = 7\n")
    assert load(environ={"VIGIE_CONFIG": str(p)}).limits.recipients == 7


@pytest.mark.parametrize(("text", "line", "key", "fr"), [
    ('[upstream]\nhost = "x"\nport = "abc"\n', 3, "[upstream] port", "nombre entier"),
    ('[upstream]\nhost = "x"\ntls = "startls"\n', 3, "[upstream] tls", '"starttls"'),
    ("[limits]\n\nrecipients = 0\n", 3, "[limits] recipients", "strictement positif"),
    ("[limits]\nmessage_sise = 5\n", 2, "[limits] message_sise", "clé inconnue"),
    ("[smtp]\nport = 5\n", 1, "[smtp]", "section inconnue"),
    ('[submission]\nlisten = "localhost"\n', 2, "[submission] listen", "hôte:port"),
    ('[upstream]\nverify = "yes"\n', 2, "[upstream] verify", "true ou false"),
    ('[auth]\nmode = "upstream"\n', 2, "[auth] mode", "[upstream] host"),
    ('[upstream]\nhost = "x"\ntls = "none"\n', 3, "[upstream] tls", "TLS est obligatoire"),
    ('[tls]\ncert_file = "/nonexistent.pem"\n', 2, "[tls]", "vont ensemble"),
    ('[upstream]\nca_file = "/nonexistent.pem"\n', 2, "[upstream] ca_file", "introuvable"),
])
def test_errors_name_file_line_key_and_what(tmp_path: Path, text: str, line: int, key: str,
                                            fr: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(p, environ={})
    msg = str(err.value)
    assert str(p) in msg
    assert f"ligne {line}" in msg and f"line {line}" in msg
    assert key in msg
    assert fr in msg
    assert msg.index("configuration invalide") < msg.index("invalid configuration")


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, '[upstream]\nhost = "unterminated\n')
    with pytest.raises(ConfigError) as err:
        load(p, environ={})
    assert "ligne 2" in str(err.value) and "TOML" in str(err.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fichier introuvable"):
        load(tmp_path / "nope.toml", environ={})
    p = tmp_path / "latin1.toml"
    p.write_bytes('[server]\nhostname = "cabinet-élodie"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load(p, environ={})


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load(environ={"VIGIE_LIMITS_RECIPIENTS": "many"})
    assert "VIGIE_" in str(err.value) and "[limits] recipients" in str(err.value)


def test_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret-value\n")
    p = write(tmp_path, f'[upstream]\nhost = "x"\nusername = "u"\npassword_file = "{pw}"\n')
    assert load(p, environ={}).upstream_password() == "s3cret-value"
    pw.unlink()
    with pytest.raises(ConfigError, match="password_file"):
        load(p, environ={}).upstream_password()


@pytest.mark.parametrize(("item", "expected"), [
    ("127.0.0.1:2587", ("127.0.0.1", 2587)),
    ("[::1]:587", ("::1", 587)),
    ("mail.cabinet.test:25", ("mail.cabinet.test", 25)),
])
def test_parse_listen(item: str, expected: tuple[str, int]) -> None:
    assert parse_listen(item) == expected


@pytest.mark.parametrize("item", ["localhost", ":25", "host:99999", "a b:25", "::1:25"])
def test_parse_listen_rejects(item: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(item)


@pytest.mark.parametrize(("text", "key"), [
    ("[limits]\ncheck_timeout = nan\n", "[limits] check_timeout"),
    ("[limits]\ncheck_timeout = inf\n", "[limits] check_timeout"),
    ('[server]\nhostname = "a\\r\\nb"\n', "[server] hostname"),
    ('[submission]\nlisten = ["127.0.0.1:0"]\n', "[submission] listen"),
    ("[limits]\nmessage_size = 99999999999999999999\n", "[limits] message_size"),
    ('[storage]\ndata_dir = "/etc/hostname"\n', "[storage] data_dir"),
    ("[upstream]\nidle_sessions = -1\n", "[upstream] idle_sessions"),
    ("[upstream]\nidle_timeout = 0\n", "[upstream] idle_timeout"),
    ("[upstream]\nidle_timeout = nan\n", "[upstream] idle_timeout"),
])
def test_more_bad_values(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ={})
    assert key in str(err.value)


def test_bad_pem_is_caught_at_check_time(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, f'[tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n'), environ={})
    assert "[tls] cert_file" in str(err.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.toml"
    p.write_bytes("\ufeff[limits]\nrecipients = 9\n".encode())
    assert load(p, environ={}).limits.recipients == 9


def test_misspelt_environment_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="VIGIE_UPSTRAEM_HOST"):
        load(environ={"VIGIE_UPSTRAEM_HOST": "x"})


def test_error_outcome_can_never_deliver() -> None:
    from gateway.policy import Policy

    with pytest.raises(ConfigError, match="never passes"):
        Policy.from_data({"outcomes": {"ERROR": "deliver"}})


def test_environment_reaches_sections_with_underscores() -> None:
    cfg = load(environ={"VIGIE_PATIENT_DATA_ENABLED": "false",
                        "VIGIE_PATIENT_DATA_TRUSTED_DOMAINS": "cabinet.fr, chu-x.fr"})
    assert cfg.patient_data.enabled is False
    assert cfg.patient_data.trusted_domains == ["cabinet.fr", "chu-x.fr"]


def test_the_example_config_loads_as_shipped() -> None:
    """deploy/vigie.example.toml is what providers copy: it must load without an edit."""
    from gateway.config import load

    example = Path(__file__).resolve().parents[2] / "deploy" / "vigie.example.toml"
    cfg = load(example, environ={})
    assert cfg.source == str(example)

def test_scan_section_defaults_and_values(tmp_path: Path) -> None:
    cfg = load(environ={"XDG_DATA_HOME": str(tmp_path)})
    assert cfg.scan.enabled and cfg.scan.max_depth == 5 and cfg.scan.clamd == ""
    rules = tmp_path / "yara"
    rules.mkdir()
    p = write(tmp_path, f'[scan]\nmax_ratio = 50\nyara_dir = "{rules}"\n'
                        'clamd = "127.0.0.1:3310"\n')
    cfg = load(p, environ={"VIGIE_SCAN_TIMEOUT": "5"})
    assert (cfg.scan.max_ratio, cfg.scan.yara_dir, cfg.scan.clamd, cfg.scan.timeout) == (
        50, str(rules), "127.0.0.1:3310", 5.0)


@pytest.mark.parametrize(("text", "key"), [
    ("[scan]\nmax_depth = 0\n", "[scan] max_depth"),
    ("[scan]\nmax_expanded = 0\n", "[scan] max_expanded"),
    ("[scan]\ntimeout = 0\n", "[scan] timeout"),
    ('[scan]\nyara_dir = "/nonexistent/yara"\n', "[scan] yara_dir"),
    ('[scan]\nclamd = "clamd"\n', "[scan] clamd"),
])
def test_bad_scan_values(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ={})
    assert err.value.key == key
    assert err.value.line == 2


@pytest.mark.parametrize(("text", "key"), [
    ('[dns]\nnameservers = ["127.0.0.1:5353"]\n', "[dns] nameservers"),
    ('[dns]\nnameservers = ["dns.google"]\n', "[dns] nameservers"),
    ('[inbound]\nlisten = ["127.0.0.1:2587"]\ndomains = ["cabinet.fr"]\n', "[inbound] listen"),
    ('[inbound]\nlisten = ["0.0.0.0:25"]\n', "[inbound] domains"),
    ('[inbound]\nlisten = ["0.0.0.0:25"]\ndomains = ["cabinet.fr"]\n'
     'trusted_relays = ["mx.provider.fr"]\n', "[inbound] trusted_relays"),
])
def test_inbound_and_dns_mistakes_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    from gateway.config import ConfigError, load

    path = tmp_path / "vigie.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert key in str(err.value) and str(path) in str(err.value)
