"""The quarantine store: held messages encrypted at rest, metadata for listing.

A held message is one sealed blob file ``<dir>/blobs/<id>`` (the envelope and the
original bytes, AES-GCM, the id as associated data), written durably first, then
one row committed in SQLite (WAL, ``synchronous=FULL``): ``hold()`` returns only
once both are on disk, so the client hears 250 only then. A crash between the two
leaves a blob without a row: invisible, and moved aside by ``recover()`` at the
next start (the client, which heard no 250, sends the message again).

The row holds what listing needs and no patient data in clear: date, direction,
sender, recipient *domains*, size, symbols, reasons in plain words, category, and
a subject for inbound mail only (never for outbound mail).

``QuarantineStore`` is the interface (a PostgreSQL backend can follow);
``SQLiteStore`` the embedded one.
"""

from __future__ import annotations

import builtins
import email.parser
import email.policy
import json
import logging
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from gateway.model import domain_of
from gateway.quarantine.crypto import Sealer
from gateway.quarantine.db import Database, transaction
from gateway.quarantine.folder import durable_write_file, ensure_private_dir
from gateway.verdict import Reason

log = logging.getLogger("vigie.quarantine")

Category = Literal["patient_data", "impersonation", "attachment", "spam", "other"]
CATEGORIES: tuple[Category, ...] = ("patient_data", "impersonation", "attachment", "spam",
                                    "other")
Status = Literal["held", "released", "deleted", "purged"]
STATUSES: tuple[Status, ...] = ("held", "released", "deleted", "purged")
DIRECTIONS = ("inbound", "outbound")

_ID = re.compile(r"[A-Za-z0-9_-]{4,64}")


class QuarantineError(Exception):
    """A store problem a person can understand; str() is French then English."""

    def __init__(self, fr: str, en: str) -> None:
        self.fr, self.en = fr, en
        super().__init__(f"{fr}\n{en}")


class NotFound(QuarantineError):
    def __init__(self, message_id: str) -> None:
        super().__init__(f"message {message_id} introuvable en quarantaine",
                         f"message {message_id} not found in quarantine")
        self.message_id = message_id


class Gone(QuarantineError):
    """The row exists but its content was deleted or purged."""

    def __init__(self, message_id: str, status: str) -> None:
        fr = {"deleted": "supprimé", "purged": "effacé après le délai de conservation"}
        super().__init__(f"message {message_id} déjà {fr.get(status, status)}",
                         f"message {message_id} already {status}")
        self.message_id, self.status = message_id, status


@dataclass(frozen=True, slots=True)
class HoldMeta:
    """What the hold path knows about a message, beside its bytes.

    ``subject`` is kept for inbound mail only; ``reasons`` must be plain words that
    quote nothing of an outbound message (see ``gateway.quarantine.reasons``).
    """

    direction: str
    mail_from: str
    rcpt_tos: Sequence[str]
    mail_options: Sequence[str] = ()
    symbols: Sequence[str] = ()
    reasons: Sequence[Reason] = ()
    category: str = "other"
    subject: str | None = None
    auth_user: str | None = None
    queue_id: str = ""
    received_at: float | None = None
    # the checks' evidence, already masked and filtered for what may be shown
    # (``gateway.quarantine.reasons.shown_evidence``)
    evidence: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class HeldSummary:
    """One held message as listed: no patient data in clear."""

    id: str
    received_at: float
    direction: str
    sender: str
    rcpt_domains: list[str]
    subject: str | None  # inbound only; always None for outbound mail
    size: int
    symbols: list[str]
    reasons: list[Reason]
    category: str
    status: str  # held | released | deleted | purged
    release_reply: str | None = None
    status_at: float | None = None
    status_by: str | None = None
    queue_id: str = ""
    evidence: list[str] = field(default_factory=list)
    from_header: str | None = None  # the From: header, as shown (display name + address)


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A held message opened: its summary, decrypted envelope and original bytes."""

    summary: HeldSummary
    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str] = field(default_factory=list)
    auth_user: str | None = None


@dataclass(frozen=True, slots=True)
class StatRow:
    """Messages held on one (UTC) day, per direction and category."""

    day: str  # YYYY-MM-DD
    direction: str
    category: str
    count: int


class QuarantineStore(Protocol):
    """What the hold path, the digest, the CLI and the web console use."""

    async def hold(self, raw: bytes, meta: HoldMeta) -> str: ...
    async def list(self, *, status: str | None = "held", direction: str | None = None,
                   category: str | None = None, since: float | None = None,
                   until: float | None = None, sender_like: str | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[HeldSummary], int]: ...
    async def get(self, message_id: str) -> HeldSummary | None: ...
    async def open(self, message_id: str) -> HeldMessage: ...
    async def raw(self, message_id: str) -> bytes: ...
    async def set_status(self, message_id: str, status: str, *, reply: str | None = None,
                         who: str | None = None) -> None: ...
    async def purge(self, older_than: float) -> int: ...
    async def stats(self, since: float) -> builtins.list[StatRow]: ...


def from_header(raw: bytes) -> str | None:
    """The From: header as people read it (display name and address), one line of
    at most 300 characters; None when absent or unreadable. The From header, not the
    envelope sender, is what a forger fakes («Dr Paul Martin <…@medecin.mssante.fr>»)."""
    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            head + b"\r\n\r\n")
        value = parsed.get("from")
        text = " ".join(str(value).split()) if value is not None else ""
    except Exception:  # a broken header: nothing to show, not an error
        return None
    return text[:300] or None


def _reasons_json(reasons: Sequence[Reason]) -> str:
    return json.dumps([r.to_json() for r in reasons], ensure_ascii=False)


def _summary(row: sqlite3.Row | tuple[Any, ...]) -> HeldSummary:
    (mid, queue_id, received_at, direction, sender, rcpt_domains, subject, size, symbols,
     reasons, category, status, status_at, status_by, release_reply, evidence,
     from_header) = tuple(row)
    return HeldSummary(
        id=mid, received_at=received_at, direction=direction, sender=sender,
        rcpt_domains=json.loads(rcpt_domains), subject=subject, size=size,
        symbols=json.loads(symbols),
        reasons=[Reason(r["fr"], r["en"]) for r in json.loads(reasons)],
        category=category, status=status, release_reply=release_reply, status_at=status_at,
        status_by=status_by, queue_id=queue_id, evidence=json.loads(evidence or "[]"),
        from_header=from_header)


_COLUMNS = ("id, queue_id, received_at, direction, sender, rcpt_domains, subject, size, "
            "symbols, reasons, category, status, status_at, status_by, release_reply, "
            "evidence, from_header")


_SELECT_ONE = f"SELECT {_COLUMNS} FROM held WHERE id = ?"  # noqa: S608 - constant


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SQLiteStore:
    """The embedded store: ``<data_dir>/quarantine/{quarantine.sqlite, blobs/}``."""

    def __init__(self, root: Path, sealer: Sealer, db: Database | None = None) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.orphans = root / "orphans"
        self.sealer = sealer
        self.db = db or Database(root / "quarantine.sqlite")
        # Test hook: called between the blob write and the row commit.
        self._between_steps: Any = None

    # --- writing --------------------------------------------------------
    def _blob_path(self, message_id: str) -> Path:
        if not _ID.fullmatch(message_id):
            raise NotFound(message_id)
        return self.blobs / message_id

    def _new_id(self, conn: sqlite3.Connection, wanted: str) -> str:
        candidate = wanted if wanted and _ID.fullmatch(wanted) else secrets.token_hex(5).upper()
        while (conn.execute("SELECT 1 FROM held WHERE id = ?", (candidate,)).fetchone()
               or (self.blobs / candidate).exists()):
            candidate = secrets.token_hex(6).upper()
        return candidate

    def hold_sync(self, raw: bytes, meta: HoldMeta) -> str:
        """Blocking ``hold``: blob durably written, then the row committed."""
        if meta.direction not in DIRECTIONS:
            raise ValueError(f"direction {meta.direction!r}")
        ensure_private_dir(self.root)
        ensure_private_dir(self.blobs)
        message_id = self.db.call(lambda conn: self._new_id(conn, meta.queue_id))
        envelope = json.dumps({
            "mail_from": meta.mail_from, "rcpt_tos": list(meta.rcpt_tos),
            "mail_options": list(meta.mail_options), "auth_user": meta.auth_user,
        }, ensure_ascii=False).encode("utf-8")
        plain = len(envelope).to_bytes(4, "big") + envelope + raw
        blob_path = self.blobs / message_id
        durable_write_file(blob_path, self.sealer.seal(plain, message_id.encode("ascii")))
        try:
            if self._between_steps is not None:
                self._between_steps(message_id)
            subject = meta.subject if meta.direction == "inbound" else None
            received = meta.received_at if meta.received_at is not None else time.time()
            row = (message_id, meta.queue_id, received, meta.direction, meta.mail_from,
                   meta.mail_from.lower(),
                   json.dumps(sorted({domain_of(r) for r in meta.rcpt_tos})),
                   subject, len(raw), json.dumps(list(meta.symbols)),
                   _reasons_json(meta.reasons),
                   meta.category if meta.category in CATEGORIES else "other",
                   json.dumps([str(e)[:200] for e in meta.evidence][:20], ensure_ascii=False),
                   from_header(raw))
            self.db.call(lambda conn: transaction(conn, lambda c: c.execute(
                "INSERT INTO held (id, queue_id, received_at, direction, sender, sender_lower,"
                " rcpt_domains, subject, size, symbols, reasons, category, evidence,"
                " from_header) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)))
        except BaseException:
            blob_path.unlink(missing_ok=True)  # no row: the blob must not outlive it
            raise
        return message_id

    async def hold(self, raw: bytes, meta: HoldMeta) -> str:
        """Keep ``raw`` encrypted; returns its id once it is durably on disk."""
        import asyncio

        return await asyncio.to_thread(self.hold_sync, raw, meta)

    # --- reading --------------------------------------------------------
    async def list(self, *, status: str | None = "held", direction: str | None = None,
                   category: str | None = None, since: float | None = None,
                   until: float | None = None, sender_like: str | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[HeldSummary], int]:
        """One page of summaries, newest first, and the number of all that match."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("status", status), ("direction", direction),
                              ("category", category)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("received_at >= ?")
            args.append(since)
        if until is not None:
            where.append("received_at < ?")
            args.append(until)
        if sender_like:
            where.append("sender_lower LIKE ? ESCAPE '\\'")
            args.append(f"%{_like_escape(sender_like.lower())}%")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        limit = max(0, min(int(limit), 1000))
        offset = max(0, int(offset))

        def query(conn: sqlite3.Connection) -> tuple[list[HeldSummary], int]:
            # the clause names fixed columns only; every value is bound
            total = conn.execute(f"SELECT count(*) FROM held{clause}",  # noqa: S608
                                 args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM held{clause} ORDER BY received_at DESC, id"  # noqa: S608
                " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            return [_summary(r) for r in rows], int(total)

        return await self.db.run(query)

    def get_sync(self, message_id: str) -> HeldSummary | None:
        row = self.db.call(lambda conn: conn.execute(
            _SELECT_ONE, (message_id,)).fetchone())
        return _summary(row) if row is not None else None

    async def get(self, message_id: str) -> HeldSummary | None:
        row = await self.db.run(lambda conn: conn.execute(
            _SELECT_ONE, (message_id,)).fetchone())
        return _summary(row) if row is not None else None

    def open_sync(self, message_id: str) -> HeldMessage:
        summary = self.get_sync(message_id)
        if summary is None:
            raise NotFound(message_id)
        try:
            blob = self._blob_path(message_id).read_bytes()
        except FileNotFoundError:
            raise Gone(message_id, summary.status if summary.status != "held"
                       else "purged") from None
        plain = self.sealer.open(blob, message_id.encode("ascii"))
        size = int.from_bytes(plain[:4], "big")
        envelope = json.loads(plain[4:4 + size].decode("utf-8"))
        return HeldMessage(summary=summary, raw=plain[4 + size:],
                           mail_from=envelope["mail_from"], rcpt_tos=envelope["rcpt_tos"],
                           mail_options=envelope["mail_options"],
                           auth_user=envelope.get("auth_user"))

    async def open(self, message_id: str) -> HeldMessage:
        """The summary, decrypted envelope and original bytes (NotFound / Gone)."""
        import asyncio

        return await asyncio.to_thread(self.open_sync, message_id)

    async def raw(self, message_id: str) -> bytes:
        """The original bytes, decrypted."""
        return (await self.open(message_id)).raw

    # --- changing -------------------------------------------------------
    async def set_status(self, message_id: str, status: str, *, reply: str | None = None,
                         who: str | None = None) -> None:
        """Record a new status (and the next hop's reply to a release). A deleted
        message's content is erased at once."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r}")

        def update(conn: sqlite3.Connection) -> int:
            return transaction(conn, lambda c: c.execute(
                "UPDATE held SET status = ?, status_at = ?, status_by = ?,"
                " release_reply = coalesce(?, release_reply) WHERE id = ?",
                (status, time.time(), who, reply, message_id)).rowcount)

        if not await self.db.run(update):
            raise NotFound(message_id)
        if status in ("deleted", "purged"):
            self._blob_path(message_id).unlink(missing_ok=True)

    async def purge(self, older_than: float) -> int:
        """Erase the content of every message received before ``older_than`` (and its
        subject); the rows stay, as «purged», for the statistics."""
        def mark(conn: sqlite3.Connection) -> list[str]:
            def body(c: sqlite3.Connection) -> list[str]:
                ids = [r[0] for r in c.execute(
                    "SELECT id FROM held WHERE received_at < ? AND status != 'purged'",
                    (older_than,))]
                # inbound reasons and evidence may quote file names (a patient's name):
                # erased with the subject; the category stays for the statistics
                c.execute("UPDATE held SET status = 'purged', subject = NULL, reasons = '[]',"
                          " evidence = '[]', from_header = NULL, status_at = ?"
                          " WHERE received_at < ? AND status != 'purged'",
                          (time.time(), older_than))
                c.execute("DELETE FROM tokens WHERE expires_at < ?", (time.time(),))
                return ids
            return transaction(conn, body)

        ids = await self.db.run(mark)
        for message_id in ids:
            self._blob_path(message_id).unlink(missing_ok=True)
        return len(ids)

    def recover(self) -> int:
        """Blobs without a live row (a crash between the two writes, or an erase cut
        short) are moved aside to ``orphans/`` (still encrypted), never left visible."""
        if not self.blobs.is_dir():
            return 0
        live = set(self.db.call(lambda conn: [r[0] for r in conn.execute(
            "SELECT id FROM held WHERE status IN ('held', 'released')")]))
        moved = 0
        for path in self.blobs.iterdir():
            if path.name.startswith("."):  # a temporary file of an interrupted write
                path.unlink(missing_ok=True)
                continue
            if path.name in live:
                continue
            erased = self.get_sync(path.name) is not None
            if erased:
                path.unlink(missing_ok=True)
            else:
                ensure_private_dir(self.orphans)
                os.replace(path, self.orphans / path.name)
                log.warning("quarantine: blob %s without a row (interrupted hold) moved to %s",
                            path.name, self.orphans)
            moved += 1
        return moved

    async def stats(self, since: float) -> builtins.list[StatRow]:
        """Counts of messages held since ``since``, per UTC day, direction, category."""
        rows = await self.db.run(lambda conn: conn.execute(
            "SELECT date(received_at, 'unixepoch'), direction, category, count(*) FROM held"
            " WHERE received_at >= ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", (since,)).fetchall())
        return [StatRow(day, direction, category, int(n)) for day, direction, category, n in rows]

    def close(self) -> None:
        self.db.close()
