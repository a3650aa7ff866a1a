"""One-click tokens: random, hashed at rest, expiring, single-use, bound to message and
action; every failure distinguishable."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.quarantine.db import Database
from gateway.quarantine.tokens import (
    TokenExpired,
    Tokens,
    TokenUnknown,
    TokenUsed,
    TokenWrongAction,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def tokens(tmp_path: Path, clock: Clock) -> AsyncIterator[Tokens]:
    db = Database(tmp_path / "q.sqlite")
    yield Tokens(db, ttl=7 * 86400, clock=clock)
    db.close()


async def test_issue_check_consume(tokens: Tokens) -> None:
    token = await tokens.issue("MSG1", "release")
    assert len(token) >= 43 and token.isascii()
    info = await tokens.check(token)
    assert (info.message_id, info.action) == ("MSG1", "release")
    await tokens.check(token, "release")  # a GET shows the page: nothing is used
    assert await tokens.consume(token, "release") == "MSG1"


async def test_stored_hashed_never_in_clear(tokens: Tokens, tmp_path: Path) -> None:
    token = await tokens.issue("MSG1", "delete")
    tokens.db.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert token.encode() not in data
    stored = tokens.db.call(lambda c: c.execute("SELECT hash FROM tokens").fetchone()[0])
    assert stored == hashlib.sha256(token.encode()).digest()


async def test_single_use(tokens: Tokens) -> None:
    token = await tokens.issue("MSG1", "release")
    await tokens.consume(token, "release")
    with pytest.raises(TokenUsed):
        await tokens.consume(token, "release")
    with pytest.raises(TokenUsed):
        await tokens.check(token)


async def test_two_clicks_at_once_act_once(tokens: Tokens) -> None:
    token = await tokens.issue("MSG1", "release")
    results = await asyncio.gather(*(tokens.consume(token, "release") for _ in range(5)),
                                   return_exceptions=True)
    assert results.count("MSG1") == 1
    assert all(isinstance(r, TokenUsed) for r in results if r != "MSG1")


async def test_expiry(tokens: Tokens, clock: Clock) -> None:
    token = await tokens.issue("MSG1", "report")
    short = await tokens.issue("MSG1", "delete", ttl=60)
    clock.now += 61
    with pytest.raises(TokenExpired):
        await tokens.consume(short, "delete")
    clock.now += 7 * 86400
    with pytest.raises(TokenExpired):
        await tokens.check(token)
    with pytest.raises(TokenExpired):
        await tokens.consume(token, "report")


async def test_tampered_and_unknown(tokens: Tokens) -> None:
    token = await tokens.issue("MSG1", "release")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, token[:-2], token + "x", "", "a" * 43, "../../etc"):
        with pytest.raises(TokenUnknown):
            await tokens.consume(bad, "release")
    assert await tokens.consume(token, "release") == "MSG1"  # still good


async def test_bound_to_its_action(tokens: Tokens) -> None:
    token = await tokens.issue("MSG1", "allow")
    with pytest.raises(TokenWrongAction):
        await tokens.consume(token, "release")
    assert await tokens.consume(token, "allow") == "MSG1"  # a wrong try does not use it


async def test_errors_say_what_to_do_in_french_first(tokens: Tokens) -> None:
    for exc in (TokenUnknown(), TokenExpired(), TokenUsed(), TokenWrongAction()):
        fr, en = str(exc).split("\n")
        assert fr and en and fr != en
    with pytest.raises(ValueError):
        await tokens.issue("MSG1", "explode")
