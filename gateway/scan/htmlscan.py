"""HTML and SVG attachments: files built by script for download (HTML smuggling),
forms that post a password elsewhere, automatic redirections, scripts in SVG.

Regexes over the markup, not a browser: what is looked for are the building
blocks such pages cannot do without.
"""

from __future__ import annotations

import contextlib
import re

from gateway.scan.report import Verdict
from gateway.scan.walk import Walk

LIMIT = 32 * 1024 * 1024
_F = re.IGNORECASE | re.DOTALL

_BLOB = re.compile(r"new\s+Blob\s*\(|msSaveOrOpenBlob|msSaveBlob", _F)
_OBJURL = re.compile(r"createObjectURL", _F)
_DOWNLOAD = re.compile(r"\.download\s*=|setAttribute\s*\(\s*['\"]download['\"]|"
                       r"<a\b[^>]*\bdownload\b", _F)
_DATA_DL = re.compile(r"<a\b[^>]*\bdownload\b[^>]*href\s*=\s*['\"]?data:|"
                      r"<a\b[^>]*href\s*=\s*['\"]?data:[^>]*\bdownload\b", _F)
_BIG_B64 = re.compile(r"['\"][A-Za-z0-9+/=\s\\]{20000,}['\"]")
_ATOB = re.compile(r"\batob\s*\(|base64ToArrayBuffer|Uint8Array", _F)
_PASSWORD = re.compile(r"<input\b[^>]*type\s*=\s*['\"]?password", _F)
_FORM_ACTION = re.compile(r"<form\b[^>]*action\s*=\s*['\"]?\s*(https?:)?//", _F)
_SEND = re.compile(r"XMLHttpRequest|fetch\s*\(\s*['\"`]?https?://|\$\.(ajax|post)\s*\(|"
                   r"navigator\.sendBeacon|api\.telegram\.org", _F)
_META_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*['\"]?refresh[^>]*url\s*=", _F)
_JS_REDIRECT = re.compile(r"(window\.|document\.|top\.|self\.)?location(\.href)?\s*=\s*['\"`]?"
                          r"\s*(https?:)?//|location\.(replace|assign)\s*\(", _F)
_SCRIPT = re.compile(r"<script\b|\bon(load|error|click|mouseover|begin|end)\s*=|"
                     r"javascript:", _F)
_OBFUSCATED = re.compile(r"eval\s*\(\s*(atob|unescape|decodeURIComponent|String\.fromCharCode)|"
                         r"document\.write\s*\(\s*(unescape|atob|decodeURIComponent)", _F)


def scan_html(walk: Walk, path: str, data: bytes, kind: str) -> None:
    text = data[:LIMIT].decode("utf-8", "replace")
    if text.startswith(("\ufeff", "\xff\xfe", "\xfe\xff")) or "\x00" in text[:200]:
        with contextlib.suppress(UnicodeDecodeError):
            text = data[:LIMIT].decode("utf-16")
    blob = _BLOB.search(text) is not None
    if (blob and (_OBJURL.search(text) or "msSaveOrOpenBlob" in text) and (
            _DOWNLOAD.search(text) or "msSave" in text)) or _DATA_DL.search(text):
        walk.add("SCAN_HTML_SMUGGLING", Verdict.MALICIOUS,
                 "page qui fabrique un fichier à télécharger (« HTML smuggling »)",
                 "page that builds a file to download (HTML smuggling)", path)
    elif blob and _ATOB.search(text) and _BIG_B64.search(text):
        walk.add("SCAN_HTML_SMUGGLING", Verdict.SUSPICIOUS,
                 "page qui contient un fichier caché encodé en base64",
                 "page holding a hidden base64-encoded file", path)
    if _PASSWORD.search(text) and (_FORM_ACTION.search(text) or _SEND.search(text)):
        walk.add("SCAN_HTML_FORM", Verdict.MALICIOUS,
                 "formulaire qui demande un mot de passe et l'envoie ailleurs (hameçonnage)",
                 "form that asks for a password and sends it elsewhere (phishing)", path)
    if _META_REFRESH.search(text) or _JS_REDIRECT.search(text):
        walk.add("SCAN_HTML_REDIRECT", Verdict.SUSPICIOUS,
                 "page qui redirige automatiquement vers un autre site",
                 "page that redirects to another site by itself", path)
    if _OBFUSCATED.search(text):
        walk.add("SCAN_HTML_SCRIPT", Verdict.SUSPICIOUS, "script dissimulé (code encodé exécuté)",
                 "hidden script (encoded code run)", path)
    if kind == "svg" and _SCRIPT.search(text):
        walk.add("SCAN_HTML_SCRIPT", Verdict.SUSPICIOUS, "image SVG qui contient un script",
                 "SVG image holding a script", path)
