"""Typed configuration: embedded defaults, then one TOML file, then VIGIE_* variables.

A bad file stops start-up with the file, the line, the key and what is wrong,
in French then English: never a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import socket
import ssl
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# fail(section, key, fr, en) raises a ConfigError naming the file, line and key.
Fail = Callable[[str, str, str, str], None]

UpstreamTLS = Literal["starttls", "implicit", "none"]
AuthMode = Literal["upstream", "local", ""]
ReplyCharset = Literal["utf-8", "ascii"]
LogFormat = Literal["text", "json"]
Action = Literal["deliver", "tag", "hold", "reject", "tempfail"]
ACTIONS: tuple[str, ...] = typing.get_args(Action)


class ConfigError(Exception):
    """A configuration problem a person can fix; str() is French then English."""

    def __init__(
        self, fr: str, en: str, *, file: str | None = None, key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.fr, self.en, self.file, self.key, self.line = fr, en, file, key, line
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file:
            where.append(self.file + (f", ligne {self.line}" if self.line else ""))
        if self.key:
            where.append(self.key)
        loc = " — ".join(where)
        where_en = []
        if self.file:
            where_en.append(self.file + (f", line {self.line}" if self.line else ""))
        if self.key:
            where_en.append(self.key)
        loc_en = " — ".join(where_en)
        fr = f"configuration invalide : {loc} : {self.fr}" if loc else f"configuration : {self.fr}"
        en = (f"invalid configuration: {loc_en}: {self.en}" if loc_en
              else f"configuration: {self.en}")
        return f"{fr}\n{en}"


def _listen_list() -> list[str]:
    return ["127.0.0.1:2587"]


def _listen_tls_list() -> list[str]:
    return ["127.0.0.1:2465"]


@dataclass
class ServerConfig:
    hostname: str = ""


@dataclass
class SubmissionConfig:
    listen: list[str] = field(default_factory=_listen_list)
    listen_tls: list[str] = field(default_factory=_listen_tls_list)
    reply_charset: ReplyCharset = "utf-8"


@dataclass
class TLSConfig:
    cert_file: str = ""
    key_file: str = ""


@dataclass
class AuthConfig:
    mode: AuthMode = ""
    users_file: str = ""
    failure_delay: float = 1.0
    max_failures: int = 3


@dataclass
class UpstreamConfig:
    host: str = ""
    port: int = 0
    tls: UpstreamTLS = "starttls"
    verify: bool = True
    ca_file: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    timeout: float = 60.0
    data_timeout: float = 180.0
    helo: str = ""
    # Sessions of the shared upstream account kept open after a client leaves, for
    # the next one (mail programs open a connection per message): at most this many,
    # each for at most idle_timeout seconds. 0 = close each session at once.
    idle_sessions: int = 20
    idle_timeout: float = 60.0


@dataclass
class StorageConfig:
    data_dir: str = ""


@dataclass
class DNSConfig:
    nameservers: list[str] = field(default_factory=list)
    port: int = 53
    timeout: float = 5.0


@dataclass
class LimitsConfig:
    message_size: int = 25 * 1024 * 1024
    recipients: int = 100
    command_timeout: float = 300.0
    header_size: int = 64 * 1024
    check_timeout: float = 20.0


@dataclass
class RulesConfig:
    dir: str = ""


@dataclass
class PatientDataConfig:
    enabled: bool = True
    trusted_domains: list[str] = field(default_factory=list)
    contacts_file: str = ""
    webmail_file: str = ""
    override_marker: str = ""


# --- issue 4: inbound screening ---------------------------------------------

@dataclass
class InboundConfig:
    # Where the internet (or the provider's MX) hands mail for the practice to vigie.
    # Empty = no inbound listener (`vigie serve` without a config file listens on
    # 127.0.0.1:2525 for mail to @localhost: the embedded demo).
    listen: list[str] = field(default_factory=list)
    # The practice's own domains and addresses: the only recipients accepted inbound.
    domains: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    # The practice's mailbox server; empty = the local Maildir (embedded default).
    mailbox_host: str = ""
    mailbox_port: int = 25
    mailbox_tls: UpstreamTLS = "starttls"
    mailbox_verify: bool = True
    mailbox_ca_file: str = ""
    # A load balancer in front sends the PROXY protocol header (v1 or v2) first.
    proxy_protocol: bool = False
    # Relays of the provider (their MX, a Postfix) that hand mail to vigie: the
    # client IP and HELO for SPF come from the Received line they added.
    trusted_relays: list[str] = field(default_factory=list)
    # Our Authentication-Results name (default: [server] hostname); the same name
    # arriving from outside is removed. Optionally believe the results of a trusted
    # relay that writes its own Authentication-Results.
    authserv_id: str = ""
    trusted_authserv_ids: list[str] = field(default_factory=list)
    tag_subject_prefix: str = "[SUSPECT] "
    # DNS trouble never refuses mail: "tempfail" answers 451 (the sender retries),
    # "tag" delivers with the subject prefix and a warning.
    dns_error: Literal["tempfail", "tag"] = "tempfail"


_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}"
                     r"[a-z0-9])?")


def _parses(item: str) -> bool:
    try:
        parse_listen(item)
    except ValueError:
        return False
    return True


def _validate_inbound(cfg: Config, fail: Fail) -> None:
    inbound = cfg.inbound
    for item in inbound.listen:
        try:
            port = parse_listen(item)[1]
        except ValueError:
            port = 0
        if port == 0:
            fail("inbound", "listen", f"adresse d'écoute invalide {item!r} (attendu "
                 "\"hôte:port\", par ex. \"0.0.0.0:25\")",
                 f"invalid listen address {item!r} (expected \"host:port\", e.g. "
                 "\"0.0.0.0:25\")")
    others = {parse_listen(i) for i in (*cfg.submission.listen, *cfg.submission.listen_tls)
              if _parses(i)}
    for item in inbound.listen:
        if _parses(item) and parse_listen(item) in others:
            fail("inbound", "listen", f"{item!r} est déjà une adresse d'écoute de [submission]",
                 f"{item!r} is already a [submission] listen address")
    for domain in inbound.domains:
        if not _DOMAIN.fullmatch(domain.strip().lower()):
            fail("inbound", "domains", f"{domain!r} n'est pas un nom de domaine",
                 f"{domain!r} is not a domain name")
    for address in inbound.addresses:
        local, at, domain = address.rpartition("@")
        if not at or not local or not _DOMAIN.fullmatch(domain.strip().lower()):
            fail("inbound", "addresses", f"{address!r} n'est pas une adresse (nom@domaine)",
                 f"{address!r} is not an address (name@domain)")
    for relay in inbound.trusted_relays:
        try:
            ipaddress.ip_network(relay.strip(), strict=False)
        except ValueError:
            fail("inbound", "trusted_relays", f"{relay!r} n'est ni une adresse IP ni un réseau "
                 "(par ex. \"192.0.2.10\" ou \"2001:db8::/32\")",
                 f"{relay!r} is neither an IP address nor a network (e.g. \"192.0.2.10\" "
                 "or \"2001:db8::/32\")")
    if inbound.listen and not inbound.domains and not inbound.addresses:
        fail("inbound", "domains", "l'écoute entrante demande les domaines ou adresses du "
             "cabinet (domains = [\"cabinet.fr\"]) : vigie n'accepte que le courrier qui leur "
             "est destiné", "the inbound listener needs the practice's domains or addresses "
             "(domains = [\"cabinet.fr\"]): vigie only accepts mail for them")
    if inbound.mailbox_port and not 0 < inbound.mailbox_port < 65536:
        fail("inbound", "mailbox_port", "doit être entre 1 et 65535",
             "must be between 1 and 65535")
    if inbound.mailbox_ca_file and not Path(inbound.mailbox_ca_file).expanduser().is_file():
        fail("inbound", "mailbox_ca_file", f"fichier introuvable : {inbound.mailbox_ca_file}",
             f"file not found: {inbound.mailbox_ca_file}")
    if inbound.authserv_id and not _DOMAIN.fullmatch(inbound.authserv_id.lower()):
        fail("inbound", "authserv_id", "un nom d'hôte est attendu (lettres, chiffres, points, "
             "tirets)", "a host name is expected (letters, digits, dots, dashes)")


@dataclass
class DirectoryConfig:
    # The directory of confrères (SQLite) filled by `vigie directory import`;
    # empty = <data_dir>/directory.sqlite3.
    file: str = ""
    # Domains whose look-alikes are reported besides mssante.fr, the contacts'
    # domains and [inbound] domains (e.g. a partner hospital's own domain).
    protected_domains: list[str] = field(default_factory=list)


def _validate_directory(cfg: Config, fail: Fail) -> None:
    if cfg.directory.file:
        path = Path(cfg.directory.file).expanduser()
        if path.exists() and not path.is_file():
            fail("directory", "file", f"{path} existe et n'est pas un fichier",
                 f"{path} exists and is not a file")
    for domain in cfg.directory.protected_domains:
        try:
            ascii_form = domain.strip().lower().encode("idna").decode("ascii")
        except UnicodeError:
            ascii_form = ""
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
                            ascii_form):
            fail("directory", "protected_domains",
                 f"{domain!r} n'est pas un nom de domaine (attendu : [\"chu-exemple.fr\"])",
                 f"{domain!r} is not a domain name (expected: [\"chu-exemple.fr\"])")


# --- issue 5: attachment and USB scanning ------------------------------------

@dataclass
class ScanConfig:
    # Attachments of mail in both directions are scanned (gateway/scan/).
    enabled: bool = True
    # Archives: nesting depth, files looked at, bytes expanded (in total), and the
    # expansion ratio past which an archive is a "bomb" (given up, never expanded).
    max_depth: int = 5
    max_files: int = 1000
    max_expanded: int = 100 * 1024 * 1024
    max_ratio: int = 200
    # Whole-scan budget per file or message, in seconds (then: not inspected).
    timeout: float = 15.0
    # YARA: the project's rules, plus *.yar / *.yara files of this folder.
    yara_dir: str = ""
    yara_timeout: float = 10.0
    # Optional ClamAV daemon: "/run/clamav/clamd.ctl" or "127.0.0.1:3310"; empty = none.
    clamd: str = ""
    clamd_timeout: float = 30.0


def _validate_scan(cfg: Config, fail: Fail) -> None:
    scan = cfg.scan
    for key in ("max_depth", "max_files", "max_expanded", "max_ratio"):
        if getattr(scan, key) < 1:
            fail("scan", key, "doit valoir au moins 1", "must be at least 1")
    if scan.max_depth > 20:
        fail("scan", "max_depth", "au plus 20", "at most 20")
    if scan.max_expanded > 4 * 1024 ** 3:
        fail("scan", "max_expanded", "au plus 4 Gio (4294967296)", "at most 4 GiB")
    for key in ("timeout", "yara_timeout", "clamd_timeout"):
        if getattr(scan, key) <= 0:
            fail("scan", key, "doit être strictement positif", "must be greater than 0")
    if scan.yara_dir and not Path(scan.yara_dir).expanduser().is_dir():
        fail("scan", "yara_dir", f"dossier introuvable : {scan.yara_dir}",
             f"folder not found: {scan.yara_dir}")
    if scan.clamd and not (scan.clamd.startswith("/") or re.fullmatch(
            r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}", scan.clamd)):
        fail("scan", "clamd", f"attendu un chemin de socket (\"/run/clamav/clamd.ctl\") ou "
             f"\"hôte:port\" (reçu : {scan.clamd!r})",
             f"expected a socket path (\"/run/clamav/clamd.ctl\") or \"host:port\" "
             f"(got: {scan.clamd!r})")


# --- issue 6: quarantine, digest, web console, Signal Spam ------------------

@dataclass
class QuarantineConfig:
    # Held mail is kept encrypted (AES-GCM) in <data_dir>/quarantine/; the 256-bit key
    # is read from key_file (default <data_dir>/quarantine.key, created 0600 on first
    # start) or given base64-encoded in `key` (meant for VIGIE_QUARANTINE_KEY).
    key_file: str = ""
    key: str = ""
    # Held messages (and their metadata) are purged after this many days, daily.
    retention_days: int = 30
    # One-click links of the digest expire after this many days.
    token_days: int = 7


def _validate_quarantine(cfg: Config, fail: Fail) -> None:
    q = cfg.quarantine
    if not 1 <= q.retention_days <= 3650:
        fail("quarantine", "retention_days", "doit être entre 1 et 3650 jours",
             "must be between 1 and 3650 days")
    if not 1 <= q.token_days <= 90:
        fail("quarantine", "token_days", "doit être entre 1 et 90 jours",
             "must be between 1 and 90 days")
    if q.key_file and q.key:
        fail("quarantine", "key", "key et key_file s'excluent",
             "key and key_file are mutually exclusive")
    if q.key:
        import base64
        import binascii

        try:
            raw = base64.b64decode(q.key, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            fail("quarantine", "key", "doit être 32 octets encodés en base64 (par ex. la sortie "
                 "de « head -c 32 /dev/urandom | base64 »)",
                 "must be 32 bytes, base64-encoded (e.g. the output of "
                 "'head -c 32 /dev/urandom | base64')")
    if q.key_file:
        path = Path(q.key_file).expanduser()
        if path.exists() and not path.is_file():
            fail("quarantine", "key_file", f"{path} existe et n'est pas un fichier",
                 f"{path} exists and is not a file")
        elif not path.parent.is_dir():
            # vigie never creates the folders of a configured key file (a typo would
            # otherwise silently start a new, empty key)
            fail("quarantine", "key_file", f"le dossier {path.parent} n'existe pas ou n'est "
                 "pas un dossier", f"the folder {path.parent} does not exist or is not a "
                 "folder")


@dataclass
class DigestConfig:
    # The daily summary of held mail, sent at `time` (HH:MM, local time of `timezone`)
    # to `recipients` through the normal relay; nothing is sent when nothing was held,
    # unless send_empty. Empty recipients = no digest.
    recipients: list[str] = field(default_factory=list)
    time: str = "08:00"
    timezone: str = "Europe/Paris"
    send_empty: bool = False
    sender: str = ""  # From: of the digest (default vigie@<server hostname>)
    # Base of the one-click links (default: [web] public_url when the console has one).
    public_url: str = ""
    language: Literal["fr", "en"] = "fr"


def _validate_digest(cfg: Config, fail: Fail) -> None:
    d = cfg.digest
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", d.time.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        fail("digest", "time", f"heure invalide {d.time!r} (attendu \"HH:MM\", par ex. "
             "\"08:00\")", f"invalid time {d.time!r} (expected \"HH:MM\", e.g. \"08:00\")")
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(d.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        fail("digest", "timezone", f"fuseau horaire inconnu {d.timezone!r} (par ex. "
             "\"Europe/Paris\")", f"unknown time zone {d.timezone!r} (e.g. \"Europe/Paris\")")
    for address in (*d.recipients, *([d.sender] if d.sender else [])):
        local, at, domain = address.strip().rpartition("@")
        if not at or not local or ("." not in domain and domain.lower() != "localhost") \
                or any(c.isspace() for c in address.strip()):
            fail("digest", "recipients" if address in d.recipients else "sender",
                 f"adresse invalide {address!r} (attendu nom@domaine)",
                 f"invalid address {address!r} (expected name@domain)")
    if d.public_url and not re.fullmatch(r"https?://[^\s/]+(?:/\S*)?", d.public_url):
        fail("digest", "public_url", "doit commencer par https:// (ou http://)",
             "must start with https:// (or http://)")


@dataclass
class SignalSpamConfig:
    # Reports of spam to signal-spam.fr, only on a user's click. The practice's login
    # is stored encrypted by `vigie signal-spam login` (never in this file).
    endpoint: str = "https://www.signal-spam.fr/api/signaler"
    timeout: float = 20.0
    retries: int = 3


def _validate_signal_spam(cfg: Config, fail: Fail) -> None:
    s = cfg.signal_spam
    if not re.fullmatch(r"https?://[^\s/]+(?:/\S*)?", s.endpoint):
        fail("signal_spam", "endpoint", "doit commencer par https:// (ou http://)",
             "must start with https:// (or http://)")
    if s.timeout <= 0:
        fail("signal_spam", "timeout", "doit être strictement positif", "must be greater than 0")
    if not 0 <= s.retries <= 10:
        fail("signal_spam", "retries", "doit être entre 0 et 10", "must be between 0 and 10")


@dataclass
class WebConfig:
    # The console and the one-click pages. Localhost by default: put a reverse proxy
    # (HTTPS) in front to reach it from elsewhere. Empty = no web console at all.
    listen: str = "127.0.0.1:8025"
    # The address people use to reach it (through the proxy), for the digest's
    # links, e.g. "https://vigie.cabinet-kine.fr"; empty = http://<listen>.
    public_url: str = ""
    # Serve HTTPS itself with the gateway's certificate ([tls] or the self-signed one).
    tls: bool = False
    # A console session ends after this many idle minutes, and after max_hours anyway.
    session_minutes: float = 30.0
    session_max_hours: float = 12.0
    # Failed logins: each one waits failure_delay seconds; after max_failures from one
    # address (or for one name) in 15 minutes, logins from it wait lockout_minutes.
    failure_delay: float = 1.0
    max_failures: int = 5
    lockout_minutes: float = 15.0
    # Trust X-Forwarded-For / X-Forwarded-Proto from this proxy address (e.g.
    # "127.0.0.1" when nginx runs on the same box); empty = trust no header.
    trusted_proxy: str = ""


def _listen_host_ok(host: str) -> bool:
    """An IP literal, localhost, or a name this machine resolves (a typo in the
    console's address must fail ``vigie config check``, not ``vigie serve``)."""
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    try:
        return bool(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


def _validate_web(cfg: Config, fail: Fail) -> None:
    import ipaddress  # local: keeps the shared import block untouched

    web = cfg.web
    if web.listen:
        try:
            host, _ = parse_listen(web.listen)
            if not _listen_host_ok(host):
                fail("web", "listen", f"hôte inconnu {host!r} : donnez une adresse IP (par "
                     "ex. 127.0.0.1) ou un nom de cette machine",
                     f"unknown host {host!r}: give an IP address (e.g. 127.0.0.1) or a "
                     "name of this machine")
        except ValueError:
            fail("web", "listen", f"adresse d'écoute invalide {web.listen!r} (attendu "
                 "\"hôte:port\", par ex. \"127.0.0.1:8025\", ou \"\" pour aucune console)",
                 f"invalid listen address {web.listen!r} (expected \"host:port\", e.g. "
                 "\"127.0.0.1:8025\", or \"\" for no console)")
    if web.public_url and not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?",
                                           web.public_url):
        fail("web", "public_url", f"adresse invalide {web.public_url!r} (attendu par ex. "
             "\"https://vigie.cabinet-kine.fr\")",
             f"invalid URL {web.public_url!r} (expected e.g. \"https://vigie.example.fr\")")
    if not web.listen and (web.public_url or cfg.digest.public_url):
        fail("web", "listen", "vide (pas de console) alors qu'une adresse publique est "
             "donnée ([web] / [digest] public_url) : les liens du récapitulatif mèneraient "
             "à une console qui n'existe pas ; donnez une adresse d'écoute ou retirez "
             "public_url", "empty (no console) while a public address is given ([web] / "
             "[digest] public_url): the digest's links would lead to a console that does "
             "not exist; give a listen address or remove public_url")
    for key in ("session_minutes", "session_max_hours", "lockout_minutes"):
        if getattr(web, key) <= 0:
            fail("web", key, "doit être strictement positif", "must be greater than 0")
    if web.failure_delay < 0:
        fail("web", "failure_delay", "ne peut pas être négatif", "cannot be negative")
    if web.max_failures < 1:
        fail("web", "max_failures", "doit valoir au moins 1", "must be at least 1")
    if web.trusted_proxy:
        try:
            ipaddress.ip_address(web.trusted_proxy)
        except ValueError:
            fail("web", "trusted_proxy", f"adresse IP invalide {web.trusted_proxy!r}",
                 f"invalid IP address {web.trusted_proxy!r}")


@dataclass
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: LogFormat = "text"


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    log: LogConfig = field(default_factory=LogConfig)
    patient_data: PatientDataConfig = field(default_factory=PatientDataConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    signal_spam: SignalSpamConfig = field(default_factory=SignalSpamConfig)
    web: WebConfig = field(default_factory=WebConfig)
    # Free-form policy overrides ([policy.thresholds], [policy.symbols.X]),
    # validated by gateway.policy against the rules.
    policy: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    # --- derived values -------------------------------------------------
    @property
    def data_dir(self) -> Path:
        if self.storage.data_dir:
            return Path(self.storage.data_dir).expanduser()
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "vigie"

    @property
    def hostname(self) -> str:
        return self.server.hostname or socket.getfqdn()

    @property
    def auth_mode(self) -> Literal["upstream", "local"]:
        if self.auth.mode:
            return self.auth.mode
        return "upstream" if self.upstream.host else "local"

    @property
    def users_file(self) -> Path:
        return Path(self.auth.users_file).expanduser() if self.auth.users_file else (
            self.data_dir / "users"
        )

    @property
    def upstream_port(self) -> int:
        if self.upstream.port:
            return self.upstream.port
        return {"starttls": 587, "implicit": 465, "none": 25}[self.upstream.tls]

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit.log"

    def upstream_password(self) -> str:
        if self.upstream.password_file:
            path = Path(self.upstream.password_file).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"impossible de lire le fichier de mot de passe {path} ({exc.strerror})",
                    f"cannot read password file {path} ({exc.strerror})",
                    file=self.source, key="[upstream] password_file",
                ) from exc
        return self.upstream.password


# --- loading ------------------------------------------------------------

def _find_line(text: str, section: str, key: str | None) -> int | None:
    """Best-effort line number of ``key`` inside ``[section]`` (or of the section)."""
    current = None
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"-]+)\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1)
            if key is None and current == section:
                return number
            continue
        if current == section and key is not None and re.match(
            rf"^\s*\"?{re.escape(key)}\"?\s*=", line
        ):
            return number
    return None


def _type_name(tp: Any) -> tuple[str, str]:
    origin = typing.get_origin(tp)
    if origin is Literal:
        opts = " | ".join(f'"{a}"' for a in typing.get_args(tp) if a != "")
        return f"une valeur parmi {opts}", f"one of {opts}"
    if tp is bool:
        return "true ou false", "true or false"
    if tp is int:
        return "un nombre entier", "an integer"
    if tp is float:
        return "un nombre", "a number"
    if tp is str:
        return "un texte entre guillemets", "a quoted string"
    if origin is list:
        return "une liste de textes", "a list of strings"
    return str(tp), str(tp)


def _coerce(tp: Any, value: Any) -> Any:
    """Return value if it fits the type, else raise ValueError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
                value):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    if origin is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError
    raise ValueError  # pragma: no cover - every field type is handled above


def _env_value(tp: Any, raw: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        low = raw.strip().lower()
        if low in {"1", "true", "yes", "oui", "on"}:
            return True
        if low in {"0", "false", "no", "non", "off"}:
            return False
        return raw
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if origin is list:
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw


def _section_fields(section_cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def _apply(
    cfg: Config, data: dict[str, Any], *, file: str | None, text: str,
    env: bool = False,
) -> None:
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name not in {"source"}}
    for section, body in data.items():
        if section not in sections:
            raise ConfigError(
                f"section inconnue [{section}] (sections possibles : "
                f"{', '.join(sorted(sections))})",
                f"unknown section [{section}] (known: {', '.join(sorted(sections))})",
                file=file, key=f"[{section}]", line=_find_line(text, section, None),
            )
        if section == "policy":
            if not isinstance(body, dict):
                raise ConfigError("doit être une table", "must be a table",
                                  file=file, key="[policy]")
            cfg.policy = body
            continue
        if not isinstance(body, dict):
            raise ConfigError(
                "doit être une section [..]", "must be a [section]",
                file=file, key=section, line=_find_line(text, section, None),
            )
        target = getattr(cfg, section)
        fields = _section_fields(type(target))
        for key, value in body.items():
            label = f"[{section}] {key}"
            line = None if env else _find_line(text, section, key)
            if key not in fields:
                raise ConfigError(
                    f"clé inconnue (clés possibles : {', '.join(fields)})",
                    f"unknown key (known keys: {', '.join(fields)})",
                    file=file, key=label, line=line,
                )
            tp = fields[key]
            try:
                coerced = _coerce(tp, value)
            except ValueError:
                fr, en = _type_name(tp)
                raise ConfigError(
                    f"doit être {fr} (reçu : {value!r})", f"must be {en} (got: {value!r})",
                    file=file, key=label, line=line,
                ) from None
            setattr(target, key, coerced)


def _validate(cfg: Config, *, file: str | None, text: str) -> None:
    def fail(section: str, key: str, fr: str, en: str) -> None:
        raise ConfigError(fr, en, file=file, key=f"[{section}] {key}",
                          line=_find_line(text, section, key))

    for key in ("listen", "listen_tls"):
        for item in getattr(cfg.submission, key):
            try:
                parse_listen(item)
            except ValueError:
                fail("submission", key, f"adresse d'écoute invalide {item!r} (attendu "
                     "\"hôte:port\", par ex. \"127.0.0.1:2587\")",
                     f"invalid listen address {item!r} (expected \"host:port\", "
                     "e.g. \"127.0.0.1:2587\")")
    for item in (*cfg.submission.listen, *cfg.submission.listen_tls):
        if parse_listen(item)[1] == 0:
            fail("submission", "listen" if item in cfg.submission.listen else "listen_tls",
                 f"port 0 interdit dans {item!r}", f"port 0 not allowed in {item!r}")
    if cfg.server.hostname and not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})",
                                                cfg.server.hostname):
        fail("server", "hostname", "nom d'hôte invalide (lettres, chiffres, points, tirets)",
             "invalid host name (letters, digits, dots, dashes)")
    if cfg.limits.message_size > 1024 ** 3:
        fail("limits", "message_size", "au plus 1 Gio (1073741824)", "at most 1 GiB")
    if not cfg.submission.listen and not cfg.submission.listen_tls:
        fail("submission", "listen", "aucune adresse d'écoute", "no listen address")
    if cfg.upstream.port and not 0 < cfg.upstream.port < 65536:
        fail("upstream", "port", "doit être entre 1 et 65535", "must be between 1 and 65535")
    for server in cfg.dns.nameservers:
        try:
            ipaddress.ip_address(server.strip())
        except ValueError:
            fail("dns", "nameservers", f"{server!r} n'est pas une adresse IP (par ex. "
                 "\"127.0.0.1\" ; le port se règle à part : port = 5353)",
                 f"{server!r} is not an IP address (e.g. \"127.0.0.1\"; the port is set "
                 "on its own: port = 5353)")
    if cfg.dns.port and not 0 < cfg.dns.port < 65536:
        fail("dns", "port", "doit être entre 1 et 65535", "must be between 1 and 65535")
    for section, key in (("limits", "message_size"), ("limits", "recipients"),
                         ("limits", "command_timeout"), ("limits", "header_size"),
                         ("limits", "check_timeout"), ("upstream", "timeout"),
                         ("upstream", "data_timeout"),
                         ("dns", "timeout")):
        if getattr(getattr(cfg, section), key) <= 0:
            fail(section, key, "doit être strictement positif", "must be greater than 0")
    if not 0 <= cfg.upstream.idle_sessions <= 1000:
        fail("upstream", "idle_sessions", "doit être entre 0 et 1000",
             "must be between 0 and 1000")
    if cfg.upstream.idle_timeout <= 0:
        fail("upstream", "idle_timeout", "doit être strictement positif",
             "must be greater than 0")
    if cfg.auth.failure_delay < 0:
        fail("auth", "failure_delay", "ne peut pas être négatif", "cannot be negative")
    if cfg.auth.max_failures < 1:
        fail("auth", "max_failures", "doit valoir au moins 1", "must be at least 1")
    if cfg.auth_mode == "upstream" and not cfg.upstream.host:
        fail("auth", "mode", "le mode \"upstream\" demande [upstream] host",
             "mode \"upstream\" needs [upstream] host")
    if cfg.auth_mode == "upstream" and cfg.upstream.tls == "none":
        fail("upstream", "tls", "le mode d'authentification \"upstream\" transmet les mots de "
             "passe : TLS est obligatoire (\"starttls\" ou \"implicit\")",
             "auth mode \"upstream\" forwards passwords: TLS is required "
             "(\"starttls\" or \"implicit\")")
    if bool(cfg.tls.cert_file) != bool(cfg.tls.key_file):
        fail("tls", "cert_file" if cfg.tls.cert_file else "key_file",
             "cert_file et key_file vont ensemble", "cert_file and key_file go together")
    for key in ("cert_file", "key_file"):
        value = getattr(cfg.tls, key)
        if value and not Path(value).expanduser().is_file():
            fail("tls", key, f"fichier introuvable : {value}", f"file not found: {value}")
    if cfg.tls.cert_file and cfg.tls.key_file:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                Path(cfg.tls.cert_file).expanduser(), Path(cfg.tls.key_file).expanduser())
        except (ssl.SSLError, OSError) as exc:
            fail("tls", "cert_file", f"certificat ou clé illisible, ou qui ne vont pas ensemble "
                 f"({exc})", f"certificate or key unreadable or not matching ({exc})")
    if cfg.storage.data_dir:
        data = Path(cfg.storage.data_dir).expanduser()
        if data.exists() and not data.is_dir():
            fail("storage", "data_dir", f"{data} existe et n'est pas un dossier",
                 f"{data} exists and is not a folder")
    if cfg.upstream.ca_file and not Path(cfg.upstream.ca_file).expanduser().is_file():
        fail("upstream", "ca_file", f"fichier introuvable : {cfg.upstream.ca_file}",
             f"file not found: {cfg.upstream.ca_file}")
    if cfg.upstream.password_file:
        pw = Path(cfg.upstream.password_file).expanduser()
        if not pw.is_file() or not os.access(pw, os.R_OK):
            fail("upstream", "password_file", f"fichier introuvable ou illisible : {pw}",
                 f"file not found or unreadable: {pw}")
    if cfg.upstream.password and cfg.upstream.password_file:
        fail("upstream", "password", "password et password_file s'excluent",
             "password and password_file are mutually exclusive")
    for domain in cfg.patient_data.trusted_domains:
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
                            domain.strip().lower()):
            fail("patient_data", "trusted_domains",
                 f"{domain!r} n'est pas un nom de domaine (attendu : [\"cabinet.fr\", "
                 "\"chu-exemple.fr\"])",
                 f"{domain!r} is not a domain name (expected: [\"cabinet.fr\", \"chu.fr\"])")
    marker = cfg.patient_data.override_marker
    if marker and not re.fullmatch(r"\[[^\[\]]{6,60}\]", marker):
        fail("patient_data", "override_marker",
             "doit être un mot entre crochets d'au moins 6 caractères, par ex. "
             "\"[envoi-non-securise]\", pour ne jamais apparaître par hasard",
             "must be a word of at least 6 characters in brackets, e.g. "
             "\"[envoi-non-securise]\", so that it never appears by chance")
    for key in ("contacts_file", "webmail_file"):
        value = getattr(cfg.patient_data, key)
        if value and not Path(value).expanduser().is_file():
            fail("patient_data", key, f"fichier introuvable : {value}", f"file not found: {value}")
    if cfg.rules.dir and not Path(cfg.rules.dir).expanduser().is_dir():
        fail("rules", "dir", f"dossier introuvable : {cfg.rules.dir}",
             f"folder not found: {cfg.rules.dir}")
    _validate_inbound(cfg, fail)

    _validate_directory(cfg, fail)

    _validate_scan(cfg, fail)

    _validate_quarantine(cfg, fail)

    _validate_digest(cfg, fail)

    _validate_signal_spam(cfg, fail)

    _validate_web(cfg, fail)


def parse_listen(item: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError when malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\s\[\]]+):(\d{1,5})", item.strip())
    if not m:
        raise ValueError(item)
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port < 65536:
        raise ValueError(item)
    return host, port


def load(path: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None
         ) -> Config:
    """Build the config: defaults, then the file (if any), then VIGIE_<SECTION>_<KEY>."""
    environ = dict(os.environ if environ is None else environ)
    cfg = Config()
    text = ""
    file: str | None = None
    if path is None and environ.get("VIGIE_CONFIG"):
        path = environ["VIGIE_CONFIG"]
    if path is not None:
        file = str(path)
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise ConfigError("fichier introuvable", "file not found", file=file) from None
        except OSError as exc:
            raise ConfigError(f"illisible ({exc.strerror})", f"unreadable ({exc.strerror})",
                              file=file) from None
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")  # Windows Notepad's BOM
        except UnicodeDecodeError:
            raise ConfigError("le fichier doit être en UTF-8", "the file must be UTF-8",
                              file=file) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ConfigError(
                f"syntaxe TOML incorrecte ({exc})", f"TOML syntax error ({exc})",
                file=file, line=int(m.group(1)) if m else None,
            ) from None
        _apply(cfg, data, file=file, text=text)
        cfg.source = file
    env_data: dict[str, dict[str, Any]] = {}
    section_names = {f.name for f in dataclasses.fields(Config)} - {"policy", "source"}
    for name, value in environ.items():
        if not name.startswith("VIGIE_") or name == "VIGIE_CONFIG":
            continue
        rest = name[len("VIGIE_"):].lower()
        # section names may hold an underscore themselves (patient_data)
        section = next((s for s in sorted(section_names, key=len, reverse=True)
                        if rest.startswith(s + "_")), "")
        key = rest[len(section) + 1:] if section else ""
        if section not in section_names or not key:
            raise ConfigError(
                f"variable d'environnement inconnue {name} (forme : VIGIE_SECTION_CLÉ, sections "
                f": {', '.join(sorted(section_names))})",
                f"unknown environment variable {name} (form: VIGIE_SECTION_KEY, sections: "
                f"{', '.join(sorted(section_names))})", file="environnement/environment")
        fields = _section_fields(type(getattr(cfg, section)))
        tp = fields.get(key)
        env_data.setdefault(section, {})[key] = _env_value(tp, value) if tp else value
    if env_data:
        _apply(cfg, env_data, file="environnement/environment (VIGIE_*)", text="", env=True)
    _validate(cfg, file=file, text=text)
    if not cfg.storage.data_dir:
        xdg = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME") or Path.home())
                                                 / ".local" / "share")
        cfg.storage.data_dir = str(Path(xdg) / "vigie")
    return cfg
