"""Archives: zip, tar, gzip/bzip2/xz streams and 7z, read with bounded memory and time.

Nothing is ever expanded past the walk's budget: members are read a chunk at a
time, each chunk is charged to the walk (total bytes, time), and a member whose
expansion ratio passes the limit is a bomb, given up at once. Declared sizes are
looked at first (a naive bomb says what it is) and never trusted after.
Encrypted members are reported, never guessed at.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

from gateway.scan.report import Verdict
from gateway.scan.walk import CHUNK, RATIO_FLOOR, Stop, Walk


def read_bounded(walk: Walk, path: str, f: IO[bytes], consumed: Callable[[], int]) -> bytes:
    """All of ``f``, a chunk at a time, charged to ``walk``; raises Stop past a limit."""
    buf = io.BytesIO()  # getvalue() hands its buffer over without a copy
    total = 0
    while True:
        walk.check_time(path)
        piece = f.read(CHUNK)
        if not piece:
            return buf.getvalue()
        total += len(piece)
        walk.ratio(path, total, consumed())
        walk.spent(path, len(piece), None)
        buf.write(piece)


def encrypted(walk: Walk, path: str, what_fr: str, what_en: str) -> None:
    """``what_fr`` agrees the participle: "archive …" is feminine, "document …" is not."""
    agreed = "protégée" if what_fr.startswith("archive") else "protégé"
    walk.add("SCAN_ENCRYPTED", Verdict.SUSPICIOUS,
             f"{what_fr} {agreed} par mot de passe : impossible à inspecter (un moyen "
             "classique de faire passer un logiciel malveillant)",
             f"password-protected {what_en}: cannot be inspected (a classic way to smuggle "
             "malware)", path)


def unreadable(walk: Walk, path: str, what_fr: str, what_en: str) -> None:
    walk.add("SCAN_NOT_INSPECTED", Verdict.NOT_INSPECTED, f"{what_fr} illisible, non inspecté",
             f"unreadable {what_en}, not inspected", path)


# --- zip ------------------------------------------------------------------

def zip_names(data: bytes) -> list[str] | None:
    """Member names of a zip (None when it is not a readable zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def check_zip_structure(walk: Walk, path: str, zf: zipfile.ZipFile, size: int) -> None:
    """Bombs visible without expanding anything: declared ratios, overlapping entries."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    limits = walk.limits
    declared = 0
    for info in infos:
        declared += info.file_size
        if walk.is_bomb(info.file_size, info.compress_size):
            walk.bomb(f"{path}/{info.filename}",
                      f"taux de compression déclaré {info.file_size // max(info.compress_size, 1)}"
                      f":1 (limite {limits.max_ratio}:1)",
                      f"declared compression ratio {info.file_size // max(info.compress_size, 1)}"
                      f":1 (limit {limits.max_ratio}:1)")
    if walk.is_bomb(declared, size):
        walk.bomb(path, f"{declared} octets déclarés pour une archive de {size}",
                  f"{declared} bytes declared for an archive of {size}")
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for a, b in itertools.pairwise(ordered):
        if b.header_offset < a.header_offset + 30 + a.compress_size:
            walk.bomb(path, "entrées qui se chevauchent (la même donnée décompressée "
                      "plusieurs fois)", "overlapping entries (the same data expanded many "
                      "times)")


def scan_zip(walk: Walk, path: str, data: bytes, depth: int) -> None:
    scan_zip_file(walk, path, io.BytesIO(data), len(data), depth)


def scan_zip_file(walk: Walk, path: str, raw: IO[bytes], size: int, depth: int) -> None:
    """A zip read from ``raw`` (in memory or on disk), members expanded one by one."""
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        unreadable(walk, path, "archive zip", "zip archive")
        return
    with zf:
        check_zip_structure(walk, path, zf, size)
        locked = [i for i in zf.infolist() if i.flag_bits & 0x1]
        if locked:
            encrypted(walk, path, "archive zip", "zip archive")
        for info in zf.infolist():
            if info.is_dir() or info.flag_bits & 0x1:
                continue
            member = f"{path}/{info.filename}"
            walk.check_time(member)
            if walk.files + 1 > walk.limits.max_files:
                walk.child(member, info.filename, b"", depth + 1)  # reports the limit
            content = member_bytes(walk, member, raw, zf, info)
            if content is None:
                unreadable(walk, member, "fichier d'archive", "archive member")
                continue
            walk.child(member, info.filename, content, depth + 1)


def member_bytes(walk: Walk, path: str, raw: IO[bytes], zf: zipfile.ZipFile,
                 info: zipfile.ZipInfo) -> bytes | None:
    """One member's bytes, expanded within the walk's limits; None when unreadable.

    Deflated and stored members are inflated here rather than by zipfile, which
    stops at the size the header declares: a header that lies about the size (to
    hide a bomb's ratio) is caught by inflating past it.
    """
    try:
        if info.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
            return _inflate(walk, path, raw, info)
        with zf.open(info) as f:
            return read_bounded(walk, path, f, since(raw, info.header_offset))
    except Stop:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError, struct.error, zlib.error):
        return None


def _inflate(walk: Walk, path: str, raw: IO[bytes], info: zipfile.ZipInfo) -> bytes | None:
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack_from("<HH", local, 26)
    raw.seek(info.header_offset + 30 + name_len + extra_len)
    left = info.compress_size
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    out = io.BytesIO()
    total = consumed = 0
    crc = 0
    while left > 0 or (inflater is not None and inflater.unconsumed_tail):
        walk.check_time(path)
        if inflater is not None and inflater.unconsumed_tail:
            piece = inflater.unconsumed_tail
        else:
            piece = raw.read(min(64 * 1024, left))
            if not piece:
                return None  # truncated
            left -= len(piece)
            consumed += len(piece)
        data = inflater.decompress(piece, CHUNK) if inflater is not None else piece
        if data:
            total += len(data)
            walk.ratio(path, total, consumed)
            walk.spent(path, len(data), None)
            if total > info.file_size and total > RATIO_FLOOR:
                walk.bomb(path, f"le fichier annonce {info.file_size} octets et en contient "
                          "bien plus (taille falsifiée pour cacher une bombe)",
                          f"the member declares {info.file_size} bytes and holds far more "
                          "(size forged to hide a bomb)")
            crc = zlib.crc32(data, crc)
            out.write(data)
        if inflater is not None and inflater.eof:
            break
    if total != info.file_size or crc != info.CRC:
        return None
    return out.getvalue()


def since(raw: IO[bytes], start: int) -> Callable[[], int]:
    """Compressed bytes consumed from ``raw`` since ``start`` (for expansion ratios)."""
    return lambda: raw.tell() - start


def zlib_error() -> type[Exception]:
    return zlib.error


# --- tar ------------------------------------------------------------------

def scan_tar(walk: Walk, path: str, data: bytes, depth: int) -> None:
    """A plain (already decompressed) tar: its members are slices of ``data``."""
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, ValueError, EOFError):
        unreadable(walk, path, "archive tar", "tar archive")
        return
    with tf:
        try:
            for member in tf:
                name = f"{path}/{member.name}"
                if member.issym() or member.islnk() or member.isdev():
                    continue
                if not member.isfile():
                    continue
                walk.check_time(name)
                f = tf.extractfile(member)
                if f is None:
                    continue
                walk.child(name, member.name, f.read(), depth + 1)
        except (tarfile.TarError, OSError, ValueError, EOFError):
            unreadable(walk, path, "archive tar", "tar archive")


# --- single compressed streams -----------------------------------------------

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "gzip": (".gz", ".gzip"), "bzip2": (".bz2", ".bz"), "xz": (".xz", ".lzma")}


def _open_stream(kind: str, raw: IO[bytes]) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    return lzma.LZMAFile(raw)
_TAR_SHORT = {".tgz": ".tar", ".tbz2": ".tar", ".tbz": ".tar", ".txz": ".tar"}


def inner_name(name: str, kind: str) -> str:
    lower = name.lower()
    for short, long in _TAR_SHORT.items():
        if lower.endswith(short):
            return name[: -len(short)] + long
    for suffix in _SUFFIXES[kind]:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name + ".contenu"


def scan_stream(walk: Walk, path: str, name: str, data: bytes, depth: int, kind: str) -> None:
    raw = io.BytesIO(data)
    try:
        with _open_stream(kind, raw) as f:
            content = read_bounded(walk, path, f, raw.tell)
    except Stop:
        raise
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib_error()):
        unreadable(walk, path, f"fichier compressé {kind}", f"{kind} compressed file")
        return
    inner = inner_name(name, kind)
    walk.child(f"{path}/{inner}", inner, content, depth + 1)


# --- 7z -------------------------------------------------------------------

class _Bounded:
    """A py7zr writer that charges every byte to the walk and keeps the member."""

    def __init__(self, walk: Walk, path: str, archive_size: int) -> None:
        self.walk, self.path, self.archive_size = walk, path, archive_size
        self.buf = bytearray()

    def write(self, s: bytes | bytearray) -> int:
        self.buf += s
        # py7zr does not say how much it has read: the whole archive is the upper bound
        self.walk.ratio(self.path, len(self.buf), self.archive_size)
        self.walk.spent(self.path, len(s), None)
        self.walk.check_time(self.path)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return len(self.buf)

    def close(self) -> None:
        pass


def scan_7z(walk: Walk, path: str, data: bytes, depth: int) -> None:
    import py7zr
    import py7zr.exceptions

    writers: dict[str, _Bounded] = {}

    class Factory(py7zr.WriterFactory):
        def create(self, filename: str) -> Any:
            writer = _Bounded(walk, f"{path}/{filename}", len(data))
            writers[filename] = writer
            return writer

    try:
        with py7zr.SevenZipFile(io.BytesIO(data), mode="r") as archive:
            if archive.needs_password():
                encrypted(walk, path, "archive 7z", "7z archive")
                return
            files = [f for f in archive.list() if not f.is_directory]
            declared = sum(int(f.uncompressed or 0) for f in files)
            if walk.is_bomb(declared, len(data)):
                walk.bomb(path, f"{declared} octets déclarés pour une archive de {len(data)}",
                          f"{declared} bytes declared for an archive of {len(data)}")
            archive.extract(factory=Factory())
    except Stop:
        raise
    except py7zr.exceptions.PasswordRequired:
        encrypted(walk, path, "archive 7z", "7z archive")
        return
    except Exception:  # py7zr raises many kinds on a broken archive
        if walk.stopped:  # our own Stop, wrapped by one of py7zr's worker threads
            raise Stop from None
        unreadable(walk, path, "archive 7z", "7z archive")
        return
    for filename, writer in writers.items():
        walk.child(f"{path}/{filename}", filename, bytes(writer.buf), depth + 1)
