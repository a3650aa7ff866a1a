"""Optional ClamAV: one file sent to a running clamd over its socket (INSTREAM).

Not configured: nothing happens. Configured but unreachable: ``ClamdUnavailable``,
which the engine reports as "not checked by ClamAV", never as clean or infected.
"""

from __future__ import annotations

import socket
import struct

CHUNK = 64 * 1024


class ClamdUnavailable(Exception):
    pass


def _connect(spec: str, timeout: float) -> socket.socket:
    if spec.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(spec)
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = spec.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def scan(spec: str, data: bytes, timeout: float) -> str | None:
    """The signature clamd found in ``data``, or None when it found nothing."""
    try:
        with _connect(spec, timeout) as sock:
            sock.sendall(b"zINSTREAM\0")
            view = memoryview(data)
            for i in range(0, len(data), CHUNK):
                piece = view[i:i + CHUNK]
                sock.sendall(struct.pack(">I", len(piece)) + piece)
            sock.sendall(struct.pack(">I", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                got = sock.recv(4096)
                if not got:
                    break
                reply += got
    except (OSError, ValueError) as exc:
        raise ClamdUnavailable(type(exc).__name__) from None
    text = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
    if text.endswith("FOUND"):
        return text.split(":", 1)[-1].removesuffix("FOUND").strip() or "?"
    if text.endswith("OK"):
        return None
    raise ClamdUnavailable(f"unexpected reply {text[:80]!r}")
