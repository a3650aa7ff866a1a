"""The quarantine's SQLite database: one connection, used from one worker thread.

Every query runs on a dedicated thread (sqlite3 connections are not shared between
threads, and the event loop never waits on the disk); WAL with ``synchronous=FULL``
makes each commit durable before the awaiting coroutine resumes. The store, the
tokens and the allow-list all live in this one file; a PostgreSQL backend would
implement the same classes' methods over its own connection pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    id TEXT PRIMARY KEY,
    queue_id TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL,
    direction TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_lower TEXT NOT NULL,
    rcpt_domains TEXT NOT NULL,
    subject TEXT,
    size INTEGER NOT NULL,
    symbols TEXT NOT NULL,
    reasons TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'held',
    status_at REAL,
    status_by TEXT,
    release_reply TEXT,
    evidence TEXT NOT NULL DEFAULT '[]',
    from_header TEXT
);
CREATE INDEX IF NOT EXISTS held_received ON held (received_at);
CREATE INDEX IF NOT EXISTS held_status_received ON held (status, received_at);
CREATE TABLE IF NOT EXISTS tokens (
    hash BLOB PRIMARY KEY,
    message_id TEXT NOT NULL,
    action TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_expires ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS allowed_senders (
    sender TEXT NOT NULL,
    direction TEXT NOT NULL,
    added_at REAL NOT NULL,
    added_by TEXT,
    PRIMARY KEY (sender, direction)
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""


# columns added after version 1: (name, definition)
_ADDED = (("evidence", "TEXT NOT NULL DEFAULT '[]'"), ("from_header", "TEXT"))


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns a database made by an older vigie lacks."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(held)")}
    for name, definition in _ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE held ADD COLUMN {name} {definition}")


class Database:
    """A SQLite file opened once, every statement run on its own single thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # created 0600 before SQLite opens it: SQLite gives the -wal and -shm files
            # the database file's mode (they were 0644 when the chmod came after)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.path.chmod(0o600)
            self._conn = conn
        return self._conn

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` now, in the calling thread (CLI, tests, bench)."""
        with self._lock:
            return fn(self._connect())

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the database thread and await its result."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="vigie-quarantine-db")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.call, fn)

    def close(self) -> None:
        """Close the connection and stop the thread (both come back on the next use)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn`` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK on any error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
