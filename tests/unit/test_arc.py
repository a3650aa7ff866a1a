"""ARC verification as a signal: none, pass with its chain facts, DNS errors as temperror.

Signed messages come from the ValiMail suite (``../shared/conformance/arc/``): dkimpy
can only seal with the ``authres`` package, which vigie does not need otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.detect.arc import verify_arc
from gateway.testing import TIMEOUT, FakeRecord, FakeResolver, make_message
from gateway.verdict import Outcome

SUITE = (Path(__file__).resolve().parents[3] / "shared" / "conformance" / "arc"
         / "arc-draft-validation-tests.yml")


def suite_case(name: str) -> tuple[bytes, dict[str, Any]]:
    if not SUITE.is_file():
        pytest.skip(f"ARC validation suite not found at {SUITE}")
    for scenario in yaml.safe_load_all(SUITE.read_text(encoding="utf-8")):
        if name in scenario["tests"]:
            text = scenario["tests"][name]["message"]
            return text.replace("\n", "\r\n").encode(), scenario["txt-records"]
    raise KeyError(name)


async def test_unsealed_message_is_none() -> None:
    result = await verify_arc(make_message(), FakeResolver())
    assert (result.result, result.instances, result.outcome) == ("none", 0, Outcome.NONE)


async def test_two_hop_chain_passes_with_oldest_pass() -> None:
    raw, records = suite_case("cv_pass_i2_1")
    zone: dict[str, list[FakeRecord]] = {n: [("TXT", str(v))] for n, v in records.items()}
    result = await verify_arc(raw, FakeResolver(zone))
    assert (result.result, result.instances, result.oldest_pass) == ("pass", 2, 0)
    assert result.sealers == ("example.org", "example.org")


async def test_key_timeout_is_temperror_not_fail() -> None:
    raw, records = suite_case("cv_pass_i2_1")
    zone: dict[str, list[FakeRecord]] = {n: [TIMEOUT] for n in records}
    result = await verify_arc(raw, FakeResolver(zone))
    assert (result.result, result.outcome) == ("temperror", Outcome.TEMPERROR)


async def test_missing_key_fails_the_chain() -> None:
    raw, _records = suite_case("cv_pass_i1_1")
    assert (await verify_arc(raw, FakeResolver())).result == "fail"
