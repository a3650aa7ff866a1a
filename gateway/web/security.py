"""Console security: server-side sessions, CSRF tokens, login throttling, the
one-click nonce, and the response headers every page carries.

Nothing here touches the network; clocks are injectable for tests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.quarantine.folder import durable_write_file, ensure_private_dir

COOKIE = "vigie_session"
LANG_COOKIE = "vigie_lang"

# Every page: nothing from elsewhere, no script at all, no framing, no referrer.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
    "Cache-Control": "no-store",
}

Clock = Callable[[], float]


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    seen: float
    user: str | None = None  # None: not logged in yet (the login form's own CSRF token)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message key/text)


class Sessions:
    """Random session ids kept in memory: a restart logs everybody out, which is
    fine for a console of one practice. Idle and absolute expiry."""

    MAX_ANONYMOUS = 5000  # login forms opened and never posted: oldest forgotten

    def __init__(self, idle: float, max_age: float, clock: Clock = time.monotonic) -> None:
        self.idle, self.max_age, self.clock = idle, max_age, clock
        self._by_id: dict[str, Session] = {}

    def new(self, user: str | None = None) -> Session:
        now = self.clock()
        if len(self._by_id) > self.MAX_ANONYMOUS:
            self.prune()
            anonymous = [s for s in self._by_id.values() if s.user is None]
            for s in sorted(anonymous, key=lambda s: s.seen)[: len(anonymous) // 2]:
                del self._by_id[s.sid]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now, user)
        self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > self.idle or now - session.created > self.max_age:
            del self._by_id[sid]
            return None
        session.seen = now
        return session

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def drop_user(self, user: str) -> None:
        for sid in [s.sid for s in self._by_id.values() if s.user == user]:
            del self._by_id[sid]

    def prune(self) -> None:
        now = self.clock()
        for sid in [s.sid for s in self._by_id.values()
                    if now - s.seen > self.idle or now - s.created > self.max_age]:
            del self._by_id[sid]

    def __len__(self) -> int:
        return len(self._by_id)


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return (session is not None and bool(submitted)
            and hmac.compare_digest(session.csrf.encode(), (submitted or "").encode()))


class LoginThrottle:
    """Failed logins per client address and per name in a sliding window: past
    ``max_failures`` the address (or name) is refused without checking the
    password until the window has moved on."""

    def __init__(self, max_failures: int, window: float, clock: Clock = time.monotonic
                 ) -> None:
        self.max_failures, self.window, self.clock = max_failures, window, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        limit = self.clock() - self.window
        while stamps and stamps[0] < limit:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def blocked_for(self, *keys: str) -> float:
        """Seconds until a login may be tried again (0: allowed now)."""
        wait = 0.0
        for key in keys:
            stamps = self._recent(key)
            if len(stamps) >= self.max_failures:
                wait = max(wait, stamps[0] + self.window - self.clock())
        return wait

    def failed(self, *keys: str) -> None:
        if len(self._failures) > 10000:
            self._failures.clear()  # a flood of addresses: start over rather than grow
        for key in keys:
            self._failures.setdefault(key, deque()).append(self.clock())

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


def load_secret(path: Path) -> bytes:
    """The console's HMAC key (one-click nonces), created 0600 on first start so a
    restart between the confirmation page and the click keeps the page valid."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    ensure_private_dir(path.parent)
    data = os.urandom(32)
    durable_write_file(path, data, mode=0o600)
    return data


class Nonces:
    """A nonce bound to one one-click token, put in the confirmation page's form:
    the POST must carry it, so only a person who saw that page acts (a scanner
    POSTing to the bare link gets a «page expirée» answer)."""

    def __init__(self, secret: bytes, ttl: float = 3600.0, clock: Clock = time.time) -> None:
        self.secret, self.ttl, self.clock = secret, ttl, clock

    def _mac(self, token: str, stamp: int) -> str:
        msg = f"one-click\0{token}\0{stamp}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def issue(self, token: str) -> str:
        stamp = int(self.clock())
        return f"{stamp}.{self._mac(token, stamp)}"

    def check(self, token: str, nonce: str | None) -> bool:
        return self.status(token, nonce) == "ok"

    def status(self, token: str, nonce: str | None) -> str:
        """"ok"; "expired" (the right page, seen too long ago); "invalid" (missing,
        altered, or from the page of another action)."""
        stamp_text, _, mac = (nonce or "").partition(".")
        if not stamp_text.isdigit() or not mac:
            return "invalid"
        stamp = int(stamp_text)
        if not hmac.compare_digest(self._mac(token, stamp), mac):
            return "invalid"
        return "ok" if 0 <= self.clock() - stamp <= self.ttl else "expired"
