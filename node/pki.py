"""The federation's X.509 PKI: a CA, node certificates and client certificates.

Built on `cryptography`; nothing here hand-rolls ASN.1. Every certificate names
exactly one principal in a SPIFFE URI SAN (see `node.identity`). Keys are ECDSA
P-256, which every TLS stack gRPC links with accepts. Private keys are written
with mode 0600 and never anywhere else.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.errors import NodeError, ValidationError
from node.identity import SPIFFE_SCHEME, Principal, PrincipalKind, validate_federation

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"


class PkiError(NodeError):
    """A certificate or key file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate (PEM) and the key (PEM, mode 0600)."""
        write_private_key(key_path, self.private_key)
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class CertificateAuthority:
    """The federation CA that every node and client certificate chains to."""

    federation: str
    issued: IssuedCertificate

    @classmethod
    def create(cls, federation: str, *, now: datetime, days: int = 3650) -> CertificateAuthority:
        """Make a new self-signed CA for `federation`, valid from `now` for `days`.

        Raises:
            ValidationError: The federation name is not a valid trust domain.
        """
        validate_federation(federation)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{federation} federation CA"),
            ]
        )
        certificate = (
            _builder(name, name, key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(SPIFFE_SCHEME + federation)]
                ),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(federation, IssuedCertificate(certificate, key))

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Read a CA written by `save`.

        Raises:
            PkiError: The files are missing or unreadable, or the certificate names no federation.
        """
        certificate = load_certificate(directory / CA_CERT_FILE)
        key = load_private_key(directory / CA_KEY_FILE)
        uris = _uri_sans(certificate)
        if len(uris) != 1 or not uris[0].startswith(SPIFFE_SCHEME):
            raise PkiError(f"{directory / CA_CERT_FILE}: not a federation CA (no spiffe:// SAN)")
        return cls(uris[0][len(SPIFFE_SCHEME) :], IssuedCertificate(certificate, key))

    def save(self, directory: Path) -> None:
        """Write ca.crt and ca.key (mode 0600) into `directory`."""
        self.issued.write(directory / CA_CERT_FILE, directory / CA_KEY_FILE)

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate, PEM, as clients and servers load it as their trust root."""
        return self.issued.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        principal: Principal,
        *,
        now: datetime,
        days: int = 365,
        hosts: tuple[str, ...] = (),
    ) -> IssuedCertificate:
        """Issue a certificate naming `principal`, valid from `now` for `days`.

        A node's certificate serves TLS for `hosts` (DNS names or IP addresses) and
        also authenticates the node as a client when it calls partners; a user's or
        device's certificate is for client authentication only.

        Raises:
            ValidationError: The principal belongs to another federation, or a host is empty.
        """
        if principal.federation != self.federation:
            raise ValidationError(
                "federation",
                f"this CA issues for {self.federation!r}, not {principal.federation!r}",
            )
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, principal.ori),
                x509.NameAttribute(NameOID.COMMON_NAME, principal.name or principal.ori),
            ]
        )
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal.spiffe_id)]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if principal.kind is PrincipalKind.NODE:
            names += [_host_name(host) for host in hosts]
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        certificate = (
            _builder(subject, self.issued.certificate.subject, key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .sign(self.issued.private_key, hashes.SHA256())
        )
        return IssuedCertificate(certificate, key)


def principal_of(certificate: x509.Certificate) -> Principal:
    """The principal a certificate names in its single SPIFFE URI SAN.

    Raises:
        ValidationError: The certificate has no SPIFFE URI SAN, more than one, or a malformed one.
    """
    spiffe = [uri for uri in _uri_sans(certificate) if uri.startswith(SPIFFE_SCHEME)]
    if len(spiffe) != 1:
        raise ValidationError(
            "certificate", f"expected exactly one spiffe:// URI SAN, found {len(spiffe)}"
        )
    return Principal.from_spiffe_id(spiffe[0])


def load_certificate(path: Path) -> x509.Certificate:
    """Read a PEM certificate.

    Raises:
        PkiError: The file is missing or is not a PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        raise PkiError(f"{path}: cannot read a PEM certificate ({_reason(error)})") from error


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read a PEM ECDSA private key.

    Raises:
        PkiError: The file is missing, is not a PEM key, or is not an ECDSA key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise PkiError(f"{path}: cannot read a PEM private key ({_reason(error)})") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an ECDSA private key")
    return key


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write `key` as unencrypted PKCS#8 PEM, readable by its owner only (mode 0600)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret(path, pem)


def write_secret(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600, which it has from the moment it exists.

    A directory made for it is private too (mode 0700).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    days: int,
) -> x509.CertificateBuilder:
    if days <= 0:
        raise ValidationError("days", f"must be positive, got {days}")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _host_name(host: str) -> x509.GeneralName:
    if not host:
        raise ValidationError("host", "must not be empty")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _uri_sans(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return extension.value.get_values_for_type(x509.UniformResourceIdentifier)


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)
