"""The quarantine key and AES-GCM sealing of held messages and stored secrets.

The key (256 bits) comes from ``[quarantine] key`` (base64, meant for the
VIGIE_QUARANTINE_KEY variable) or from a key file, created 0600 on first start.
Each sealed blob has its own random nonce; the associated data binds it to what it
belongs to (a message id), so a blob moved to another id does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import Config, ConfigError
from gateway.quarantine.folder import _fsync_dir

MAGIC = b"VQ1\x00"
NONCE_SIZE = 12


class QuarantineKeyError(ConfigError):
    """The quarantine key is missing, unreadable or wrong (a ConfigError: the CLI and
    ``vigie serve`` show it as such, French then English, no traceback)."""

    def __init__(self, fr: str, en: str) -> None:
        super().__init__(fr, en, key="[quarantine] key / key_file")



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


def load_key(cfg: Config, *, create: bool = True) -> bytes:
    """The key from the config, else from the key file (created when absent)."""
    if cfg.quarantine.key:
        return _decode(cfg.quarantine.key, "[quarantine] key")
    path = key_path(cfg)
    try:
        return _decode(path.read_text(encoding="ascii"), str(path))
    except FileNotFoundError:
        if not create:
            raise QuarantineKeyError(f"clé de quarantaine absente : {path}",
                                     f"quarantine key missing: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuarantineKeyError(f"clé de quarantaine illisible : {path} ({exc})",
                                 f"quarantine key unreadable: {path} ({exc})") from None
    return _create_key(path)


def _create_key(path: Path) -> bytes:
    key = AESGCM.generate_key(bit_length=256)
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
    return key


class Sealer:
    """AES-256-GCM with a fresh nonce per blob: ``MAGIC | nonce | ciphertext+tag``."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

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
            raise QuarantineKeyError(
                "déchiffrement impossible : mauvaise clé de quarantaine, ou contenu modifié",
                "cannot decrypt: wrong quarantine key, or content altered") from None
