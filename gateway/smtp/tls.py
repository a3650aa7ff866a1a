"""TLS material for the listeners: configured files, or a self-signed pair made once."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import Config, parse_listen
from gateway.quarantine.folder import durable_write_file, ensure_private_dir

log = logging.getLogger("vigie.tls")


def make_self_signed(hostname: str, cert_path: Path, key_path: Path,
                     extra_ips: tuple[str, ...] = ()) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "vigie"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vigie (auto-signé)")])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                    x509.IPAddress(ipaddress.ip_address("::1"))]
    for ip in extra_ips:
        addr = ipaddress.ip_address(ip)
        if not addr.is_loopback and not addr.is_unspecified:
            sans.append(x509.IPAddress(addr))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    durable_write_file(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), mode=0o600)
    durable_write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def certificate_paths(cfg: Config) -> tuple[Path, Path, bool]:
    """(cert, key, created_now): the configured pair, or the self-signed one."""
    if cfg.tls.cert_file:
        return Path(cfg.tls.cert_file).expanduser(), Path(cfg.tls.key_file).expanduser(), False
    folder = cfg.data_dir / "tls"
    cert, key = folder / "selfsigned.crt", folder / "selfsigned.key"
    if cert.is_file() and key.is_file():
        return cert, key, False
    ensure_private_dir(cfg.data_dir)
    ensure_private_dir(folder)
    ips = []
    for item in (*cfg.submission.listen, *cfg.submission.listen_tls):
        host = parse_listen(item)[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        ips.append(host)
    make_self_signed(cfg.hostname, cert, key, tuple(dict.fromkeys(ips)))
    return cert, key, True


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
