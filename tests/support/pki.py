"""A federation's PKI minted into a test's tmp_path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from federation.peers import Peer
from gateway.tls import TLSConfig
from node.identity import Principal, PrincipalKind
from node.pki import CertificateAuthority

FEDERATION = "test.alpr"
LAPD = "CA0194200"
LASD = "CA0190000"
SPD = "CA0193300"  # South Pasadena PD


@dataclass
class Federation:
    """A CA and the certificates a test asks it for."""

    ca: CertificateAuthority
    directory: Path

    @classmethod
    def create(cls, directory: Path, federation: str = FEDERATION) -> Federation:
        """A new CA whose files are under `directory`/ca."""
        ca = CertificateAuthority.create(federation, now=datetime.now(UTC))
        ca.save(directory / "ca")
        return cls(ca, directory)

    def client(
        self,
        ori: str = LAPD,
        kind: PrincipalKind = PrincipalKind.USER,
        name: str = "operator",
        *,
        now: datetime | None = None,
        days: int = 365,
    ) -> TLSConfig:
        """Client credentials for a principal, trusting this CA."""
        cert, key = self.client_files(ori, kind, name, now=now, days=days)
        return TLSConfig(ca=self.ca.certificate_pem, cert=cert.read_bytes(), key=key.read_bytes())

    def client_files(
        self,
        ori: str = LAPD,
        kind: PrincipalKind = PrincipalKind.USER,
        name: str = "operator",
        *,
        now: datetime | None = None,
        days: int = 365,
    ) -> tuple[Path, Path]:
        """Issue a principal's certificate and key into files; their paths."""
        principal = Principal(self.ca.federation, ori, kind, name)
        issued = self.ca.issue(
            principal, now=now or datetime.now(UTC), days=days, hosts=("localhost", "127.0.0.1")
        )
        stem = self.directory / "clients" / f"{ori}-{kind.value}-{name or 'node'}"
        issued.write(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        return stem.with_suffix(".crt"), stem.with_suffix(".key")

    @property
    def ca_file(self) -> Path:
        """The CA certificate's path."""
        return self.directory / "ca" / "ca.crt"


def partner_peer(ori: str, signing_public_key: bytes = bytes(32)) -> Peer:
    """A partner's peer record, as a node registers it, for tests that reach no node."""
    return Peer(
        ori=ori,
        name=ori,
        endpoint="localhost:1",
        spiffe_id=f"spiffe://{FEDERATION}/agency/{ori}",
        signing_public_key=signing_public_key,
    )
