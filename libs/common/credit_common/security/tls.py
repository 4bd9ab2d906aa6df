"""The certificate a self-contained stack makes for its broker's SASL_SSL listeners (compose): a
private CA and a broker certificate it signs, as PEM files Kafka reads directly
(`ssl.keystore.type=PEM`). Production supplies its own CA and certificates the same way (the
broker's PEM keystore, `KAFKA_SSL_CAFILE` for every client), and never uses these."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate: what clients trust (KAFKA_SSL_CAFILE)
    broker: Path  # the broker's private key (PKCS#8) and certificate chain, one PEM file


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "credit platform"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make(directory: Path, hosts: list[str], *, days: int = 825) -> TlsFiles:
    """A new CA and a broker certificate for `hosts` (DNS names or IP addresses) in `directory`;
    files that exist are kept (idempotent), so a restart keeps what clients trust."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "broker.pem")
    if files.ca.exists() and files.broker.exists():
        return files
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("credit platform local CA"))
        .issuer_name(_name("credit platform local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(files.broker, key_pem + cert.public_bytes(pem) + ca.public_bytes(pem), 0o600)
    _write(files.ca, ca.public_bytes(pem), 0o644)
    return files  # the CA's own key is not kept: nothing else is ever signed with it


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
