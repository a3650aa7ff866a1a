"""Mail messages as files: a ``.eml`` attached as application/octet-stream, or saved
on a USB key, is parsed and its attachments scanned like those of the mail itself.

``attachments`` is also what the attachment check walks a message with, so that
a forwarded message is opened the same way however it travels.
"""

from __future__ import annotations

import contextlib
import email.policy
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message as EmailPart
from email.parser import BytesParser

from gateway.scan.report import Verdict
from gateway.scan.walk import Stop, Walk


def filename(part: EmailPart) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # a malformed parameter the parser cannot read
        return ""
    if "=?" in name:  # an encoded word inside a quoted parameter (Outlook and others)
        with contextlib.suppress(Exception):
            name = str(make_header(decode_header(name)))
    return name.strip()


def attachments(msg: EmailPart) -> Iterator[tuple[str, bytes]]:
    """(file name, decoded bytes) of every attached file, in attached messages too.

    The text of the message itself (text/plain or text/html parts without a name)
    is not an attachment; any other leaf part is, named or not.
    """
    for number, part in enumerate(msg.walk(), start=1):
        if part.is_multipart():
            continue
        name = filename(part)
        maintype = part.get_content_maintype()
        disposition = part.get_content_disposition()
        if maintype == "message":
            continue  # parsed attached messages are walked into by msg.walk()
        if maintype == "text" and not name and disposition != "attachment":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            payload = None
        if not isinstance(payload, bytes):
            raw = part.get_payload()
            payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        yield name or f"pièce jointe {number} ({part.get_content_type()})", payload


def scan_email(walk: Walk, path: str, data: bytes, depth: int) -> None:
    """The attachments of a message file, each scanned as a file inside it."""
    try:
        msg = BytesParser(policy=email.policy.default).parsebytes(data)
        files = attachments(msg)
        for name, content in files:
            walk.check_time(path)
            walk.spent(path, len(content), None)
            walk.child(f"{path}/{name}", name, content, depth + 1)
    except Stop:
        raise
    except Exception:  # the parser is lenient; this is a guard, never a pass
        walk.add("SCAN_NOT_INSPECTED", Verdict.NOT_INSPECTED,
                 "message illisible, pièces jointes non inspectées",
                 "unreadable message, attachments not inspected", path)
