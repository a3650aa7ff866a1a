"""HTML and SVG attachments: files built by script for download (HTML smuggling),
forms that post a password elsewhere, automatic redirections, scripts in SVG.

Searches over the lower-cased markup, not a browser: what is looked for are the
building blocks such pages cannot do without. Every pattern starts with a literal
so that a big page is searched at memory speed.
"""

from __future__ import annotations

import contextlib
import re

from gateway.scan.report import Verdict
from gateway.scan.walk import Walk

LIMIT = 32 * 1024 * 1024


def _re(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.DOTALL) for p in patterns)


_BLOB = _re(r"new\s+blob\s*\(", r"mssave(?:oropen)?blob")
_OBJURL = ("createobjecturl",)
_DOWNLOAD = _re(r"\.download\s*=", r"setattribute\s*\(\s*['\"]download['\"]",
                r"<a\s[^>]*\bdownload\b")
_DATA_DL = _re(r"<a\s[^>]*\bdownload\b[^>]*href\s*=\s*['\"]?data:",
               r"<a\s[^>]*href\s*=\s*['\"]?data:[^>]*\bdownload\b")
_BIG_B64 = _re(r"['\"][a-z0-9+/=\s\\]{20000,}['\"]")
_ATOB = _re(r"atob\s*\(", r"base64toarraybuffer", r"uint8array")
_PASSWORD = _re(r"<input\s[^>]*type\s*=\s*['\"]?password")
_FORM_ACTION = _re(r"<form\s[^>]*action\s*=\s*['\"]?\s*(?:https?:)?//")
_SEND = _re(r"xmlhttprequest", r"fetch\s*\(\s*['\"`]?https?://", r"\$\.(?:ajax|post)\s*\(",
            r"sendbeacon", r"api\.telegram\.org")
_REDIRECT = _re(r"<meta\s[^>]*http-equiv\s*=\s*['\"]?refresh[^>]*url\s*=",
                r"location(?:\.href)?\s*=\s*['\"`]?\s*(?:https?:)?//",
                r"location\.(?:replace|assign)\s*\(")
_SCRIPT = _re(r"<script", r"javascript:", r"on(?:load|error|click|mouseover|begin|end)\s*=")
_OBFUSCATED = _re(r"eval\s*\(\s*(?:atob|unescape|decodeuricomponent|string\.fromcharcode)",
                  r"document\.write\s*\(\s*(?:unescape|atob|decodeuricomponent)")


def _any(text: str, patterns: tuple[re.Pattern[str], ...]) -> bool:
    return any(p.search(text) for p in patterns)


def scan_html(walk: Walk, path: str, data: bytes, kind: str) -> None:
    head = data[:LIMIT]
    text = head.decode("utf-8", "replace")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:200]:
        with contextlib.suppress(UnicodeDecodeError):
            text = head.decode("utf-16")
    text = text.lower()
    # cheap substring tests first: most patterns need a word that ordinary pages lack
    blob = "blob" in text and _any(text, _BLOB)
    if (blob and ("createobjecturl" in text or "mssave" in text)
            and (_any(text, _DOWNLOAD) or "mssave" in text)) or (
                "data:" in text and "download" in text and _any(text, _DATA_DL)):
        walk.add("SCAN_HTML_SMUGGLING", Verdict.MALICIOUS,
                 "page qui fabrique un fichier à télécharger (« HTML smuggling »)",
                 "page that builds a file to download (HTML smuggling)", path)
    elif blob and _any(text, _ATOB) and _any(text, _BIG_B64):
        walk.add("SCAN_HTML_SMUGGLING", Verdict.SUSPICIOUS,
                 "page qui contient un fichier caché encodé en base64",
                 "page holding a hidden base64-encoded file", path)
    if "password" in text and _any(text, _PASSWORD) and (
            _any(text, _FORM_ACTION) or _any(text, _SEND)):
        walk.add("SCAN_HTML_FORM", Verdict.MALICIOUS,
                 "formulaire qui demande un mot de passe et l'envoie ailleurs (hameçonnage)",
                 "form that asks for a password and sends it elsewhere (phishing)", path)
    if ("location" in text or "refresh" in text) and _any(text, _REDIRECT):
        walk.add("SCAN_HTML_REDIRECT", Verdict.SUSPICIOUS,
                 "page qui redirige automatiquement vers un autre site",
                 "page that redirects to another site by itself", path)
    if ("eval" in text or "document.write" in text) and _any(text, _OBFUSCATED):
        walk.add("SCAN_HTML_SCRIPT", Verdict.SUSPICIOUS, "script dissimulé (code encodé exécuté)",
                 "hidden script (encoded code run)", path)
    if kind == "svg" and _any(text, _SCRIPT):
        walk.add("SCAN_HTML_SCRIPT", Verdict.SUSPICIOUS, "image SVG qui contient un script",
                 "SVG image holding a script", path)
