"""Policy decisions from data, the pipeline's error handling, byte-level tagging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError
from gateway.model import Direction, Envelope, Message, prefix_subject, split_header_body
from gateway.pipeline import Pipeline
from gateway.policy import Policy, Reply, to_ascii
from gateway.verdict import Finding, Outcome, Reason


def f(symbol: str, outcome: Outcome = Outcome.HIT) -> Finding:
    return Finding("t", symbol, outcome, (Reason(f"raison {symbol}", f"reason {symbol}"),))


POLICY = Policy.from_data({
    "thresholds": {"tag": 5, "hold": 10, "reject": 15},
    "outcomes": {"ERROR": "tempfail", "TEMPERROR": "tempfail"},
    "symbols": {
        "LOW": {"score": 3}, "MID": {"score": 6}, "BIG": {"score": 16},
        "HOLDME": {"action": "hold"}, "NOPE": {"action": "reject"},
        "DIR": {"action": {"inbound": "hold", "outbound": "reject"}},
    },
})


@pytest.mark.parametrize(("findings", "action"), [
    ([], "deliver"),
    ([f("LOW")], "deliver"),
    ([f("LOW"), f("LOW")], "tag"),
    ([f("MID"), f("MID")], "hold"),
    ([f("BIG")], "reject"),
    ([f("HOLDME")], "hold"),
    ([f("LOW", Outcome.ERROR)], "tempfail"),
    ([f("X", Outcome.TEMPERROR), f("MID")], "tempfail"),
    ([f("X", Outcome.ERROR), f("HOLDME")], "hold"),
    ([f("X", Outcome.ERROR), f("NOPE")], "reject"),
    ([f("BIG", Outcome.PASS)], "deliver"),
    ([f("UNKNOWN_SYMBOL")], "deliver"),
])
def test_decisions(findings: list[Finding], action: str) -> None:
    assert POLICY.decide(findings, Direction.OUTBOUND).action == action


def test_direction_specific_action() -> None:
    assert POLICY.decide([f("DIR")], Direction.INBOUND).action == "hold"
    assert POLICY.decide([f("DIR")], Direction.OUTBOUND).action == "reject"


def test_reject_reply_is_french_then_english_and_multiline() -> None:
    d = POLICY.decide([f("NOPE")], Direction.OUTBOUND)
    assert d.reply is not None
    text = d.reply.render()
    lines = text.split("\r\n")
    assert all(line.startswith("550-5.7.1 ") for line in lines[:-1])
    assert lines[-1].startswith("550 5.7.1 ")
    assert text.index("raison NOPE") < text.index("reason NOPE")


def test_tempfail_reply() -> None:
    d = POLICY.decide([f("CRASH", Outcome.ERROR)], Direction.OUTBOUND)
    assert d.reply is not None and d.reply.code == 451
    assert "pas perdu" in d.reply.text and "CRASH" in d.reply.text


def test_ascii_replies() -> None:
    r = Reply(550, "5.7.1", ("Message refusé : « données de santé » — œdème",))
    assert r.render("ascii") == '550 5.7.1 Message refuse : "donnees de sante" - oedeme'
    assert to_ascii("clé\u202fNIR") == "cle NIR"


@pytest.mark.parametrize(("data", "key"), [
    ({"thresholds": {"tagg": 5}}, "[thresholds] tagg"),
    ({"symbols": {"A": {"action": "drop"}}}, "[symbols.A] action"),
    ({"symbols": {"A": {"score": "high"}}}, "[symbols.A] score"),
    ({"symbols": {"A": {"scor": 1}}}, "[symbols.A] scor"),
    ({"outcomes": {"ERROR": "ignore"}}, "[outcomes] ERROR"),
])
def test_bad_policy_data_is_named(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Policy.from_data(data)
    assert key in str(err.value)


def test_shipped_rules_load_and_config_overrides_them(tmp_path: Path) -> None:
    cfg = Config()
    policy = Policy.load(cfg)
    assert policy.symbols["HYG_SMUGGLING"].action == "reject"
    cfg.policy = {"symbols": {"HYG_SMUGGLING": {"action": "hold"}},
                  "thresholds": {"tag": 1}}
    policy = Policy.load(cfg)
    assert policy.symbols["HYG_SMUGGLING"].action == "hold"
    assert policy.thresholds["tag"] == 1 and policy.thresholds["reject"] == 15


def test_rules_dir_override(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text("[thresholds]\ntag = 2\n")
    cfg = Config()
    cfg.rules.dir = str(tmp_path)
    assert Policy.load(cfg).thresholds["tag"] == 2
    (tmp_path / "policy.toml").write_text("[thresholds\n")
    with pytest.raises(ConfigError, match=r"policy\.toml"):
        Policy.load(cfg)


# --- pipeline ---------------------------------------------------------------

def msg() -> Message:
    return Message(b"From: a@b\r\n\r\nhi\r\n", Envelope("a@b", ["c@d"], queue_id="Q1"))


class Good:
    name, description = "good", "finds one thing"

    async def run(self, message: Message) -> list[Finding]:
        return [Finding("good", "GOOD", Outcome.HIT)]


class Crash:
    name, description = "crash", "raises"

    async def run(self, message: Message) -> list[Finding]:
        raise ValueError("boom with patient data 185057800608436")


class Slow:
    name, description = "slow", "sleeps"

    async def run(self, message: Message) -> list[Finding]:
        await asyncio.sleep(5)
        return []


async def test_pipeline_turns_crashes_and_timeouts_into_error_findings(
        caplog: pytest.LogCaptureFixture) -> None:
    findings = await Pipeline([Good(), Crash(), Slow()], timeout=0.2).run(msg())
    by_check = {x.check: x for x in findings}
    assert by_check["good"].symbol == "GOOD"
    assert by_check["crash"].outcome is Outcome.ERROR
    assert by_check["crash"].symbol == "CRASH_CRASH"
    assert by_check["slow"].outcome is Outcome.ERROR
    assert by_check["slow"].symbol == "SLOW_TIMEOUT"
    assert "185057800608436" not in caplog.text
    assert POLICY.decide(findings, Direction.OUTBOUND).action == "tempfail"


async def test_checks_run_concurrently() -> None:
    running = 0
    peak = 0
    all_started = asyncio.Event()

    class Nap:
        def __init__(self, n: int) -> None:
            self.name, self.description = f"nap{n}", "naps"

        async def run(self, message: Message) -> list[Finding]:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            if peak == 5:
                all_started.set()
            await all_started.wait()  # would never return if checks ran one by one
            running -= 1
            return []

    await Pipeline([Nap(i) for i in range(5)], timeout=5).run(msg())
    assert peak == 5


# --- byte-level edits ---------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    (b"From: a\r\nSubject: Bilan\r\n\r\nSubject: body\r\n",
     b"From: a\r\nSubject: [vigie] Bilan\r\n\r\nSubject: body\r\n"),
    (b"subject:Bilan\r\n\r\nx\r\n", b"subject:[vigie] Bilan\r\n\r\nx\r\n"),
    (b"Subject: [vigie] Bilan\r\n\r\nx\r\n", b"Subject: [vigie] Bilan\r\n\r\nx\r\n"),
    (b"From: a\r\n\r\nx\r\n", b"Subject: [vigie]\r\nFrom: a\r\n\r\nx\r\n"),
])
def test_prefix_subject(raw: bytes, expected: bytes) -> None:
    assert prefix_subject(raw, "[vigie] ") == expected


def test_prefix_subject_non_ascii_is_encoded() -> None:
    out = prefix_subject(b"Subject: Bilan\r\n\r\nx\r\n", "[SUSPECT] «confrère» ")
    assert out.startswith(b"Subject: =?utf-8?")
    assert out.endswith(b" Bilan\r\n\r\nx\r\n")
    assert out.isascii()


@pytest.mark.parametrize(("raw", "head", "body"), [
    (b"A: 1\r\n\r\nbody", b"A: 1\r\n", b"body"),
    (b"A: 1\n\nbody", b"A: 1\n", b"body"),
    (b"A: 1\r\n", b"A: 1\r\n", b""),
    (b"\r\nbody", b"", b"\r\nbody"),
])
def test_split_header_body(raw: bytes, head: bytes, body: bytes) -> None:
    assert split_header_body(raw) == (head, body)


@pytest.mark.parametrize(("override", "key", "hint"), [
    ({"symbols": {"HYG_NO_DAT": {"score": 1}}}, "[policy.symbols.HYG_NO_DAT]", "HYG_NO_DATE"),
    ({"threshold": {"tag": 1}}, "[threshold]", "section inconnue"),
])
def test_config_policy_typos_are_caught(override: dict[str, object], key: str,
                                        hint: str) -> None:
    cfg = Config()
    cfg.policy = override
    with pytest.raises(ConfigError) as err:
        Policy.load(cfg)
    assert key in str(err.value) and hint in str(err.value)


def test_reject_reply_names_only_what_explains_it() -> None:
    policy = Policy.from_data({"thresholds": {"tag": 5, "reject": 15},
                               "symbols": {"NUL": {"action": "reject"}, "NODATE": {"score": 3},
                                           "DETAIL": {"score": 0}}})
    other_check = Finding("other", "NODATE", Outcome.HIT, (Reason("pas de date", "no date"),))
    forcing = Finding("hyg", "NUL", Outcome.HIT, (Reason("octet nul", "NUL byte"),))
    detail = Finding("hyg", "DETAIL", Outcome.HIT, (Reason("détail", "detail"),))
    d = policy.decide([other_check, forcing, detail], Direction.OUTBOUND)
    assert d.reply is not None
    assert "octet nul" in d.reply.text and "détail" in d.reply.text
    assert "pas de date" not in d.reply.text


def test_policy_forced_tempfail_says_why() -> None:
    policy = Policy.from_data({"symbols": {"GREY": {"action": "tempfail"}}})
    d = policy.decide([Finding("g", "GREY", Outcome.HIT, (Reason("liste grise", "greylisted"),))],
                      Direction.OUTBOUND)
    assert d.reply is not None and d.reply.code == 451
    assert "liste grise" in d.reply.text and "temporairement impossible" not in d.reply.text
