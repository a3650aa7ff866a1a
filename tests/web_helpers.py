"""Driving the console of a test gateway from blocking test code: a cookie-keeping
HTTP client, and the quarantine opened beside the running gateway."""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.config import Config
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import HoldMeta
from gateway.testing import GatewayThread
from gateway.verdict import Reason

T = TypeVar("T")
ADMIN, ADMIN_PW = "docteur", "console-password-1"


def console_url(gw: GatewayThread) -> str:
    return gw.gateway.console.url


def with_quarantine(cfg: Config, job: Callable[[Quarantine], Awaitable[T]]) -> T:
    """Run ``job`` on the quarantine of ``cfg`` (its own connection to the database),
    in a thread of its own: Playwright's sync API keeps a loop running in this one."""
    async def run() -> T:
        q = Quarantine.open(cfg)
        try:
            return await job(q)
        finally:
            q.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(30)


def issue_token(cfg: Config, message_id: str, action: str) -> str:
    return with_quarantine(cfg, lambda q: q.tokens.issue(message_id, action))


def hold_inbound(cfg: Config, raw: bytes, subject: str, sender: str = "x@example.org"
                 ) -> str:
    meta = HoldMeta(direction="inbound", mail_from=sender,
                    rcpt_tos=["camille@cabinet-kine.fr"], symbols=["SPAM_LIKE"],
                    reasons=[Reason("ressemble à un spam", "spam-like")], category="spam",
                    subject=subject)
    return with_quarantine(cfg, lambda q: q.store.hold(raw, meta))


def status_of(cfg: Config, message_id: str) -> str:
    async def job(q: Quarantine) -> str:
        summary = await q.store.get(message_id)
        assert summary is not None
        return summary.status

    return with_quarantine(cfg, job)


def held_ids(cfg: Config) -> list[str]:
    async def job(q: Quarantine) -> list[str]:
        items, _ = await q.store.list(status="held")
        return [s.id for s in items]

    return with_quarantine(cfg, job)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browserless:
    """A tiny HTTP client with cookies: status, headers and text of each answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, path: str, data: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        try:
            with self.opener.open(req, timeout=15) as resp:
                return resp.status, dict(resp.headers), resp.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            return exc.code, dict(exc.headers), text

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request(path)

    def post(self, path: str, data: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self.request(path, data)

    def login(self, name: str = ADMIN, password: str = ADMIN_PW) -> int:
        _, _, page = self.get("/login")
        status, _, _ = self.post("/login", {"name": name, "password": password,
                                            "csrf": field(page, "csrf"),
                                            "next": "/messages"})
        return status


def field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, f"no {name} field in the page"
    return html.unescape(m.group(1))
