"""TLS material for the server and for clients, as bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from cryptography import x509

from gateway.errors import ConfigError
from node.errors import NodeError
from node.identity import Principal
from node.pki import load_certificate, load_private_key, principal_of


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """Certificates and key for one end of a mutually authenticated connection.

    Attributes:
        ca: PEM of the federation CA: the only root a peer's certificate may chain to.
        cert: PEM of this end's certificate.
        key: PEM of this end's private key.
    """

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, *, ca: Path, cert: Path, key: Path) -> TLSConfig:
        """Read the three PEM files, checking each parses.

        Raises:
            ConfigError: A file is missing or unreadable or holds no PEM of its kind.
        """
        try:
            load_certificate(ca)
            load_certificate(cert)
            load_private_key(key)
        except NodeError as error:
            raise ConfigError(error.diagnostics()) from error
        return cls(ca=ca.read_bytes(), cert=cert.read_bytes(), key=key.read_bytes())

    def principal(self, *, reference_time: datetime) -> Principal:
        """The principal this end's certificate names, once it is shown valid.

        Raises:
            ConfigError: The certificate is not issued by the CA, is not valid at
                `reference_time`, or names no principal.
        """
        ca = x509.load_pem_x509_certificate(self.ca)
        cert = x509.load_pem_x509_certificate(self.cert)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError) as error:
            raise ConfigError("the certificate was not issued by the configured CA") from error
        if not cert.not_valid_before_utc <= reference_time <= cert.not_valid_after_utc:
            raise ConfigError(
                f"the certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now; have it reissued"
            )
        try:
            return principal_of(cert)
        except NodeError as error:
            raise ConfigError(f"the certificate: {error.diagnostics()}") from error

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials that require and verify a client certificate from the CA (SEC-1)."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials that present this certificate and trust only the CA."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )
