"""The console's settings check: is the relay reachable (TCP connect, EHLO, STARTTLS),
does the DNS resolver answer, when does the TLS certificate expire, when is the digest
sent and to whom, is the quarantine key there. Each line French then English."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosmtplib
from cryptography import x509

from gateway.config import Config
from gateway.dns import DNSTempError, NXDomain, Resolver
from gateway.quarantine.crypto import (
    QuarantineKeyError,
    Sealer,
    key_path,
    key_source,
    load_key,
)
from gateway.quarantine.digest import public_url
from gateway.smtp.relay import client_tls_context

Status = Literal["ok", "warn", "fail"]
UPSTREAM_TIMEOUT = 5.0
DNS_PROBE = "mssante.fr"  # a name every practice's resolver must know


@dataclass(frozen=True)
class Check:
    key: str  # i18n key of the line's title
    status: Status
    fr: str
    en: str


async def check_upstream(cfg: Config, wait: float = UPSTREAM_TIMEOUT) -> Check:
    up = cfg.upstream
    if not up.host:
        return Check("set.upstream", "ok",
                     f"pas de relais : remise dans la boîte locale {cfg.data_dir / 'maildir'}",
                     f"no relay: delivery into the local Maildir {cfg.data_dir / 'maildir'}")
    where = f"{up.host}:{cfg.upstream_port}"
    ctx = client_tls_context(up.ca_file, up.verify) if up.tls != "none" else None
    smtp = aiosmtplib.SMTP(hostname=up.host, port=cfg.upstream_port, timeout=wait,
                           use_tls=up.tls == "implicit", start_tls=False, tls_context=ctx,
                           local_hostname=up.helo or cfg.hostname)
    step = "connexion / connect"
    try:
        await asyncio.wait_for(smtp.connect(), wait)
        step = "EHLO"
        code, _ = await asyncio.wait_for(smtp.ehlo(), wait)
        if code != 250:
            return Check("set.upstream", "fail", f"{where} refuse EHLO ({code})",
                         f"{where} refuses EHLO ({code})")
        if up.tls == "starttls":
            step = "STARTTLS"
            if not smtp.supports_extension("starttls"):
                return Check("set.upstream", "fail",
                             f"{where} répond mais ne propose pas STARTTLS",
                             f"{where} answers but does not offer STARTTLS")
            await asyncio.wait_for(smtp.starttls(tls_context=ctx), wait)
        return Check("set.upstream", "ok", f"{where} répond (EHLO, {up.tls})",
                     f"{where} answers (EHLO, {up.tls})")
    except ssl.SSLError as exc:
        return Check("set.upstream", "fail",
                     f"{where} : échec TLS ({exc.reason or type(exc).__name__}) — vérifiez "
                     "[upstream] tls, ca_file, verify",
                     f"{where}: TLS failure ({exc.reason or type(exc).__name__}) — check "
                     "[upstream] tls, ca_file, verify")
    except (OSError, TimeoutError, aiosmtplib.SMTPException) as exc:
        return Check("set.upstream", "fail",
                     f"{where} injoignable à l'étape {step} ({type(exc).__name__}) : le "
                     "courrier sortant attend (refus temporaires)",
                     f"{where} unreachable at step {step} ({type(exc).__name__}): outbound "
                     "mail waits (temporary refusals)")
    finally:
        smtp.close()


async def check_dns(resolver: Resolver, name: str = DNS_PROBE,
                    wait: float = UPSTREAM_TIMEOUT) -> Check:
    try:
        records = await asyncio.wait_for(resolver.mx(name), wait)
    except NXDomain:
        return Check("set.dns", "warn", f"le résolveur répond, mais dit que {name} n'existe pas",
                     f"the resolver answers, but says {name} does not exist")
    except (DNSTempError, TimeoutError, OSError) as exc:
        return Check("set.dns", "fail",
                     f"le résolveur ne répond pas ({type(exc).__name__}) : les vérifications "
                     "entrantes donnent des refus temporaires",
                     f"the resolver does not answer ({type(exc).__name__}): inbound checks "
                     "give temporary refusals")
    return Check("set.dns", "ok", f"le résolveur répond ({name} : {len(records)} MX)",
                 f"the resolver answers ({name}: {len(records)} MX)")


def check_certificate(path: Path | None, now: datetime.datetime | None = None) -> Check:
    if path is None:
        return Check("set.tls", "warn", "certificat pas encore chargé", "certificate not loaded")
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("set.tls", "fail", f"{path} illisible ({type(exc).__name__})",
                     f"{path} unreadable ({type(exc).__name__})")
    now = now or datetime.datetime.now(datetime.UTC)
    left = (cert.not_valid_after_utc - now).days
    self_signed = cert.issuer == cert.subject
    note_fr = " (auto-signé : les logiciels de messagerie demandent une exception)" \
        if self_signed else ""
    note_en = " (self-signed: mail programs ask for an exception)" if self_signed else ""
    date = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    if left < 0:
        return Check("set.tls", "fail", f"expiré depuis le {date}", f"expired on {date}")
    status: Status = "warn" if left < 21 or self_signed else "ok"
    return Check("set.tls", status, f"valable jusqu'au {date} ({left} jours){note_fr}",
                 f"valid until {date} ({left} days){note_en}")


def check_digest(cfg: Config) -> Check:
    digest = cfg.digest
    if not digest.recipients:
        return Check("set.digest", "warn",
                     "aucun destinataire ([digest] recipients) : pas de récapitulatif envoyé",
                     "no recipients ([digest] recipients): no digest is sent")
    who = ", ".join(digest.recipients)
    return Check("set.digest", "ok",
                 f"chaque jour à {digest.time} ({digest.timezone}) pour {who}",
                 f"every day at {digest.time} ({digest.timezone}) to {who}")


def _key_opens_held_mail(cfg: Config) -> Check | None:
    """A problem when the key is invalid or does not open a held message (a replaced
    or mistyped key would otherwise be called correct); None when it does."""
    try:
        key = load_key(cfg, create=False)
    except QuarantineKeyError as exc:
        return Check("set.key", "fail", exc.fr, exc.en)
    blobs = cfg.data_dir / "quarantine" / "blobs"
    try:
        sample = next((p for p in blobs.iterdir() if not p.name.startswith(".")), None)
        blob = sample.read_bytes() if sample is not None else None
    except OSError:
        return None
    if sample is None or blob is None:
        return None
    try:
        Sealer(key).open(blob, sample.name.encode("ascii", "replace"))
    except QuarantineKeyError:
        return Check("set.key", "fail",
                     f"{key_source(cfg)} n'ouvre pas les messages retenus : ce n'est pas la "
                     "clé qui les a chiffrés ; remettez la bonne clé (sauvegarde)",
                     f"{key_source(cfg)} does not open the held messages: it is not the key "
                     "they were encrypted with; put the right key back (backup)")
    return None


def check_key(cfg: Config) -> Check:
    if cfg.quarantine.key:
        return _key_opens_held_mail(cfg) or Check(
            "set.key", "ok", "clé donnée par la configuration / l'environnement",
            "key given by the configuration / environment")
    path = key_path(cfg)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return Check("set.key", "fail", f"{path} absente : les messages retenus ne peuvent "
                     "pas être relus", f"{path} missing: held messages cannot be read")
    except OSError as exc:
        return Check("set.key", "fail", f"{path} illisible ({exc.strerror})",
                     f"{path} unreadable ({exc.strerror})")
    if mode & 0o077:
        return Check("set.key", "fail", f"{path} lisible par d'autres (droits {mode:o}, "
                     "attendu 600)", f"{path} readable by others (mode {mode:o}, expected 600)")
    problem = _key_opens_held_mail(cfg)
    if problem is not None:
        return problem
    return Check("set.key", "ok", f"{path} présente (droits 600) — gardez-en une copie à "
                 "part des données", f"{path} present (mode 600) — keep a copy apart from "
                 "the data")


def check_public_url(cfg: Config) -> Check:
    url = public_url(cfg)
    if not url:
        return Check("set.console", "warn",
                     "[web] public_url vide : le récapitulatif n'a pas de boutons d'action "
                     "(agir depuis la console)",
                     "[web] public_url empty: the digest has no action buttons (act from the "
                     "console)")
    if not url.startswith("https://"):
        return Check("set.console", "warn", f"{url} : sans HTTPS (liens du récapitulatif en "
                     "clair)", f"{url}: without HTTPS (digest links in clear)")
    return Check("set.console", "ok", f"liens du récapitulatif : {url}/a/…",
                 f"digest links: {url}/a/…")


async def run_checks(cfg: Config, resolver: Resolver, cert: Path | None) -> list[Check]:
    upstream, dns = await asyncio.gather(check_upstream(cfg), check_dns(resolver))
    key = await asyncio.to_thread(check_key, cfg)  # reads and opens one held message
    return [upstream, dns, check_certificate(cert), check_digest(cfg), key,
            check_public_url(cfg)]
