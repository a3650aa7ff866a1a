"""Office documents: VBA and XLM macros, DDE, remote templates and embedded objects,
in OLE (doc/xls/ppt), OOXML (docx/xlsx/pptx and their macro twins), ODF and RTF,
plus DDE formulas in CSV and Office 2003 XML. oletools does the OLE/VBA/RTF parsing;
package members are read with the same bounded reader as archives."""

from __future__ import annotations

import functools
import io
import logging
import re
import types
import warnings
import zipfile
from collections.abc import Iterable
from typing import Any

from gateway.scan.archives import encrypted, member_bytes, unreadable, zlib_error
from gateway.scan.report import Verdict
from gateway.scan.walk import Stop, Walk

# oletools reports every oddity through logging; our findings say what matters.
for _name in ("olevba", "oletools", "olefile", "rtfobj", "oleobj", "msodde", "crypto",
              "ppt_parser", "xls_parser", "record_base", "ooxml", "oleform"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

@functools.cache
def _ole() -> Any:
    """oletools and olefile, imported when the first Office or RTF file is looked at:
    some 15 MB of modules that most mail never needs (start-up memory of the gateway)."""
    with warnings.catch_warnings():
        # olevba builds its grammar with pyparsing names deprecated since pyparsing 3
        warnings.simplefilter("ignore", DeprecationWarning)
        import olefile  # type: ignore[import-untyped]
        from oletools import crypto, msodde, oleobj, rtfobj, xls_parser
        from oletools.olevba import VBA_Parser
    return types.SimpleNamespace(olefile=olefile, crypto=crypto, msodde=msodde, oleobj=oleobj,
                                 rtfobj=rtfobj, xls_parser=xls_parser, VBA_Parser=VBA_Parser)


EQUATION_CLSIDS = frozenset({"0002CE02-0000-0000-C000-000000000046",
                             "0002CE03-0000-0000-C000-000000000046"})
XML_MEMBER_LIMIT = 32 * 1024 * 1024  # one part of a document read for DDE / relations
_OLE_ERRORS = (OSError, ValueError, EOFError, IndexError, KeyError, TypeError, AttributeError,
               RuntimeError, UnicodeDecodeError, NotImplementedError, AssertionError,
               OverflowError, zipfile.BadZipFile, zlib_error())


def zip_kind(names: Iterable[str]) -> str:
    """A zip's real kind: an Office or OpenDocument package, a Java archive, or a zip."""
    names = set(names)
    if "[Content_Types].xml" in names:
        return "ooxml"
    if "mimetype" in names and ("content.xml" in names or "META-INF/manifest.xml" in names):
        return "odf"
    if "META-INF/MANIFEST.MF" in names or any(n.endswith(".class") for n in names):
        return "jar"
    return "zip"


# --- macros (oletools.olevba) ---------------------------------------------------

_EXEC_WORDS = ("shell", "wscript", "createobject", "powershell", "urldownloadtofile",
               "xmlhttp", "adodb.stream", "run", "exec", "callbyname", "declare", "lib",
               "virtualalloc", "rtlmovememory", "createthread", "environ", "savetofile",
               "kill", "open", "write", "put", "binary", "output", "mkdir", "chdir",
               "cmd", "filecopy", "sendkeys")


def macros(walk: Walk, path: str, data: bytes, name: str) -> None:
    """VBA and XLM macros, through olevba; auto-run + dangerous calls is malicious."""
    try:
        parser = _ole().VBA_Parser(name or "document", data=data)
    except _OLE_ERRORS:
        return
    except Exception:  # olevba raises its own kinds on files it does not know
        return
    try:
        has_vba = bool(parser.detect_vba_macros())
        has_xlm = bool(parser.detect_xlm_macros())
        auto: list[str] = []
        dangerous: list[str] = []
        if has_vba:
            for kind, keyword, _desc in parser.analyze_macros() or []:
                if kind == "AutoExec":
                    auto.append(str(keyword))
                elif kind == "Suspicious" and str(keyword).lower() in _EXEC_WORDS:
                    dangerous.append(str(keyword))
    except Exception:  # same: a broken VBA project is reported, not raised
        walk.add("SCAN_VBA_MACRO", Verdict.SUSPICIOUS, "macros VBA illisibles",
                 "unreadable VBA macros", path)
        return
    finally:
        parser.close()
    if has_vba:
        if auto and dangerous:
            walk.add("SCAN_VBA_MACRO", Verdict.MALICIOUS,
                     f"macros qui se lancent seules ({_few(auto)}) et exécutent ou "
                     f"téléchargent ({_few(dangerous)})",
                     f"macros that run by themselves ({_few(auto)}) and execute or download "
                     f"({_few(dangerous)})", path)
        else:
            walk.add("SCAN_VBA_MACRO", Verdict.SUSPICIOUS, "document avec des macros VBA",
                     "document with VBA macros", path)
    if has_xlm:
        walk.add("SCAN_XLM_MACRO", Verdict.MALICIOUS,
                 "macros Excel 4.0 (XLM), une technique d'attaque courante",
                 "Excel 4.0 (XLM) macros, a common attack technique", path)


def _few(items: list[str], n: int = 3) -> str:
    shown = list(dict.fromkeys(items))
    return ", ".join(shown[:n]) + (f" (+{len(shown) - n})" if len(shown) > n else "")


# --- DDE ------------------------------------------------------------------------

_INSTR = re.compile(rb"<w:instrText[^>]*>([^<]*)</w:instrText>")
_FLDSIMPLE = re.compile(rb"w:instr=\"([^\"]*)\"")
_DDE_FIELD = re.compile(rb"^\s*(DDE|DDEAUTO)\b", re.IGNORECASE)
_DDE_ANYWHERE = re.compile(rb"(?:^|[\s\"'{])(DDE|DDEAUTO)\s+[\"']?\S", re.IGNORECASE)
_DDE_FORMULA = re.compile(rb"[=+\-@]\s*[\w.]*\s*\|\s*'[^'\r\n]*'\s*!", re.IGNORECASE)


def _dde(walk: Walk, path: str) -> None:
    walk.add("SCAN_DDE", Verdict.MALICIOUS,
             "champ DDE qui lance une commande à l'ouverture du document",
             "DDE field that runs a command when the document is opened", path)


def word_fields_dde(xml: bytes) -> bool:
    """True when a Word XML part holds a DDE/DDEAUTO field (even split across runs)."""
    codes = b"".join(_INSTR.findall(xml))
    if _DDE_ANYWHERE.search(b" " + codes):
        return True
    return any(_DDE_FIELD.search(m) for m in _FLDSIMPLE.findall(xml))


def scan_csv(walk: Walk, path: str, data: bytes) -> None:
    """A CSV cell such as =cmd|' /c calc'!A0 runs a command when opened in Excel."""
    head = data[:XML_MEMBER_LIMIT]
    if b"|" in head and _DDE_FORMULA.search(head):
        _dde(walk, path)


def scan_xml(walk: Walk, path: str, data: bytes) -> None:
    """Office 2003 XML (Word/Excel): DDE fields and links; macros in w:binData."""
    head = data[:XML_MEMBER_LIMIT]
    if word_fields_dde(head) or b"<ddeLink" in head or re.search(
            rb"ss:Formula=\"[^\"]*\|[^\"]*!", head):
        _dde(walk, path)
    if b"editdata.mso" in head:
        walk.add("SCAN_VBA_MACRO", Verdict.SUSPICIOUS, "document XML avec des macros",
                 "XML document with macros", path)


# --- OOXML / ODF packages -------------------------------------------------------

_REL = re.compile(rb"<Relationship\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(rb"(\w+)\s*=\s*\"([^\"]*)\"")
_REMOTE_TYPES = ("attachedTemplate", "subDocument", "frame")


_DRIVE = re.compile(r"^/*[A-Za-z][:|]")


def is_remote(target: str) -> bool:
    """True when a template or object link points off this computer: http(s), ftp, a
    UNC path (\\\\host\\share, //host/share, file://host/…). A local drive path such
    as file:///C:/Users/…/Modèles/Courrier.dotm (Word writes one for every document made
    from a template of the practice) is not remote."""
    t = target.strip().replace("\\", "/")
    low = t.lower()
    if low.startswith(("http:", "https:", "ftp:", "ftps:", "webdav:")):
        return True
    if low.startswith("file:"):
        rest = t[5:]
        if _DRIVE.match(rest):  # file:///C:/…, file:/C:/…, file:C|/…
            return False
        if rest.startswith("////"):  # file:////host/share: a UNC path
            return True
        if rest.startswith("//"):  # file://host/…; file:///path is this computer
            host = rest[2:].split("/", 1)[0]
            return host.lower() not in ("", "localhost", "127.0.0.1")
        return False
    return t.startswith("//") and not _DRIVE.match(t)


def _relations(walk: Walk, path: str, rels: bytes) -> None:
    for tag in _REL.findall(rels):
        attrs = {k.decode().lower(): v.decode("utf-8", "replace") for k, v in _ATTR.findall(tag)}
        if attrs.get("targetmode", "").lower() != "external":
            continue
        rtype = attrs.get("type", "").rsplit("/", 1)[-1]
        target = attrs.get("target", "")
        remote = is_remote(target)
        if rtype in _REMOTE_TYPES and remote:
            walk.add("SCAN_REMOTE_TEMPLATE", Verdict.MALICIOUS,
                     "modèle ou cadre chargé depuis Internet à l'ouverture (injection de "
                     "modèle distant)", "template or frame loaded from the Internet when "
                     "opened (remote template injection)", path)
        elif rtype == "oleObject" and remote:
            walk.add("SCAN_OLE_OBJECT", Verdict.SUSPICIOUS,
                     "objet OLE lié à une adresse extérieure", "OLE object linked to an "
                     "outside address", path)


def _xlsb_dde(content: bytes, name: str) -> bool:
    """True when an .xlsb external link part is a DDE link (oletools' record parser)."""
    try:
        stream = io.BytesIO(content)
        stream.size = len(content)  # type: ignore[attr-defined]  # what oletools reads
        for record in _ole().xls_parser.parse_xlsb_part(stream, None, name):
            if (isinstance(record, _ole().xls_parser.XlsbBeginSupBook)
                    and record.link_type == _ole().xls_parser.XlsbBeginSupBook.LINK_TYPE_DDE):
                return True
    except Exception:  # oletools' record parser on a broken part
        return False
    return False


def scan_package(walk: Walk, path: str, data: bytes, depth: int, kind: str) -> None:
    raw = io.BytesIO(data)
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        unreadable(walk, path, "document", "document")
        return
    from gateway.scan.archives import check_zip_structure
    with zf:
        check_zip_structure(walk, path, zf, len(data))
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        if any(i.flag_bits & 0x1 for i in zf.infolist()):
            encrypted(walk, path, "document", "document")
            return

        def read(name: str) -> bytes | None:
            content = member_bytes(walk, f"{path}/{name}", raw, zf, zf.getinfo(name))
            if content is None:
                unreadable(walk, f"{path}/{name}", "partie de document", "document part")
            return content

        lower = {n.lower(): n for n in names}
        if kind == "ooxml":
            if any(n.endswith("vbaproject.bin") for n in lower) or any(
                    "/macrosheets/" in n for n in lower):
                macros(walk, path, data, path)
                if any("/macrosheets/" in n for n in lower):
                    walk.add("SCAN_XLM_MACRO", Verdict.MALICIOUS,
                             "feuilles de macros Excel 4.0 (XLM), une technique d'attaque "
                             "courante", "Excel 4.0 (XLM) macro sheets, a common attack "
                             "technique", path)
            for name in names:
                n = name.lower()
                if n.endswith(".rels") and (content := read(name)) is not None:
                    _relations(walk, path, content)
                elif (n.startswith("word/") and n.endswith(".xml") and (
                        "document" in n or "header" in n or "footer" in n)):
                    content = read(name)
                    if content is not None and word_fields_dde(content):
                        _dde(walk, path)
                elif n.startswith("xl/externallinks/") and n.endswith(".xml"):
                    content = read(name)
                    if content is not None and b"<ddeLink" in content:
                        _dde(walk, path)
                elif n.startswith("xl/externallinks/") and n.endswith(".bin"):
                    content = read(name)  # .xlsb: the same link as binary records
                    if content is not None and _xlsb_dde(content, name):
                        _dde(walk, path)
                elif n.startswith("xl/worksheets/") and n.endswith(".xml"):
                    content = read(name)
                    if content is not None and re.search(
                            rb"<f[^>]*>[^<]*\w\|[^<]*![^<]*</f>", content):
                        _dde(walk, path)
        else:  # OpenDocument: LibreOffice Basic or scripts inside the package
            if any(n.startswith(("basic/", "scripts/")) and not n.endswith("/") for n in lower):
                walk.add("SCAN_VBA_MACRO", Verdict.SUSPICIOUS,
                         "document avec des macros (LibreOffice Basic ou scripts)",
                         "document with macros (LibreOffice Basic or scripts)", path)
        # Embedded files and objects are scanned as files of their own.
        for name in names:
            n = name.lower()
            # OpenDocument: "Object 1" is an OLE object (an embedded file, a Word
            # table), "Object 1/…" an embedded chart or formula
            embedded = ("/embeddings/" in n or n.startswith("embeddings/") or (
                kind == "odf" and re.match(r"object \d+(/|$)", n) is not None
                and not n.endswith(".xml")))
            if not embedded:
                continue
            content = read(name)
            if content is not None:
                walk.child(f"{path}/{name}", name.rsplit("/", 1)[-1], content, depth + 1)


# --- OLE (doc, xls, ppt, embedded objects) ------------------------------------------

def scan_ole(walk: Walk, path: str, data: bytes, depth: int) -> None:
    try:
        ole = _ole().olefile.OleFileIO(data)
    except _OLE_ERRORS:
        unreadable(walk, path, "document OLE", "OLE document")
        return
    try:
        try:
            locked = _ole().crypto.is_encrypted(ole)
        except _OLE_ERRORS:
            locked = False
        if locked:
            encrypted(walk, path, "document Office", "Office document")
            return
        streams = ole.listdir(streams=True, storages=True)
        clsids = {str(ole.getclsid(e) or "").upper() for e in streams}
        clsids.add(str(ole.root.clsid or "").upper())
        if clsids & EQUATION_CLSIDS or any(e[-1] == "Equation Native" for e in streams):
            walk.add("SCAN_OLE_OBJECT", Verdict.MALICIOUS,
                     "objet « Équation » (Equation Editor), utilisé par des attaques connues",
                     "'Equation' object (Equation Editor), used by known exploits", path)
        natives = [e for e in streams if e[-1] == "\x01Ole10Native"]
        dde_text = ""
        if ole.exists("WordDocument"):
            try:
                # Word 2013 and later store field codes in UTF-16: drop the zero bytes
                dde_text = str(_ole().msodde.process_doc(ole) or "").replace("\x00", "")
            except _OLE_ERRORS:
                dde_text = ""
        packages: list[tuple[str, bytes]] = []
        for entry in natives:
            try:
                stream = ole.openstream(entry).read(walk.room() + 1)
            except _OLE_ERRORS:
                continue
            walk.spent(path, len(stream), None)
            packages.append(_native(stream))
        if ole.exists("PowerPoint Document"):
            packages += _ppt_packages(walk, path, data)
    finally:
        ole.close()
    if _DDE_FIELD.search(dde_text.encode()) or _DDE_ANYWHERE.search(b" " + dde_text.encode()):
        _dde(walk, path)
    macros(walk, path, data, path)
    for filename, content in packages:
        walk.add("SCAN_OLE_OBJECT", Verdict.SUSPICIOUS,
                 "fichier incorporé dans le document (objet OLE « Package »)",
                 "file embedded in the document (OLE 'Package' object)", path)
        if content:
            name = filename or "objet"
            walk.child(f"{path}/{name}", name, content, depth + 1)


def _ppt_packages(walk: Walk, path: str, data: bytes) -> list[tuple[str, bytes]]:
    """Files embedded in PowerPoint 97 slides (OLE objects stored compressed in records)."""
    out: list[tuple[str, bytes]] = []
    try:
        for sub in _ole().oleobj.find_ole_in_ppt(data):
            walk.check_time(path)
            for entry in sub.listdir():
                if entry[-1] != "\x01Ole10Native":
                    continue
                stream = sub.openstream(entry).read(walk.room() + 1)
                walk.spent(path, len(stream), None)
                out.append(_native(stream))
    except Stop:
        raise
    except Exception:  # oletools' PowerPoint record parser on a broken file
        return out
    return out


def _native(stream: bytes) -> tuple[str, bytes]:
    try:
        native = _ole().oleobj.OleNativeStream(bindata=stream)
    except _OLE_ERRORS:
        return "", b""
    name = native.filename or ""
    if isinstance(name, bytes):
        name = name.decode("latin-1", "replace")
    return re.split(r"[\\/]", str(name))[-1], bytes(native.data or b"")


# --- RTF ------------------------------------------------------------------------

_RTF_FLDINST = re.compile(rb"\\fldinst[^}]{0,400}", re.IGNORECASE)
_RTF_TEMPLATE = re.compile(rb"\\\*\s*\\template\s+([^}]{1,1000})", re.IGNORECASE)


def scan_rtf(walk: Walk, path: str, data: bytes, depth: int) -> None:
    for m in _RTF_FLDINST.finditer(data):
        text = re.sub(rb"\\[a-z]+-?\d* ?|[{}]", b"", m.group(0)[len(b"\\fldinst"):])
        if _DDE_FIELD.search(text):
            _dde(walk, path)
            break
    template = _RTF_TEMPLATE.search(data)
    if template and is_remote(template.group(1).replace(b"\\\\", b"\\").decode("latin-1")):
        walk.add("SCAN_REMOTE_TEMPLATE", Verdict.MALICIOUS,
                 "modèle chargé depuis Internet à l'ouverture (injection de modèle distant)",
                 "template loaded from the Internet when opened (remote template injection)",
                 path)
    try:
        parser = _ole().rtfobj.RtfObjParser(data)
        parser.parse()
    except _OLE_ERRORS:
        unreadable(walk, path, "document RTF", "RTF document")
        return
    for obj in parser.objects:
        walk.check_time(path)
        if not getattr(obj, "is_ole", False):
            continue
        class_name = obj.class_name or b""
        if isinstance(class_name, bytes):
            class_name = class_name.decode("latin-1", "replace")
        if str(class_name).lower().startswith("equation"):
            walk.add("SCAN_OLE_OBJECT", Verdict.MALICIOUS,
                     "objet « Équation » (Equation Editor), utilisé par des attaques connues",
                     "'Equation' object (Equation Editor), used by known exploits", path)
            continue
        walk.add("SCAN_OLE_OBJECT", Verdict.SUSPICIOUS,
                 f"objet OLE incorporé ({str(class_name)[:40] or '?'})",
                 f"embedded OLE object ({str(class_name)[:40] or '?'})", path)
        if getattr(obj, "is_package", False) and obj.olepkgdata:
            name = re.split(r"[\\/]", str(obj.filename or "objet"))[-1]
            walk.child(f"{path}/{name}", name, bytes(obj.olepkgdata), depth + 1)
        elif obj.oledata:
            walk.child(f"{path}/objet-ole", "", bytes(obj.oledata), depth + 1)
