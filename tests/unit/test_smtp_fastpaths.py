"""The gateway's fast paths give aiosmtpd's own answers."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from gateway.smtp.server import VigieSMTP


class _Handler:
    pass


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
