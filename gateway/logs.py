"""Logging set-up and the one structured line per message.

Never a body, a subject or a recipient's local part: domains, sizes, symbols.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from gateway.config import Config

_msg_log = logging.getLogger("vigie.message")


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"level": record.levelname.lower(), "logger": record.name,
                               "msg": record.getMessage()}
        fields = getattr(record, "vigie", None)
        if isinstance(fields, dict):
            out.update(fields)
        return json.dumps(out, ensure_ascii=False)


def setup(cfg: Config, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if cfg.log.format == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.log.level.upper())
    quiet_libraries()


def quiet_libraries() -> None:
    """aiosmtpd logs full addresses and (at debug) message lines: keep it to warnings."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("aiosmtplib").setLevel(logging.WARNING)


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    text = str(value)
    return text if text and " " not in text else json.dumps(text, ensure_ascii=False)


def message_line(**fields: Any) -> None:
    """One logfmt line per message (and the same fields as JSON in json mode)."""
    if not _msg_log.isEnabledFor(logging.INFO):
        return
    _msg_log.info(" ".join(f"{k}={_fmt(v)}" for k, v in fields.items()),
                  extra={"vigie": fields})
