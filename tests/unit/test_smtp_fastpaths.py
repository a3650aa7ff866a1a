"""The gateway's fast paths give aiosmtpd's own answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from gateway.smtp.server import VigieSMTP


class _Handler:
    pass


@pytest.fixture(autouse=True)
def _closed_loop() -> Iterator[None]:
    """aiosmtpd's SMTP() takes the current event loop, creating one when there is none:
    give it one that is closed after the test, not one left to the garbage collector
    (an unclosed loop is a ResourceWarning, an error, in whichever test collects it)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


ARGS = ["<a@b.fr>", "<a.b+c@mail.b.fr> SIZE=1000 BODY=8BITMIME", "<a@b.fr>  ", "<a@b.fr>x",
        " <a-b_c@x-y.example.org>", "<a..b@c.fr>", '<"q u"@b.fr>', "<a@[1.2.3.4]>", "<>",
        "a@b.fr", "<é@b.fr>", "<a@b.fr", "<a@-b.fr>", "<a@b.fr> <c@d.fr>"]


@pytest.mark.parametrize("arg", ARGS)
def test_getaddr_matches_aiosmtpd(arg: str) -> None:
    plain = SMTP(_Handler())
    ours = VigieSMTP(_Handler())
    assert ours._getaddr(arg) == plain._getaddr(arg)


def test_source_routes_are_refused() -> None:
    assert VigieSMTP(_Handler())._getaddr("<@relay.example:victim@example.org>") == (None, None)


@pytest.mark.parametrize(("address", "line"), [
    ("camille@kine-exemple.fr", "<camille@kine-exemple.fr>"),
    ("", "<>"),
    ('"cabinet kiné"@kine-exemple.fr', '<"cabinet kiné"@kine-exemple.fr>'),
])
def test_upstream_address_quoting(address: str, line: str) -> None:
    from gateway.smtp.relay import _quoted

    assert _quoted(address) == line


@pytest.mark.parametrize("address", [
    "a@b.fr> SIZE=1", "a@b.fr\r\nRSET", "a b@c.fr", "<a@b.fr>", 'a"@b.fr', "a@b.fr\x00",
    '"x"@b.fr> AUTH=<>',
])
def test_upstream_address_quoting_refuses_what_could_smuggle_parameters(address: str) -> None:
    from gateway.smtp.relay import _quoted

    with pytest.raises(ValueError):
        _quoted(address)
