"""The federation PKI: what certificates say, and where keys go."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from node.errors import ValidationError
from node.identity import Principal, PrincipalKind
from node.pki import CertificateAuthority, PkiError, principal_of

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test.alpr", now=NOW)


class TestIssue:
    def test_succeeds_for_a_node_with_its_spiffe_san_and_hosts(
        self, ca: CertificateAuthority
    ) -> None:
        node = Principal("test.alpr", "CA0194200", PrincipalKind.NODE)
        cert = ca.issue(node, now=NOW, hosts=("node.lapd.example", "10.1.2.3")).certificate
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
            "spiffe://test.alpr/agency/CA0194200"
        ]
        assert san.get_values_for_type(x509.DNSName) == ["node.lapd.example"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        cert.verify_directly_issued_by(ca.issued.certificate)
        assert principal_of(cert) == node

    def test_succeeds_for_a_device_as_client_only(self, ca: CertificateAuthority) -> None:
        device = Principal("test.alpr", "CA0194200", PrincipalKind.DEVICE, "car-17")
        cert = ca.issue(device, now=NOW, hosts=("ignored",)).certificate
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert principal_of(cert) == device

    def test_fails_for_another_federation(self, ca: CertificateAuthority) -> None:
        with pytest.raises(ValidationError, match=r"issues for 'test\.alpr'"):
            ca.issue(Principal("other.alpr", "CA0194200", PrincipalKind.NODE), now=NOW)

    def test_fails_when_days_not_positive(self, ca: CertificateAuthority) -> None:
        with pytest.raises(ValidationError, match="days"):
            ca.issue(Principal("test.alpr", "CA0194200", PrincipalKind.NODE), now=NOW, days=0)


class TestFiles:
    def test_sec2_private_keys_are_written_mode_0600(
        self, tmp_path: Path, ca: CertificateAuthority
    ) -> None:
        ca.save(tmp_path / "ca")
        issued = ca.issue(Principal("test.alpr", "CA0194200", PrincipalKind.USER, "jdoe"), now=NOW)
        issued.write(tmp_path / "out" / "jdoe.crt", tmp_path / "out" / "jdoe.key")
        for key in (tmp_path / "ca" / "ca.key", tmp_path / "out" / "jdoe.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700

    def test_succeeds_loading_a_saved_ca(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        ca.save(tmp_path)
        loaded = CertificateAuthority.load(tmp_path)
        assert loaded.federation == "test.alpr"
        assert loaded.certificate_pem == ca.certificate_pem

    def test_fails_loading_a_missing_ca(self, tmp_path: Path) -> None:
        with pytest.raises(PkiError, match=r"ca\.crt: cannot read"):
            CertificateAuthority.load(tmp_path)
