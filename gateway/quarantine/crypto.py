"""The quarantine key and AES-GCM sealing of held messages and stored secrets.

The key (256 bits) comes from ``[quarantine] key`` (base64, meant for the
VIGIE_QUARANTINE_KEY variable) or from a key file, created 0600 on first start.
Each sealed blob has its own random nonce; the associated data binds it to what it
belongs to (a message id), so a blob moved to another id does not open.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
import sqlite3
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import Config, ConfigError
from gateway.quarantine.folder import _fsync_dir

log = logging.getLogger("vigie.quarantine")

MAGIC = b"VQ1\x00"
NONCE_SIZE = 12


class QuarantineKeyError(ConfigError):
    """The quarantine key is missing, unreadable or wrong (a ConfigError: the CLI and
    ``vigie serve`` show it as such, French then English, no traceback)."""

    def __init__(self, fr: str, en: str) -> None:
        super().__init__(fr, en, key="[quarantine] key / key_file")

    def render(self) -> str:
        # not «configuration invalide»: the configuration is often right and the key
        # file lost, replaced or mistyped; the message names the file and what to do
        return f"clé de quarantaine : {self.fr}\nquarantine key: {self.en}"



def key_path(cfg: Config) -> Path:
    if cfg.quarantine.key_file:
        return Path(cfg.quarantine.key_file).expanduser()
    return cfg.data_dir / "quarantine.key"


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise QuarantineKeyError(
            f"clé de quarantaine invalide ({where}) : 32 octets en base64 attendus",
            f"invalid quarantine key ({where}): 32 bytes, base64-encoded, expected")
    return key


def key_source(cfg: Config) -> str:
    """Where the key comes from, in words (for the messages that name it)."""
    return "[quarantine] key (VIGIE_QUARANTINE_KEY)" if cfg.quarantine.key \
        else str(key_path(cfg))


def sealed_data_exists(cfg: Config) -> bool:
    """Is there anything already sealed with some key (held messages or a saved
    Signal Spam login)? Then a missing key file is lost, not new."""
    root = cfg.data_dir / "quarantine"
    blobs = root / "blobs"
    with contextlib.suppress(OSError):
        if any(not p.name.startswith(".") for p in blobs.iterdir()):
            return True
    db = root / "quarantine.sqlite"
    if not db.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
        try:
            row = conn.execute("SELECT (SELECT count(*) FROM secrets) + (SELECT count(*)"
                               " FROM held WHERE status IN ('held', 'released'))").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # cannot tell: do not risk making everything unreadable
    return bool(row and row[0])


def _check_mode(path: Path) -> None:
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("clé de quarantaine %s lisible par d'autres (mode %o) : chmod 600 %s"
                        " / quarantine key readable by others (mode %o): chmod 600 %s",
                        path, mode, path, mode, path)


def load_key(cfg: Config, *, create: bool = True) -> bytes:
    """The key from the config, else from the key file. The file is created only on
    a first start: never when something is already sealed (a lost or mistyped key
    file must not be silently replaced), never with the folders of a configured
    ``key_file``."""
    if cfg.quarantine.key:
        return _decode(cfg.quarantine.key, "[quarantine] key")
    path = key_path(cfg)
    try:
        key = _decode(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        if not create:
            raise QuarantineKeyError(f"clé absente : {path}",
                                     f"key missing: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuarantineKeyError(f"clé illisible : {path} ({exc})",
                                 f"key unreadable: {path} ({exc})") from None
    else:
        _check_mode(path)
        return key
    if sealed_data_exists(cfg):
        raise QuarantineKeyError(
            f"le fichier de clé {path} est absent alors que la quarantaine "
            f"({cfg.data_dir / 'quarantine'}) contient déjà des messages ou des identifiants "
            "chiffrés : vigie ne crée pas de nouvelle clé, qui les rendrait illisibles. "
            "Remettez la clé depuis votre sauvegarde (ou corrigez [quarantine] key_file), "
            "ou mettez l'ancienne quarantaine de côté (déplacez le dossier) pour repartir à "
            "vide.",
            f"the key file {path} is missing while the quarantine "
            f"({cfg.data_dir / 'quarantine'}) already holds encrypted messages or "
            "credentials: vigie does not create a new key, which would make them "
            "unreadable. Restore the key from your backup (or fix [quarantine] key_file), "
            "or move the old quarantine folder aside to start empty.")
    if cfg.quarantine.key_file and not path.parent.is_dir():
        raise QuarantineKeyError(
            f"le dossier du fichier de clé {path} n'existe pas ([quarantine] key_file) : "
            "vérifiez le chemin, ou créez le dossier",
            f"the folder of the key file {path} does not exist ([quarantine] key_file): "
            "check the path, or create the folder")
    return _create_key(path, parents=not cfg.quarantine.key_file)


def _create_key(path: Path, *, parents: bool = True) -> bytes:
    key = AESGCM.generate_key(bit_length=256)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile: use theirs
        return _decode(path.read_text(encoding="ascii"), str(path))
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(path.parent)
    log.warning("clé de quarantaine créée : %s (sauvegardez-la : sans elle, les messages "
                "retenus sont illisibles) / quarantine key created: %s (back it up)",
                path, path)
    return key


class Sealer:
    """AES-256-GCM with a fresh nonce per blob: ``MAGIC | nonce | ciphertext+tag``."""

    def __init__(self, key: bytes, source: str = "") -> None:
        self._aead = AESGCM(key)
        self.source = source  # the key file (or variable), named in errors

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_SIZE)
        return MAGIC + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_SIZE + 16:
            raise QuarantineKeyError("contenu chiffré endommagé ou d'un autre format",
                                     "sealed content damaged or of another format")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_SIZE:], aad)
        except InvalidTag:
            where = f" ({self.source})" if self.source else ""
            raise QuarantineKeyError(
                f"déchiffrement impossible : ce n'est pas la clé qui a chiffré la quarantaine"
                f"{where}, ou le contenu a été modifié ; remettez la bonne clé (sauvegarde)",
                f"cannot decrypt: this is not the key the quarantine was encrypted with"
                f"{where}, or the content was altered; put the right key back (backup)"
            ) from None
