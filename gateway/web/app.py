"""The web console and the one-click pages: an aiohttp application rendering Jinja2
templates (autoescaped), French first.

Security in one place: server-side sessions in a ``SameSite=Strict`` HttpOnly cookie,
a CSRF token in every form (a POST without it is refused with 403), a strict CSP
and no script at all, no external assets; the one-click links act only on a POST
from their confirmation page. The console's own access log is off: one-click URLs
are credentials, and URLs never reach a log line.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import ssl
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import markupsafe
from aiohttp import web

from gateway.config import Config
from gateway.dns import Resolver
from gateway.quarantine.display import visible
from gateway.users import UserError, UsersFile
from gateway.web import health, usb
from gateway.web.backend import (
    ACTIONS,
    Action,
    Backend,
    Filters,
    Held,
    TokenError,
)
from gateway.web.chart import bar_chart
from gateway.web.i18n import Lang, pick_lang, translate
from gateway.web.preview import build_preview
from gateway.web.security import (
    COOKIE,
    HEADERS,
    LANG_COOKIE,
    LoginThrottle,
    Nonces,
    Session,
    Sessions,
    csrf_ok,
    load_secret,
)

log = logging.getLogger("vigie.web")

PAGE_SIZE = 50
AUDIT_PAGE = 100
CATEGORIES = ("patient_data", "impersonation", "attachment", "spam", "other")
STATUSES = ("held", "released", "deleted", "reported", "purged")
DIRECTIONS = ("inbound", "outbound")
DIGEST_WHO = "lien du récapitulatif / digest link"
LOGIN_SLOTS = 2  # concurrent scrypt checks: a login flood cannot eat every core

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LANG = web.RequestKey("lang", str)
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
NEW_SESSION = web.RequestKey("new_session", Session)


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.web", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
        auto_reload=False,  # templates are package data: no stat() per page
        finalize=_finalize,
    )
    return env


def _finalize(value: Any) -> Any:
    """Every printed value: direction controls (RLO…) of a file name, subject or
    sender made visible, so «ordonnance.pdf\u202egpj.exe» cannot pass for a PDF."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(visible(str(value)))  # noqa: S704 - already safe markup
    if isinstance(value, str):
        return visible(value)
    return value


def _size(n: int, lang: str = "fr") -> str:
    unit = ("B", "KB", "MB") if lang == "en" else ("o", "Ko", "Mo")
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} {unit[2]}"
    if n >= 1024:
        return f"{n / 1024:.0f} {unit[1]}"
    return f"{n} {unit[0]}"


def _safe_next(value: str | None) -> str:
    """A local path to go back to after logging in (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/messages"


class Console:
    """The aiohttp application and its state (sessions, throttle, secrets)."""

    def __init__(self, cfg: Config, backend: Backend, users: UsersFile, *,
                 resolver: Resolver | None = None,
                 cert_path: Callable[[], Path | None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.backend = backend
        self.users = users
        self.resolver = resolver
        self.cert_path = cert_path
        web_cfg = cfg.web
        self.sessions = Sessions(web_cfg.session_minutes * 60,
                                 web_cfg.session_max_hours * 3600, clock)
        self.throttle = LoginThrottle(web_cfg.max_failures, web_cfg.lockout_minutes * 60,
                                      clock)
        self.nonces = Nonces(load_secret(cfg.data_dir / "web.secret"))
        self.templates = _templates()
        self.login_slots = asyncio.Semaphore(LOGIN_SLOTS)
        tz_name = cfg.digest.timezone or "Europe/Paris"
        try:
            self.tz: datetime.tzinfo = zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.tz = datetime.UTC
        self.static_dir = Path(__file__).parent / "static"
        self._admins: set[str] = set()
        self._admins_stamp: int | None = None

    # --- application ------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._context, self._csrf],
                              client_max_size=64 * 1024)
        app.on_response_prepare.append(self._headers)
        r = app.router
        r.add_get("/", self.root)
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/messages", self.held_list)
        r.add_get("/messages/{id}", self.held_one)
        r.add_post("/messages/{id}/{action}", self.held_action)
        r.add_get("/audit", self.audit_page)
        r.add_get("/dashboard", self.dashboard)
        r.add_get("/usb", self.usb_page)
        r.add_get("/settings", self.settings_page)
        r.add_post("/settings/signal-spam", self.signal_spam_check)
        for prefix in ("/a", "/action"):  # the digest's one-click links
            r.add_get(prefix + "/{token}", self.one_click_form)
            r.add_post(prefix + "/{token}", self.one_click_act)
        r.add_get("/static/style.css", self.stylesheet)
        r.add_get("/favicon.ico", self.favicon)
        return app

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in HEADERS.items():
            response.headers[name] = value
        if request.secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"

    def _secure(self, request: web.Request) -> bool:
        """Is the browser on HTTPS (so cookies get ``Secure``)? Directly, through the
        trusted proxy's X-Forwarded-Proto, or under the https public address's host.
        (Not for a plain-HTTP visit on the listen address: its cookie would never
        come back.)"""
        if request.secure:
            return True
        if self.cfg.web.trusted_proxy and request.remote == self.cfg.web.trusted_proxy \
                and request.headers.get("X-Forwarded-Proto", "").lower() == "https":
            return True
        public = self.cfg.web.public_url
        return public.startswith("https://") and \
            public[len("https://"):].split("/")[0].lower() == request.host.lower()

    def client_ip(self, request: web.Request) -> str:
        remote = request.remote or "?"
        if self.cfg.web.trusted_proxy and remote == self.cfg.web.trusted_proxy:
            forwarded = request.headers.get("X-Forwarded-For", "")
            if forwarded:
                return forwarded.split(",")[-1].strip() or remote
        return remote

    @web.middleware
    async def _context(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        lang = pick_lang(request.query.get("lang"), request.cookies.get(LANG_COOKIE),
                         request.headers.get("Accept-Language"))
        request[LANG] = lang
        request[SESSION] = self.sessions.get(request.cookies.get(COOKIE))
        response = await handler(request)
        if request.query.get("lang") in ("fr", "en"):
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True,
                                samesite="Strict", secure=self._secure(request), path="/")
        return response

    @web.middleware
    async def _csrf(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every POST carries the session's CSRF token, except the one-click pages,
        whose form carries a nonce bound to the link's token instead."""
        if request.method == "POST" and not request.path.startswith(("/a/", "/action/")):
            form = await request.post()
            submitted = form.get("csrf")
            session: Session | None = request[SESSION]
            if request.path != "/login" and (session is None or session.user is None):
                # the session ended (idle, restart) while the form was open: log in
                # again, rather than a «form expired» that suggests a forgery
                self._user(request)
            if not csrf_ok(session, submitted if isinstance(submitted, str) else None):
                log.info("console: POST %s refused: missing or wrong CSRF token",
                         request.match_info.route.resource.canonical
                         if request.match_info.route.resource else "?")
                return self.render(request, "error.html", status=403,
                                   title=self.t(request, "csrf.title"),
                                   text=self.t(request, "csrf.text"))
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.render(request, "error.html", status=404,
                               title=self.t(request, "notfound.title"),
                               text=self.t(request, "notfound.text"))
        except web.HTTPMethodNotAllowed:
            return self.render(request, "error.html", status=405,
                               title=self.t(request, "notfound.title"),
                               text=self.t(request, "notfound.text"))
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # never a traceback on a page; the type only in the log
            log.error("console: %s failed: %s", request.method, type(exc).__name__,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            return self.render(request, "error.html", status=500,
                               title=self.t(request, "error.title"),
                               text=self.t(request, "error.text"))

    # --- helpers ---------------------------------------------------------

    @staticmethod
    def t(request: web.Request, key: str, **values: object) -> str:
        lang: Lang = request.get(LANG, "fr")
        return translate(lang, key, **values)

    def local_time(self, stamp: float, *, seconds: bool = False) -> str:
        return datetime.datetime.fromtimestamp(stamp, self.tz).strftime(
            "%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")

    def render(self, request: web.Request, template: str, *, status: int = 200,
               **context: Any) -> web.Response:
        lang: Lang = request.get(LANG, "fr")
        session: Session | None = request.get(SESSION)
        flash: list[tuple[str, str]] = []
        if session is not None and session.user is not None:
            flash, session.flash = session.flash, []

        def t(key: str, **values: object) -> str:
            return translate(lang, key, **values)

        def reason(r: Any) -> str:
            return str(r.en if lang == "en" else r.fr)

        other = "en" if lang == "fr" else "fr"
        query = dict(request.query)
        query["lang"] = other
        html = self.templates.get_template(template).render(
            t=t, lang=lang, reason=reason, session=session, flash=flash,
            user=session.user if session else None, size=lambda n: _size(n, lang),
            when=self.local_time,
            lang_url=f"{request.path}?{urlencode(query)}", **context)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            status=status)

    def _set_session_cookie(self, request: web.Request, response: web.StreamResponse,
                            session: Session) -> None:
        response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Strict",
                            secure=self._secure(request), path="/")

    def _anonymous(self, request: web.Request) -> Session:
        session: Session | None = request[SESSION]
        if session is None:
            session = self.sessions.new()
            request[SESSION] = session
            request[NEW_SESSION] = session
        return session

    def _still_admin(self, name: str) -> bool:
        """Is ``name`` still an admin in the users file? Re-read only when the file
        changed: deleting a user (or taking --admin away) ends their sessions."""
        try:
            stamp = self.users.path.stat().st_mtime_ns
        except OSError:
            stamp = -1
        if stamp != self._admins_stamp:
            try:
                self._admins = {u.name for u in self.users.load().values() if u.admin}
            except UserError as exc:
                log.error("console: %s", str(exc).splitlines()[-1])
                self._admins = set()
            self._admins_stamp = stamp
        return name in self._admins

    def _user(self, request: web.Request) -> str:
        session: Session | None = request[SESSION]
        if session is not None and session.user is not None \
                and not self._still_admin(session.user):
            self.sessions.drop_user(session.user)
            request[SESSION] = session = None
        if session is None or session.user is None:
            had_cookie = bool(request.cookies.get(COOKIE))
            location = "/login?" + urlencode({"next": request.path_qs,
                                              **({"expired": "1"} if had_cookie else {})})
            raise web.HTTPSeeOther(location)
        return session.user

    async def _audit(self, event: str, who: str, message_id: str = "", **details: Any
                     ) -> None:
        try:
            await self.backend.audit(event, who, message_id, **details)
        except Exception as exc:
            log.error("audit log: cannot record %s: %s", event, type(exc).__name__)

    # --- login ------------------------------------------------------------

    async def root(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        raise web.HTTPSeeOther("/messages")

    async def login_form(self, request: web.Request, *, error: str = "", status: int = 200,
                         name: str = "") -> web.StreamResponse:
        session = self._anonymous(request)
        if session.user is not None and not error:
            raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
        notice = self.t(request, "login.expired") if request.query.get("expired") else ""
        response = self.render(request, "login.html", status=status, error=error,
                               notice=notice, csrf=session.csrf, name=name,
                               next=_safe_next(request.query.get("next")))
        if request.get(NEW_SESSION) is session:
            self._set_session_cookie(request, response, session)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", ""))[:128]
        password = str(form.get("password", ""))[:1024]
        target = _safe_next(str(form.get("next", "")))
        ip = self.client_ip(request)
        keys = (f"ip:{ip}", f"name:{name.lower()}")
        wait = self.throttle.blocked_for(*keys)
        if wait > 0:
            who = name if self._known(name) else "(inconnu)"
            await self._audit("login_refused", who, ip=ip, reason="throttled")
            log.warning("console: login of %s from %s refused: too many failures "
                        "(blocked %d s more)", who, ip, math.ceil(wait))
            return await self.login_form(
                request, status=429, name=name,
                error=self.t(request, "login.blocked", minutes=max(1, math.ceil(wait / 60))))
        async with self.login_slots:
            user = await asyncio.to_thread(self._verify, name, password)
        if user is None or not user.admin:
            if user is None:
                self.throttle.failed(*keys)
                await asyncio.sleep(self.cfg.web.failure_delay)
            known = self._known(name)
            reason = "not_admin" if user is not None else "bad_password"
            await self._audit("login_failed", name if known else "(inconnu)", ip=ip,
                              reason=reason)
            # the journal too (fail2ban, the admin's eyes); never the password, and an
            # unknown name is not written (it may be a password typed in the wrong box)
            log.warning("console: failed login for %s from %s (%s)",
                        name if known else "(unknown name)", ip, reason)
            key = "login.not_admin" if user is not None else "login.failed"
            return await self.login_form(request, status=403 if user else 401, name=name,
                                         error=self.t(request, key))
        self.throttle.succeeded(*keys)
        old: Session | None = request[SESSION]
        if old is not None:
            self.sessions.drop(old.sid)  # a fresh id after login: no session fixation
        session = self.sessions.new(user.name)
        await self._audit("login", user.name, ip=ip)
        log.info("console: %s logged in", user.name)
        response = web.HTTPSeeOther(target)
        self._set_session_cookie(request, response, session)
        raise response

    def _known(self, name: str) -> bool:
        try:
            return name in self.users.load()
        except UserError:
            return False

    def _verify(self, name: str, password: str) -> Any:
        try:
            return self.users.verify(name, password)
        except UserError as exc:
            log.error("console login: %s", str(exc).splitlines()[-1])
            return None

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session: Session | None = request[SESSION]
        if session is not None:
            self.sessions.drop(session.sid)
            if session.user is not None:
                await self._audit("logout", session.user, ip=self.client_ip(request))
        response = web.HTTPSeeOther("/login?" + urlencode({"out": "1"}))
        response.del_cookie(COOKIE, path="/")
        raise response

    # --- held messages --------------------------------------------------

    def _date(self, text: str, *, end: bool) -> float | None:
        day = datetime.date.fromisoformat(text)
        moment = datetime.datetime.combine(day, datetime.time.max if end else datetime.time.min,
                                           self.tz)
        return moment.timestamp()

    async def held_list(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        q = request.query
        problems = []
        since = until = None
        try:
            since = self._date(q["since"], end=False) if q.get("since") else None
            until = self._date(q["until"], end=True) if q.get("until") else None
        except ValueError:
            problems.append(self.t(request, "filter.bad_date"))
        status = q.get("status", "held")
        filters = Filters(
            status=status if status in STATUSES else None,
            direction=q.get("direction") if q.get("direction") in DIRECTIONS else None,
            category=q.get("category") if q.get("category") in CATEGORIES else None,
            sender=(q.get("sender") or "").strip()[:200] or None,
            since=since, until=until)
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        items, total = await self.backend.find(filters, limit=PAGE_SIZE,
                                               offset=(page - 1) * PAGE_SIZE)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        keep = {k: v for k, v in q.items() if k in ("status", "direction", "category",
                                                     "sender", "since", "until") and v}
        keep.setdefault("status", status if status in STATUSES else "")

        def page_url(n: int) -> str:
            return "/messages?" + urlencode({**keep, "page": str(n)})

        labels = {
            "dir": {d: self.t(request, f"dir.{d}") for d in DIRECTIONS},
            "cat": {c: self.t(request, f"cat.{c}") for c in CATEGORIES},
            "status": {s: self.t(request, f"status.{s}") for s in STATUSES},
        }
        return self.render(request, "list.html", items=items, total=total, page=page,
                           labels=labels,
                           pages=pages, page_url=page_url, q=q, current_status=status,
                           problems=problems, categories=CATEGORIES, statuses=STATUSES,
                           directions=DIRECTIONS)

    async def held_one(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        held = await self.backend.get(request.match_info["id"])
        if held is None:
            raise web.HTTPNotFound()
        outbound = held.direction == "outbound"
        show_content = not outbound or request.query.get("contenu") == "1"
        raw = await self.backend.raw(held.id)
        preview = None
        if raw is not None:
            preview = await asyncio.to_thread(build_preview, raw, content=show_content)
            if outbound and show_content:
                await self._audit("view_content", user, held.id, ip=self.client_ip(request))
        session = request[SESSION]
        assert session is not None  # _user() checked it
        return self.render(request, "message.html", held=held, preview=preview,
                           outbound=outbound, show_content=show_content, csrf=session.csrf,
                           actions=self._actions_for(held))

    @staticmethod
    def _actions_for(held: Held) -> list[str]:
        if held.status != "held":
            return []
        if held.direction == "outbound":
            return ["release", "delete"]
        from gateway.engine import allow_lifts

        return [a for a in ACTIONS if a != "allow" or allow_lifts(held.direction, held.symbols)]

    async def held_action(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        message_id, action = request.match_info["id"], request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        held = await self.backend.get(message_id)
        if held is None:
            raise web.HTTPNotFound()
        session = request[SESSION]
        assert session is not None  # _user() checked it
        if action not in self._actions_for(held):
            key = "act.not_held" if held.status != "held" else "act.not_outbound_report"
            session.flash.append(("error", self.t(request, key)))
        else:
            outcome = await self.backend.act(message_id, self._action(action), user)
            text = outcome.en if request[LANG] == "en" else outcome.fr
            session.flash.append(("ok" if outcome.ok else "error", text))
            log.info("console: %s by %s on %s: %s", action, user, message_id,
                     "ok" if outcome.ok else "failed")
        raise web.HTTPSeeOther(f"/messages/{message_id}")

    @staticmethod
    def _action(name: str) -> Action:
        for action in ACTIONS:
            if action == name:
                return action  # type: ignore[return-value]
        raise ValueError(name)

    # --- other pages -------------------------------------------------------

    async def audit_page(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page = 1
        entries, total = await self.backend.audit_entries(limit=AUDIT_PAGE,
                                                          offset=(page - 1) * AUDIT_PAGE)
        pages = max(1, math.ceil(total / AUDIT_PAGE))
        return self.render(request, "audit.html", entries=entries, page=page, pages=pages,
                           tz=self.tz)

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        stats = await self.backend.stats(time.time() - 30 * 86400)
        rows = []
        for category in CATEGORIES:
            counts = [stats.by_reason.get((category, d), 0) for d in DIRECTIONS]
            if sum(counts):
                rows.append((category, counts))
        labels = [(self.t(request, f"cat.{c}"), counts) for c, counts in rows]
        series = [self.t(request, f"dir.{d}") for d in DIRECTIONS]
        chart = bar_chart(labels, series, self.t(request, "dash.chart")) if rows else ""
        totals = [sum(counts[i] for _, counts in rows) for i in range(len(DIRECTIONS))]
        reports = await asyncio.to_thread(usb.list_reports, self.cfg.data_dir / "usb-reports",
                                          1, self.tz)
        return self.render(request, "dashboard.html", rows=rows, chart=chart, totals=totals,
                           by_status=stats.by_status, directions=DIRECTIONS,
                           last_usb=reports[0] if reports else None)

    async def usb_page(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        reports = await asyncio.to_thread(usb.list_reports, self.cfg.data_dir / "usb-reports",
                                          usb.MAX_REPORTS, self.tz)
        return self.render(request, "usb.html", reports=reports,
                           count_labels=usb.COUNT_LABELS)

    async def settings_page(self, request: web.Request) -> web.StreamResponse:
        self._user(request)
        resolver = self.resolver
        if resolver is None:
            from gateway.dns import DnsPythonResolver

            resolver = DnsPythonResolver(self.cfg.dns)
        checks = await health.run_checks(self.cfg, resolver, self.cert_path())
        session = request[SESSION]
        assert session is not None
        return self.render(request, "settings.html", checks=checks, csrf=session.csrf)

    async def signal_spam_check(self, request: web.Request) -> web.StreamResponse:
        user = self._user(request)
        session = request[SESSION]
        assert session is not None
        outcome = await self.backend.check_signal_spam()
        session.flash.append(("ok" if outcome.ok else "error",
                              outcome.en if request[LANG] == "en" else outcome.fr))
        log.info("console: Signal Spam credentials checked by %s: %s", user,
                 "ok" if outcome.ok else "refused")
        raise web.HTTPSeeOther("/settings")

    async def favicon(self, request: web.Request) -> web.StreamResponse:
        """Browsers ask for it on every visit: nothing, rather than a 404 page."""
        return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})

    async def stylesheet(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self.static_dir / "style.css",
                                headers={"Content-Type": "text/css; charset=utf-8"})

    # --- one-click pages -----------------------------------------------

    def _token_problem(self, request: web.Request, problem: TokenError) -> web.Response:
        key = {"invalid": "oc.invalid", "wrong_action": "oc.invalid", "expired": "oc.expired",
               "used": "oc.used"}[problem.problem]
        status = 410 if problem.problem in ("expired", "used") else 404
        return self.render(request, "error.html", status=status,
                           title=self.t(request, "oc.invalid.title"),
                           text=self.t(request, key))

    async def one_click_form(self, request: web.Request) -> web.StreamResponse:
        """GET: only a confirmation page with one button; nothing is done here."""
        token = request.match_info["token"]
        info = await self.backend.peek_token(token)
        if isinstance(info, TokenError):
            return self._token_problem(request, info)
        held = await self.backend.get(info.message_id)
        if held is None:
            return self._token_problem(request, TokenError("invalid"))
        if held.status != "held":  # released or deleted meanwhile (from the console…)
            return self.render(request, "error.html", status=409,
                               title=self.t(request, "oc.failed.title"),
                               text=self.t(request, "act.not_held"))
        return self.render(request, "confirm.html", held=held, action=info.action,
                           nonce=self.nonces.issue(f"{token}\0{info.action}"),
                           post_url=request.path)

    async def one_click_act(self, request: web.Request) -> web.StreamResponse:
        """POST from the confirmation page: the nonce proves the page was seen; the
        token is used up, then the action is done."""
        token = request.match_info["token"]
        form = await request.post()
        action_text = str(form.get("action", ""))
        nonce = form.get("nonce")
        state = "invalid" if action_text not in ACTIONS else self.nonces.status(
            f"{token}\0{action_text}", nonce if isinstance(nonce, str) else None)
        if state != "ok":  # «too old» only when it is the right page, seen too long ago
            return self.render(request, "error.html", status=403,
                               title=self.t(request, "oc.invalid.title"),
                               text=self.t(request, "oc.nonce" if state == "expired"
                                           else "oc.bad_form"))
        action = self._action(action_text)
        # What the link is for, checked before it is used up: a link that cannot act
        # (message no longer held, outbound mail to report) stays as it was.
        peeked = await self.backend.peek_token(token)
        if isinstance(peeked, TokenError):
            return self._token_problem(request, peeked)
        held = await self.backend.get(peeked.message_id)
        if held is None or held.status != "held":
            return self.render(request, "error.html", status=409,
                               title=self.t(request, "oc.failed.title"),
                               text=self.t(request, "act.not_held"))
        if action == "report" and held.direction == "outbound":
            return self.render(request, "error.html", status=409,
                               title=self.t(request, "oc.failed.title"),
                               text=self.t(request, "act.not_outbound_report"))
        info = await self.backend.consume_token(token, action)  # once, bound to the action
        if isinstance(info, TokenError):
            return self._token_problem(request, info)
        await self._audit("one_click", DIGEST_WHO, info.message_id, action=action,
                          ip=self.client_ip(request))  # who clicked, from where
        outcome = await self.backend.act(info.message_id, action, DIGEST_WHO)
        if not outcome.ok:  # nothing done (next hop refused for now…): the link still works
            await self.backend.restore_token(token)
        log.info("one-click: %s on %s: %s", action, info.message_id,
                 "ok" if outcome.ok else "failed")
        return self.render(request, "done.html", status=200 if outcome.ok else 502,
                           held=held, action=action, outcome=outcome)


class WebService:
    """The console as a service of ``vigie serve`` (``async start()`` / ``stop()``)."""

    def __init__(self, console: Console | None, listen: tuple[str, int],
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.console = console
        self.listen = listen
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        assert self.console is not None
        runner = web.AppRunner(self.console.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.listen[0], self.listen[1],
                           ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        scheme = "https" if self.ssl_context else "http"
        log.info("web console on %s://%s:%d", scheme, self.listen[0], self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = self.listen[0]
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

