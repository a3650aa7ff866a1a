"""Reports to Signal Spam (signal-spam.fr), only on a person's click.

``POST <endpoint>`` with HTTP Basic (the practice's own Signal Spam login, stored
sealed with the quarantine key) and the form field ``message`` = base64 of the raw
message, vigie's own Received line removed first so the real origin comes first.
200/201/202 = reported; 401 or a 302 to a login page = bad credentials; 403 = the
account is not confirmed yet; 404 = the endpoint moved; 400 = refused; 5xx and
timeouts are retried with backoff, within a deadline when a person is waiting (the
console: ``INTERACTIVE_DEADLINE``). A ``GET`` with the same credentials checks them.
Outbound mail is never reported (it is the practice's own, and may hold patient data).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from gateway.config import Config
from gateway.quarantine.actions import ActionResult
from gateway.quarantine.service import Quarantine
from gateway.quarantine.store import NotFound

log = logging.getLogger("vigie.signal_spam")

# A person waiting on a console page: every attempt and wait within this many seconds
# (the CLI and the defaults allow timeout × (retries + 1) plus the backoff, ~30 s).
INTERACTIVE_DEADLINE = 12.0

SECRET_NAME = "signal_spam"  # noqa: S105 - the name of a sealed entry, not a password


class ReportStatus(enum.StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    NOT_CONFIRMED = "not_confirmed"
    REFUSED = "refused"  # 400, another 4xx
    NOT_FOUND = "not_found"  # 404, 410: the endpoint may have moved
    UNAVAILABLE = "unavailable"  # 5xx or timeouts, after the retries
    NO_CREDENTIALS = "no_credentials"
    NOT_ALLOWED = "not_allowed"  # outbound mail


_MESSAGES: dict[ReportStatus, tuple[str, str]] = {
    ReportStatus.OK: ("message signalé à Signal Spam, merci", "message reported to Signal Spam"),
    ReportStatus.BAD_CREDENTIALS: (
        "Signal Spam refuse l'identifiant ou le mot de passe : vérifiez-les (« vigie "
        "signal-spam login »)",
        "Signal Spam refused the login or password: check them ('vigie signal-spam login')"),
    ReportStatus.NOT_CONFIRMED: (
        "le compte Signal Spam n'est pas encore confirmé : cliquez sur le lien du courriel "
        "reçu à l'inscription",
        "the Signal Spam account is not confirmed yet: click the link of the sign-up e-mail"),
    ReportStatus.REFUSED: ("Signal Spam a refusé ce signalement",
                           "Signal Spam refused this report"),
    ReportStatus.NOT_FOUND: (
        "l'adresse de Signal Spam n'existe pas (HTTP 404) : le service a peut-être changé "
        "d'adresse, vérifiez [signal_spam] endpoint dans la configuration",
        "the Signal Spam address does not exist (HTTP 404): the service may have moved, "
        "check [signal_spam] endpoint in the configuration"),
    ReportStatus.UNAVAILABLE: (
        "Signal Spam ne répond pas pour l'instant : réessayez plus tard",
        "Signal Spam is not answering now: try again later"),
    ReportStatus.NO_CREDENTIALS: (
        "aucun compte Signal Spam enregistré : créez-en un sur signal-spam.fr puis "
        "« vigie signal-spam login »",
        "no Signal Spam account saved: create one on signal-spam.fr, then "
        "'vigie signal-spam login'"),
    ReportStatus.NOT_ALLOWED: (
        "un message envoyé par le cabinet ne se signale pas à Signal Spam",
        "mail sent by the practice is not reported to Signal Spam"),
}


@dataclass(frozen=True, slots=True)
class SignalSpamResult:
    status: ReportStatus
    http_status: int | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status is ReportStatus.OK

    @property
    def fr(self) -> str:
        return _MESSAGES[self.status][0]

    @property
    def en(self) -> str:
        return _MESSAGES[self.status][1]


def classify(http_status: int) -> ReportStatus | None:
    """The meaning of an answer; None for one worth retrying (5xx)."""
    if http_status in (200, 201, 202):
        return ReportStatus.OK
    if http_status in (401, 302, 303, 301, 307):
        return ReportStatus.BAD_CREDENTIALS
    if http_status == 403:
        return ReportStatus.NOT_CONFIRMED
    if http_status in (404, 410):
        return ReportStatus.NOT_FOUND
    if http_status >= 500:
        return None
    return ReportStatus.REFUSED


_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:")


def _header_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (continuation lines kept with their field) and the rest."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end + 1
        line = raw[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif _FIELD_START.match(line):
            fields.append(line)
        else:
            break
        pos = end
    return fields, raw[sum(map(len, fields)):]


def strip_own_received(raw: bytes, hostname: str) -> bytes:
    """``raw`` without the topmost Received field that vigie added (``by <hostname>
    (vigie)``); every other byte as it was."""
    fields, rest = _header_fields(raw)
    by = re.compile(rb"\bby\s+" + re.escape(hostname.encode("ascii", "ignore")) +
                    rb"(?:\s|\(|;|$)", re.IGNORECASE)
    for i, field in enumerate(fields):
        if field[:9].lower() == b"received:" and by.search(field):
            return b"".join(fields[:i] + fields[i + 1:]) + rest
    return raw


class SignalSpamClient:
    """The HTTP client (aiohttp); one session per call, nothing kept open."""

    def __init__(self, endpoint: str, credentials: tuple[str, str] | None, *,
                 timeout: float = 20.0, retries: int = 3, backoff: float = 1.0,
                 deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.deadline = deadline  # seconds for all attempts and waits; None: no limit
        self.clock = clock

    @classmethod
    def from_config(cls, cfg: Config, credentials: tuple[str, str] | None, *,
                    deadline: float | None = None) -> SignalSpamClient:
        s = cfg.signal_spam
        return cls(s.endpoint, credentials, timeout=s.timeout, retries=s.retries,
                   deadline=deadline)

    async def _request(self, method: str, data: dict[str, str] | None) -> SignalSpamResult:
        if self.credentials is None:
            return SignalSpamResult(ReportStatus.NO_CREDENTIALS)
        login, password = self.credentials
        # HTTP Basic by hand: aiohttp's BasicAuth is deprecated; a colon ends the login
        token = base64.b64encode(f"{login.replace(':', '')}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        end = None if self.deadline is None else self.clock() + self.deadline
        last: int | None = None
        attempt = 0
        for attempt in range(1, self.retries + 2):
            left = self.timeout if end is None else min(self.timeout, end - self.clock())
            if left <= 0:
                attempt -= 1
                break
            timeout = aiohttp.ClientTimeout(total=left)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, \
                        session.request(method, self.endpoint, data=data, headers=headers,
                                        allow_redirects=False) as resp:
                    last = resp.status
                    status = classify(resp.status)
                    if status is not None:
                        return SignalSpamResult(status, resp.status, attempt)
                    log.warning("signal spam: HTTP %d (attempt %d)", resp.status, attempt)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("signal spam: %s (attempt %d)", type(exc).__name__, attempt)
            if attempt <= self.retries:
                wait = self.backoff * 2 ** (attempt - 1)
                if end is not None and self.clock() + wait >= end:
                    break  # no time left for another try: say so now
                await asyncio.sleep(wait)
        return SignalSpamResult(ReportStatus.UNAVAILABLE, last, attempt)

    async def report(self, raw: bytes) -> SignalSpamResult:
        """Report one raw message (vigie's Received line already removed)."""
        return await self._request("POST", {
            "message": base64.b64encode(raw).decode("ascii"), "dossier": "0"})

    async def check_credentials(self) -> SignalSpamResult:
        """The «check credentials» button: a GET with the same authentication."""
        return await self._request("GET", None)


async def save_credentials(quarantine: Quarantine, login: str, password: str,
                           who: str | None = None) -> None:
    await quarantine.secrets.put(SECRET_NAME, json.dumps(
        {"login": login, "password": password}).encode("utf-8"))
    await quarantine.audit.record("signal_spam_login", who)


async def load_credentials(quarantine: Quarantine) -> tuple[str, str] | None:
    blob = await quarantine.secrets.get(SECRET_NAME)
    if blob is None:
        return None
    data = json.loads(blob.decode("utf-8"))
    return str(data["login"]), str(data["password"])


async def report_held(quarantine: Quarantine, cfg: Config, message_id: str, who: str | None,
                      client: SignalSpamClient | None = None, *,
                      deadline: float | None = None) -> ActionResult:
    """Report a held inbound message; once reported it is deleted. Audited."""
    summary = await quarantine.store.get(message_id)
    if summary is None:
        raise NotFound(message_id)
    if summary.direction != "inbound":
        result = SignalSpamResult(ReportStatus.NOT_ALLOWED)
    else:
        if client is None:
            client = SignalSpamClient.from_config(cfg, await load_credentials(quarantine),
                                                  deadline=deadline)
        raw = await quarantine.store.raw(message_id)
        result = await client.report(strip_own_received(raw, cfg.hostname))
    await quarantine.audit.record("report", who, message_id, result=result.status.value,
                                  http_status=result.http_status, attempts=result.attempts)
    status = summary.status
    if result.ok and summary.status == "held":
        await quarantine.store.set_status(message_id, "deleted", who=who)
        status = "deleted"
    return ActionResult(result.ok, "report", message_id, result.fr, result.en,
                        code=result.http_status or 0, status=status)
