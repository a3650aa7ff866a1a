"""The RFC 7208 SPF conformance suite (openspf.org, release 2014.04), one case per test.

The suite lives outside the repository, in ``../shared/conformance/spf/``; without it
every case is skipped with the reason. Each scenario's zone is served by a
``FakeResolver``: SPF-type records are served as TXT when the name has no TXT entry
(the suite's header asks drivers to do so), ``TIMEOUT`` is a DNS timeout, a list of
strings is one record's strings glued together. An expected explanation "DEFAULT"
is the default one, which the driver sets to "DEFAULT".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.detect.spf import check_mail_from
from gateway.testing import TIMEOUT, FakeRecord, FakeResolver

SUITE = (Path(__file__).resolve().parents[3] / "shared" / "conformance" / "spf"
         / "rfc7208-tests.yml")

# Cases this implementation does not pass, with the reason (none at present).
XFAIL: dict[str, str] = {}


def _zone(zonedata: dict[str, list[Any]]) -> dict[str, list[FakeRecord]]:
    zone: dict[str, list[FakeRecord]] = {}
    for name, entries in zonedata.items():
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        records: list[FakeRecord] = []
        for entry in entries:
            if entry == TIMEOUT:
                records.append(TIMEOUT)
                continue
            assert isinstance(entry, dict) and len(entry) == 1, entry
            ((rtype, value),) = entry.items()
            if rtype == "SPF":  # the SPF RR type is gone (RFC 7208 3.1): serve it as TXT
                if not has_txt:
                    records.append(("TXT", value))
            elif rtype == "TXT" and value == "NONE":
                continue  # the name has no TXT record (but exists)
            elif rtype == "MX":
                records.append(("MX", (int(value[0]), str(value[1]))))
            else:
                records.append((rtype, value))
        zone[name] = records
    return zone


def _cases() -> list[Any]:
    if not SUITE.is_file():
        return [pytest.param(None, id="suite-missing", marks=pytest.mark.skip(
            reason=f"SPF conformance suite not found at {SUITE} (../shared/conformance/spf/)"))]
    cases = []
    for scenario in yaml.safe_load_all(SUITE.read_text(encoding="utf-8")):
        zone = _zone(scenario["zonedata"])
        prefix = scenario["description"].lower().replace(" ", "-")
        for name, test in scenario["tests"].items():
            case_id = f"{prefix}/{name}"
            marks = [pytest.mark.xfail(reason=XFAIL[case_id], strict=True)] \
                if case_id in XFAIL else []
            cases.append(pytest.param((zone, test), id=case_id, marks=marks))
    return cases


@pytest.mark.parametrize("case", _cases())
async def test_rfc7208_suite(case: tuple[dict[str, list[FakeRecord]], dict[str, Any]]) -> None:
    zone, test = case
    resolver = FakeResolver(zone)
    result = await check_mail_from(test["host"], test["mailfrom"], test["helo"], resolver,
                                   default_explanation="DEFAULT")
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert result.result in expected, (result, test.get("description"))
    if "explanation" in test:
        assert result.explanation == test["explanation"], result
