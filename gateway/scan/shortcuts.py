"""Internet shortcuts (``.url``): judged on where they point, not banned by name.

A ``.url`` to a web site (the Ameli or Doctolib bookmark a secretary drops on a
USB key) is no more dangerous than a link in a mail. What attacks use is a
shortcut to a file share or a local file (``file://``, ``\\\\host\\share``), often
to a program, or to an unusual protocol handler (``search-ms:``, ``ms-msdt:``),
and an icon fetched from a share (which leaks the Windows password hash).
"""

from __future__ import annotations

import re

from gateway.scan.filetypes import extension
from gateway.scan.report import Verdict
from gateway.scan.walk import Walk

_WEB = ("http://", "https://", "mailto:", "ftp://", "tel:")
# Extensions of what Windows runs when a shortcut opens it.
_RUNNABLE = frozenset({
    "exe", "com", "scr", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh",
    "hta", "ps1", "lnk", "msi", "cpl", "jar", "dll", "reg", "inf", "iso", "img", "vhd",
    "vhdx", "url", "library-ms", "search-ms", "settingcontent-ms", "application", "appref-ms"})
_LINE = re.compile(r"^[ \t]*([A-Za-z]+)[ \t]*=[ \t]*([^\r\n]*?)[ \t]*\r?$", re.MULTILINE)


def _entries(data: bytes) -> dict[str, str]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data[:65536].decode("utf-16", "replace")
    else:
        text = data[:65536].decode("utf-8", "replace").lstrip("\ufeff")
    out: dict[str, str] = {}
    for key, value in _LINE.findall(text):
        out.setdefault(key.lower(), value)
    return out


def _is_share(target: str) -> bool:
    t = target.strip().replace("\\", "/").lower()
    return t.startswith(("file:", "//"))


def scan_url(walk: Walk, path: str, data: bytes) -> None:
    entries = _entries(data)
    target = entries.get("url", "")
    if not target:
        walk.add("SCAN_SHORTCUT", Verdict.SUSPICIOUS,
                 "raccourci Internet illisible ou sans adresse",
                 "Internet shortcut unreadable or without an address", path)
        return
    low = target.strip().lower()
    icon = entries.get("iconfile", "")
    if low.startswith(_WEB):
        if icon and _is_share(icon):
            walk.add("SCAN_SHORTCUT", Verdict.SUSPICIOUS,
                     "raccourci Internet dont l'icône est lue sur un partage réseau (fuite du "
                     "mot de passe Windows)", "Internet shortcut whose icon is read from a "
                     "network share (leaks the Windows password)", path)
        return
    runnable = extension(target.split("?", 1)[0]) in _RUNNABLE
    if _is_share(target) and runnable:
        walk.add("SCAN_SHORTCUT", Verdict.MALICIOUS,
                 "raccourci qui lance un programme depuis un partage réseau ou un fichier local",
                 "shortcut that starts a program from a network share or a local file", path)
    elif _is_share(target):
        walk.add("SCAN_SHORTCUT", Verdict.SUSPICIOUS,
                 "raccourci vers un partage réseau ou un fichier local",
                 "shortcut to a network share or a local file", path)
    else:
        scheme = low.split(":", 1)[0][:20] if ":" in low else "?"
        walk.add("SCAN_SHORTCUT", Verdict.SUSPICIOUS,
                 f"raccourci vers un protocole inhabituel ({scheme})",
                 f"shortcut to an unusual protocol ({scheme})", path)
