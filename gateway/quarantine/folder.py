"""Durable writes (temp + fsync + rename + directory fsync) and the hold folder.

A message is on disk, fsynced, before the client hears 250.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make the folder itself 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def durable_write_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` atomically with ``data``; survives a crash at any step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def unique_name() -> str:
    """A Maildir-style unique file name."""
    return f"{time.time_ns()}.{secrets.token_hex(8)}.{socket.gethostname().replace('/', '_')}"


class Maildir:
    """Deliver into a Maildir (tmp/ -> new/), fsynced before returning."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def deliver(self, data: bytes) -> str:
        self.ensure()
        name = unique_name()
        tmp = self.root / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, self.root / "new" / name)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.root / "new")
        return name


class HoldFolder:
    """Held messages: ``ID.eml`` (original bytes) then ``ID.json`` (envelope, symbols).

    Both are written durably; the .eml comes first so a crash between the two
    leaves the message, never metadata pointing at nothing.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def hold(self, queue_id: str, raw: bytes, meta: dict[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        eml = self.root / f"{queue_id}.eml"
        durable_write_file(eml, raw)
        durable_write_file(self.root / f"{queue_id}.json",
                           json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))
        return eml

    def list_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.eml"))
