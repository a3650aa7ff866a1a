"""Local users: one file of ``name:scrypt-hash[:flags]`` lines, written atomically (0600).

Hashing is deliberately slow (scrypt, 32 MiB): callers on the event loop must
use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.quarantine.folder import durable_write_file, ensure_private_dir

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# N=2^13, r=8, p=10: one of OWASP's equivalent scrypt settings (8 MiB of memory
# per check instead of 16-32 MiB for the others), so that a login does not show
# as tens of MB of resident memory on a small box; about 0.2 s of CPU, paid once
# per login thanks to the cache below. Parameters are stored in each hash: older
# hashes keep verifying.
_LN, _R, _P = 13, 8, 10
_MAXMEM = 64 * 1024 * 1024


class UserError(Exception):
    """A user-management problem, French then English."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    hash: str
    flags: frozenset[str] = frozenset()

    @property
    def admin(self) -> bool:
        return "admin" in self.flags


def hash_password(password: str, *, ln: int = _LN) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**ln, r=_R, p=_P,
                            maxmem=_MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"$scrypt$ln={ln},r={_R},p={_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        _, scheme, params, salt_b64, digest_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        p = dict(item.split("=") for item in params.split(","))
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2 ** int(p["ln"]),
                                r=int(p["r"]), p=int(p["p"]), maxmem=_MAXMEM,
                                dklen=len(expected))
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(digest, expected)


# Verified against when the user does not exist, so timing does not tell names apart.
_DUMMY = hash_password(secrets.token_urlsafe(16))


CACHE_TTL = 300.0  # seconds a successful login is remembered (keyed hash only)


class UsersFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[bytes, tuple[User, float]] = {}
        self._cache_stamp: int | None = None
        self._cache_secret = secrets.token_bytes(32)

    def load(self) -> dict[str, User]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise UserError(f"{self.path} : fichier d'utilisateurs illisible (pas UTF-8)\n"
                            f"{self.path}: unreadable users file (not UTF-8)") from None
        except OSError as exc:
            raise UserError(f"{self.path} : lecture impossible ({exc.strerror})\n"
                            f"{self.path}: cannot read ({exc.strerror})") from None
        users: dict[str, User] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":")
            if len(parts) not in (2, 3) or not NAME_RE.match(parts[0]):
                raise UserError(
                    f"{self.path}, ligne {number} : ligne illisible (attendu nom:empreinte)\n"
                    f"{self.path}, line {number}: unreadable line (expected name:hash)")
            flags = frozenset(f for f in (parts[2].split(",") if len(parts) == 3 else []) if f)
            users[parts[0]] = User(parts[0], parts[1], flags)
        return users

    def _save(self, users: dict[str, User]) -> None:
        lines = ["# vigie users: name:scrypt-hash[:flags] — managed by `vigie user`"]
        for u in sorted(users.values(), key=lambda u: u.name):
            lines.append(f"{u.name}:{u.hash}" + (f":{','.join(sorted(u.flags))}" if u.flags
                                                  else ""))
        ensure_private_dir(self.path.parent)
        durable_write_file(self.path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)

    @staticmethod
    def check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise UserError(
                f"nom d'utilisateur invalide {name!r} : lettres, chiffres et . _ @ + - seulement "
                "(commençant par une lettre ou un chiffre)\n"
                f"invalid user name {name!r}: letters, digits and . _ @ + - only (starting with "
                "a letter or digit)")

    def add(self, name: str, password: str, *, admin: bool = False, replace: bool = False
            ) -> User:
        self.check_name(name)
        if len(password) < 10:
            raise UserError("mot de passe trop court (10 caractères au moins)\n"
                            "password too short (at least 10 characters)")
        users = self.load()
        if name in users and not replace:
            raise UserError(f"l'utilisateur {name} existe déjà\nuser {name} already exists")
        user = User(name, hash_password(password), frozenset({"admin"} if admin else ()))
        users[name] = user
        self._save(users)
        return user

    def delete(self, name: str) -> None:
        users = self.load()
        if name not in users:
            raise UserError(f"utilisateur inconnu : {name}\nunknown user: {name}")
        del users[name]
        self._save(users)

    def verify(self, name: str, password: str) -> User | None:
        """Blocking: run it in a thread from async code."""
        user = self.load().get(name)
        if user is None:
            verify_password(password, _DUMMY)
            return None
        return user if verify_password(password, user.hash) else None

    def verify_cached(self, name: str, password: str) -> User | None:
        """A recent successful check of these exact credentials, without scrypt:
        the user when known good, None when the cache cannot tell (call verify).
        Mail programs open a connection, and log in, for every message sent.
        The cache keys are keyed hashes (no password is kept) and it is emptied
        whenever the users file changes."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return None
        if stamp != self._cache_stamp:
            self._cache.clear()
            self._cache_stamp = stamp
        key = self.cache_key(name, password)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def remember(self, user: User, password: str) -> None:
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[self.cache_key(user.name, password)] = (user,
                                                              time.monotonic() + CACHE_TTL)

    def cache_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._cache_secret, f"{name}\0{password}".encode(), "sha256").digest()


def random_password() -> str:
    return secrets.token_urlsafe(12)
