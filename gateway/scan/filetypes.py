"""True file types (libmagic, never the name or the declared type), banned types,
and tricks played with file names (double extensions, right-to-left override,
runs of spaces, a name that lies about the content)."""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import magic

from gateway.scan.report import ScanConfigError, Verdict
from gateway.scan.walk import Walk

_local = threading.local()
HEAD = 1024 * 1024  # libmagic looks at the start of a file only


@dataclass(frozen=True, slots=True)
class FileType:
    mime: str
    description: str
    kind: str  # our own coarse name: "pe", "zip", "pdf", "ooxml", "text"…


def _magic(mime: bool) -> magic.Magic:
    key = "mime" if mime else "desc"
    m = getattr(_local, key, None)
    if m is None:  # a libmagic handle is not thread-safe: one per thread
        m = magic.Magic(mime=mime)
        setattr(_local, key, m)
    return m


_KINDS: Mapping[str, str] = {
    "application/x-dosexec": "pe", "application/vnd.microsoft.portable-executable": "pe",
    "application/x-msdownload": "pe",
    "application/x-executable": "elf", "application/x-sharedlib": "elf",
    "application/x-pie-executable": "elf", "application/x-object": "elf",
    "application/x-coredump": "elf",
    "application/x-mach-binary": "macho", "application/x-mach-o-executable": "macho",
    "application/zip": "zip", "application/x-zip-compressed": "zip",
    "application/java-archive": "jar", "application/x-java-archive": "jar",
    "application/x-java-applet": "java_class",
    "application/x-tar": "tar", "application/gzip": "gzip", "application/x-gzip": "gzip",
    "application/x-bzip2": "bzip2", "application/x-xz": "xz", "application/x-lzma": "xz",
    "application/x-7z-compressed": "7z", "application/x-rar": "rar",
    "application/vnd.rar": "rar", "application/vnd.ms-cab-compressed": "cab",
    "application/x-arj": "arj", "application/x-lzh-compressed": "lzh",
    "application/x-ace-compressed": "ace", "application/zstd": "zstd",
    "application/x-lz4": "lz4", "application/x-cpio": "cpio", "application/x-archive": "ar",
    "application/x-ole-storage": "ole", "application/msword": "ole",
    "application/vnd.ms-excel": "ole", "application/vnd.ms-powerpoint": "ole",
    "application/vnd.ms-office": "ole", "application/vnd.ms-outlook": "ole",
    "application/CDFV2": "ole", "application/x-msi": "msi",
    "application/encrypted": "encrypted_office",
    "text/rtf": "rtf", "application/rtf": "rtf",
    "application/pdf": "pdf",
    "text/html": "html", "application/xhtml+xml": "html", "image/svg+xml": "svg",
    "application/x-ms-shortcut": "lnk",
    "application/x-iso9660-image": "iso", "application/x-virtualbox-vhd": "disk_image",
    "application/x-virtualbox-vhdx": "disk_image", "application/x-qemu-disk": "disk_image",
    "application/x-vmdk": "disk_image", "application/x-apple-diskimage": "disk_image",
    "application/vnd.ms-htmlhelp": "chm",
    "text/x-shellscript": "shell_script",
    "application/x-mswinurl": "url_shortcut",
    "message/rfc822": "email",
}
_PREFIXES: Mapping[str, str] = {
    "application/vnd.openxmlformats-officedocument.": "ooxml",
    "application/vnd.ms-word.": "ooxml", "application/vnd.ms-excel.": "ooxml",
    "application/vnd.ms-powerpoint.": "ooxml",
    "application/vnd.oasis.opendocument.": "odf",
    "image/": "image", "audio/": "media", "video/": "media", "text/": "text",
}
_ONENOTE = bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3")


def true_type(data: bytes) -> FileType:
    """The MIME type, description and kind of ``data``, from its bytes alone."""
    head = data[:HEAD]
    try:
        mime = _magic(True).from_buffer(head)
        desc = _magic(False).from_buffer(head)
    except magic.MagicException:
        mime, desc = "application/octet-stream", "data"
    return FileType(mime, desc, _kind(mime, desc, head))


def _kind(mime: str, desc: str, head: bytes) -> str:
    if head.startswith(_ONENOTE):
        return "onenote"
    if head.startswith(b"MSCF\0\0\0\0"):
        return "cab"
    if head.startswith(b"vhdxfile"):
        return "disk_image"
    if head.startswith(b"**ACE**", 7):
        return "ace"
    kind = _KINDS.get(mime)
    if head.startswith(b"PK\x03\x04") and kind not in ("zip", "jar") and not mime.startswith(
            ("application/vnd.openxmlformats", "application/vnd.oasis", "application/vnd.ms-")):
        return "zip"  # refined by looking inside (Office, OpenDocument, Java)
    if kind == "ole" and "MSI Installer" in desc:
        return "msi"
    if kind:
        return kind
    if "MSI Installer" in desc:
        return "msi"
    if "Windows shortcut" in desc:
        return "lnk"
    if desc.startswith(("AppleDouble", "AppleSingle")):
        return "appledouble"  # the "._name" metadata macOS leaves on a USB key
    for prefix, k in _PREFIXES.items():
        if mime.startswith(prefix):
            return k
    if mime == "application/x-empty":
        return "empty"
    return "data"


# --- banned types --------------------------------------------------------

VERDICTS = {"malicious": Verdict.MALICIOUS, "suspicious": Verdict.SUSPICIOUS,
            "not_inspected": Verdict.NOT_INSPECTED, "allow": Verdict.CLEAN}
DIRECTIONS = ("inbound", "outbound", "file")


@dataclass(frozen=True, slots=True)
class BannedType:
    key: str
    fr: str
    en: str
    kinds: frozenset[str]
    extensions: frozenset[str]
    verdicts: Mapping[str, Verdict]  # direction -> verdict


@dataclass(frozen=True, slots=True)
class BannedTypes:
    types: tuple[BannedType, ...]

    @classmethod
    def load(cls, path: Path) -> BannedTypes:
        """Read ``banned_types.toml``; any mistake is a ScanConfigError naming the key."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScanConfigError(f"fichier illisible ({exc.strerror})",
                                  f"unreadable file ({exc.strerror})", file=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ScanConfigError(f"syntaxe TOML incorrecte ({exc})", f"TOML syntax error ({exc})",
                                  file=str(path), line=int(m.group(1)) if m else None) from None
        out: list[BannedType] = []
        for key, body in dict(data.get("types", {})).items():
            def bad(what_fr: str, what_en: str, key: str = key) -> ScanConfigError:
                return ScanConfigError(f"[types.{key}] : {what_fr}", f"[types.{key}]: {what_en}",
                                       file=str(path))
            if not isinstance(body, dict):
                raise bad("doit être une table", "must be a table")
            unknown = set(body) - {"fr", "en", "kinds", "extensions", *DIRECTIONS}
            if unknown:
                raise bad(f"clé inconnue {sorted(unknown)[0]!r}", f"unknown key "
                          f"{sorted(unknown)[0]!r}")
            verdicts: dict[str, Verdict] = {}
            for direction in DIRECTIONS:
                value = body.get(direction)
                if value is None:
                    continue
                if value not in VERDICTS:
                    raise bad(f"{direction} : attendu {', '.join(VERDICTS)}",
                              f"{direction}: expected {', '.join(VERDICTS)}")
                verdicts[direction] = VERDICTS[value]
            if "inbound" not in verdicts:
                raise bad("inbound manquant", "inbound is missing")
            verdicts.setdefault("outbound", verdicts["inbound"])
            verdicts.setdefault("file", verdicts["inbound"])
            lists = {}
            for name in ("kinds", "extensions"):
                value = body.get(name, [])
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise bad(f"{name} : une liste de textes", f"{name}: a list of strings")
                lists[name] = frozenset(v.lower().lstrip(".") for v in value)
            out.append(BannedType(key, str(body.get("fr", key)), str(body.get("en", key)),
                                  lists["kinds"], lists["extensions"], verdicts))
        return cls(tuple(out))

    def match(self, kind: str, name: str) -> BannedType | None:
        ext = extension(name)
        for t in self.types:
            if kind in t.kinds or (ext and ext in t.extensions):
                return t
        return None

    @property
    def all_extensions(self) -> frozenset[str]:
        return frozenset(e for t in self.types for e in t.extensions
                         if t.verdicts["inbound"] is not Verdict.NOT_INSPECTED)


def extension(name: str) -> str:
    """The last extension of ``name``, lower-case, without the dot ('' when none)."""
    base = re.split(r"[\\/]", name)[-1].rstrip(" .")
    _, dot, ext = base.rpartition(".")
    return ext.lower().strip() if dot and ext and len(ext) <= 20 else ""


# --- names ----------------------------------------------------------------

# Bidirectional overrides and isolates: what makes "facture\u202efdp.exe" read as a PDF.
_RTL = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"[ \u00a0\u2000-\u200b\u3000_]{8,}")
# What a document or a picture is usually called: a name ending with one of these
# then with a program's extension is a disguise.
DOCUMENT_EXTENSIONS = frozenset({
    "pdf", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx", "odt", "ods", "odp",
    "rtf", "txt", "csv", "jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "heic", "mp3",
    "mp4", "avi", "mov", "wav", "zip", "rar", "7z", "html", "htm", "ics", "eml", "msg", "xml",
})
_OFFICE = frozenset({"ole", "ooxml", "zip", "encrypted_office"})
_WORD = _OFFICE | {"rtf", "html", "xml", "text"}
_EXCEL = _OFFICE | {"html", "xml", "text", "csv"}
_POWERPOINT = _OFFICE
# extension -> the kinds a file so named may really be
_EXPECTED: Mapping[str, frozenset[str]] = {
    "pdf": frozenset({"pdf"}),
    "jpg": frozenset({"image"}), "jpeg": frozenset({"image"}), "png": frozenset({"image"}),
    "gif": frozenset({"image"}), "bmp": frozenset({"image"}), "tif": frozenset({"image"}),
    "tiff": frozenset({"image"}), "heic": frozenset({"image", "data"}),
    "webp": frozenset({"image"}),
    # Office formats are confused with one another all the time (a .docx renamed .doc,
    # RTF or a web page saved as .doc, a CSV or an HTML table exported as .xls), and
    # Office opens them all by their content: ordinary, and scanned as what they are.
    "docx": _WORD, "docm": _WORD, "dotx": _WORD, "dotm": _WORD, "doc": _WORD, "dot": _WORD,
    "rtf": _WORD,
    "xlsx": _EXCEL, "xlsm": _EXCEL, "xltx": _EXCEL, "xls": _EXCEL, "xlt": _EXCEL,
    "pptx": _POWERPOINT, "pptm": _POWERPOINT, "ppt": _POWERPOINT, "pps": _POWERPOINT,
    "ppsx": _POWERPOINT,
    "odt": frozenset({"odf", "zip"}), "ods": frozenset({"odf", "zip"}),
    "odp": frozenset({"odf", "zip"}),
    "zip": frozenset({"zip", "ooxml", "odf", "jar"}), "7z": frozenset({"7z"}),
    "gz": frozenset({"gzip"}), "tgz": frozenset({"gzip"}), "tar": frozenset({"tar"}),
    "txt": frozenset({"text"}), "csv": frozenset({"text"}),
    "ics": frozenset({"text"}), "vcf": frozenset({"text"}),
    "url": frozenset({"url_shortcut", "text"}),
    "eml": frozenset({"email", "text"}),
}
# Nothing to disguise: an empty file, or macOS's "._name" metadata beside a real file.
_NEVER_MISMATCHED = frozenset({"empty", "appledouble"})
# A name saying "document" over one of these contents is a disguise, not a slip.
_DANGEROUS_KINDS = frozenset({"pe", "elf", "macho", "lnk", "msi", "jar", "java_class", "chm",
                              "onenote", "iso", "disk_image"})


def check_name(walk: Walk, name: str, ftype: FileType, path: str,
               banned: BannedTypes) -> None:
    """Findings for tricks in a file name, and for a name that lies about the content."""
    if _RTL.search(name):
        walk.add("SCAN_RTLO", Verdict.MALICIOUS,
                 "nom de fichier avec un caractère d'inversion du sens d'écriture (il cache sa "
                 "vraie extension)",
                 "file name with a right-to-left override character (it hides its real "
                 "extension)", path)
    if _SPACES.search(name):
        walk.add("SCAN_NAME_SPACES", Verdict.SUSPICIOUS,
                 "nom de fichier avec une longue suite d'espaces (qui cache l'extension)",
                 "file name with a long run of spaces (which hides the extension)", path)
    base = re.split(r"[\\/]", name)[-1]
    parts = [p.strip().lower() for p in base.split(".")]
    if len(parts) >= 3 and parts[-2] in DOCUMENT_EXTENSIONS and (
            parts[-1] in banned.all_extensions):
        walk.add("SCAN_DOUBLE_EXT", Verdict.MALICIOUS,
                 f"double extension « .{parts[-2]}.{parts[-1]} » : un programme déguisé en "
                 "document", f"double extension '.{parts[-2]}.{parts[-1]}': a program "
                 "disguised as a document", path)
    ext = extension(name)
    expected = _EXPECTED.get(ext)
    kind = "text" if ftype.kind in ("csv", "xml") else ftype.kind
    too_short = ftype.description.startswith("very short file")  # a few bytes: no type
    if (expected is not None and kind not in expected and not too_short
            and ftype.kind not in _NEVER_MISMATCHED):
        verdict = Verdict.MALICIOUS if ftype.kind in _DANGEROUS_KINDS else Verdict.SUSPICIOUS
        walk.add("SCAN_TYPE_MISMATCH", verdict,
                 f"le nom dit « .{ext} » mais le fichier est : {ftype.description[:60]}",
                 f"the name says '.{ext}' but the file is: {ftype.description[:60]}", path)
