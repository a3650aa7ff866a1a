"""`vigie check --direction inbound` and `vigie config check` for the inbound settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main as vigie
from gateway.testing import make_message


def _conf(tmp_path: Path, extra: str = "") -> Path:
    conf = tmp_path / "vigie.toml"
    conf.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                    '[server]\nhostname = "vigie.test"\n'
                    # a resolver that answers nothing quickly (closed port)
                    '[dns]\nnameservers = ["127.0.0.1"]\nport = 9\ntimeout = 0.2\n' + extra,
                    encoding="utf-8")
    return conf


def test_a_bad_client_ip_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_message())
    code = vigie(["check", str(eml), "-c", str(_conf(tmp_path)), "--direction", "inbound",
                  "--client-ip", "300.1.1.1"])
    assert code == 2
    assert "n'est pas une adresse IP" in capsys.readouterr().err


def test_notes_say_when_spf_is_not_evaluated_or_the_options_are_ignored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_message())
    vigie(["check", str(eml), "-c", str(_conf(tmp_path)), "--direction", "inbound"])
    assert "SPF n'est pas évalué" in capsys.readouterr().err
    vigie(["check", str(eml), "-c", str(_conf(tmp_path)), "--client-ip", "192.0.2.1"])
    assert "--direction inbound" in capsys.readouterr().err


def test_config_check_shows_inbound_and_warns_about_risky_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conf(tmp_path, '[inbound]\nlisten = ["127.0.0.1:2626"]\n'
                 'domains = ["cabinet.fr"]\nproxy_protocol = true\n'
                 'trusted_authserv_ids = ["vigie.test"]\n')
    assert vigie(["config", "check", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "réception / inbound: 127.0.0.1:2626 pour / for @cabinet.fr" in out
    assert "proxy_protocol sans trusted_relays" in out
    assert "notre propre nom (vigie.test)" in out
