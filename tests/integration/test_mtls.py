"""Mutually authenticated gRPC: who gets in, and who the node takes them to be (SEC-1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from alpr.admin.v1 import admin_service_pb2, admin_service_pb2_grpc
from alpr.common.v1 import identity_pb2
from alpr.federation.v1 import federation_service_pb2, federation_service_pb2_grpc
from node.identity import PrincipalKind
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, LASD, Federation

TIMEOUT = 10


@pytest.fixture
def lapd(federation: Federation, tmp_path: Path) -> Iterator[RunningNode]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD)) as node:
        yield node


def health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest()
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=TIMEOUT).status)


class TestHandshake:
    def test_sec1_succeeds_for_a_certificate_from_the_federation_ca(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        with lapd.channel(federation.client()) as channel:
            assert health(channel) == health_pb2.HealthCheckResponse.SERVING

    def test_sec1_fails_without_a_client_certificate(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        credentials = grpc.ssl_channel_credentials(root_certificates=federation.ca.certificate_pem)
        with (
            grpc.secure_channel(lapd.target, credentials) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    def test_sec1_fails_with_a_certificate_from_another_ca(
        self, lapd: RunningNode, federation: Federation, tmp_path: Path
    ) -> None:
        impostor = Federation.create(tmp_path / "impostor", federation.ca.federation).client()
        trusting_our_ca = type(impostor)(
            ca=federation.ca.certificate_pem, cert=impostor.cert, key=impostor.key
        )
        with lapd.channel(trusting_our_ca) as channel, pytest.raises(grpc.RpcError) as raised:
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    def test_sec1_fails_with_an_expired_certificate(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        expired = federation.client(now=datetime.now(UTC) - timedelta(days=400), days=30)
        with lapd.channel(expired) as channel, pytest.raises(grpc.RpcError) as raised:
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    def test_sec1_fails_when_the_server_is_not_from_our_ca(
        self, lapd: RunningNode, federation: Federation, tmp_path: Path
    ) -> None:
        other_ca = Federation.create(tmp_path / "other", federation.ca.federation)
        ours = federation.client()
        trusting_other = type(ours)(ca=other_ca.ca.certificate_pem, cert=ours.cert, key=ours.key)
        with lapd.channel(trusting_other) as channel, pytest.raises(grpc.RpcError) as raised:
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


class TestIdentity:
    @pytest.mark.parametrize(
        ("kind", "name", "expected_kind"),
        [
            (PrincipalKind.USER, "jdoe", identity_pb2.PRINCIPAL_KIND_USER),
            (PrincipalKind.DEVICE, "car-17", identity_pb2.PRINCIPAL_KIND_DEVICE),
        ],
    )
    def test_sec1_caller_is_the_certificate_san(
        self,
        lapd: RunningNode,
        federation: Federation,
        kind: PrincipalKind,
        name: str,
        expected_kind: int,
    ) -> None:
        with lapd.channel(federation.client(LAPD, kind, name)) as channel:
            me = admin_service_pb2_grpc.AdminServiceStub(channel).WhoAmI(
                admin_service_pb2.WhoAmIRequest(), timeout=TIMEOUT
            )
        assert me.principal.spiffe_id == f"spiffe://test.alpr/agency/{LAPD}/{kind.value}/{name}"
        assert (me.principal.ori, me.principal.kind, me.principal.name) == (
            LAPD,
            expected_kind,
            name,
        )

    def test_sec1_a_partner_node_reaches_federation_service_only(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        partner = federation.client(LASD, PrincipalKind.NODE, "")
        with lapd.channel(partner) as channel:
            info = federation_service_pb2_grpc.FederationServiceStub(channel).GetNodeInfo(
                federation_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT
            )
            assert (info.node.ori, info.node.federation) == (LAPD, "test.alpr")
            assert len(info.node.signing_public_key) == 32
            with pytest.raises(grpc.RpcError) as raised:
                admin_service_pb2_grpc.AdminServiceStub(channel).GetNodeInfo(
                    admin_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT
                )
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    @pytest.mark.parametrize(
        ("ori", "kind", "name"),
        [
            (LASD, PrincipalKind.USER, "operator"),  # another agency's user
            (LAPD, PrincipalKind.DEVICE, "car-17"),  # our patrol car is no operator
            (LAPD, PrincipalKind.NODE, ""),  # our own node certificate
        ],
    )
    def test_fails_admin_for_anyone_but_our_users(
        self, lapd: RunningNode, federation: Federation, ori: str, kind: PrincipalKind, name: str
    ) -> None:
        with (
            lapd.channel(federation.client(ori, kind, name)) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            admin_service_pb2_grpc.AdminServiceStub(channel).GetNodeInfo(
                admin_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT
            )
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    def test_fails_federation_service_for_our_own_users(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        with lapd.channel(federation.client()) as channel, pytest.raises(grpc.RpcError) as raised:
            federation_service_pb2_grpc.FederationServiceStub(channel).GetNodeInfo(
                federation_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT
            )
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED

    def test_fails_for_a_principal_of_another_federation(
        self, lapd: RunningNode, federation: Federation, tmp_path: Path
    ) -> None:
        # Same CA key material cannot be had by another federation, so mint a CA for
        # another trust domain and have our server trust it too: the identity check
        # must still refuse what the handshake let through.
        stranger_ca = Federation.create(tmp_path / "stranger", "stranger.alpr")
        stranger = stranger_ca.client()
        with (
            serving_trusting_both(lapd, federation, stranger_ca, tmp_path) as node,
            node.channel(
                type(stranger)(
                    ca=federation.ca.certificate_pem, cert=stranger.cert, key=stranger.key
                )
            ) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            health(channel)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def serving_trusting_both(
    lapd: RunningNode, ours: Federation, theirs: Federation, tmp_path: Path
) -> AbstractContextManager[RunningNode]:
    """Serve a second LAPD node whose trust store holds both CAs."""
    config = make_node(ours, tmp_path / "lapd-both", LAPD)
    config.tls_ca.write_bytes(ours.ca.certificate_pem + theirs.ca.certificate_pem)
    return serving(config)


class TestReflection:
    def test_succeeds_listing_the_node_services_to_a_federation_principal(
        self, lapd: RunningNode, federation: Federation
    ) -> None:
        with lapd.channel(federation.client()) as channel:
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert {
            "alpr.admin.v1.AdminService",
            "alpr.federation.v1.FederationService",
            "grpc.health.v1.Health",
        } <= set(services)
