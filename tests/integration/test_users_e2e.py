"""Users and access against a real node on loopback: logins, sessions, roles, deactivation.

ACC-1 (roles in the one method table), ACC-2 (training, acknowledgement), ACC-3 (a login is
needed and audited with the peer's IP), ACC-4 and ACC-5 (deactivation ends sessions at once;
attempts are refused, audited and reported), and the session's binding to its certificate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import pytest

from alpr.admin.v1 import admin_service_pb2_grpc, hotlists_pb2, peers_pb2
from alpr.admin.v1 import users_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as patrol_grpc
from gateway.tls import TLSConfig
from node.identity import PrincipalKind
from node.profile import Role
from tests.support.clock import ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation
from tests.support.users import PASSWORD, ready_user

TIMEOUT = 10
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Site:
    """A served node with a ready system administrator, `admin`."""

    node: RunningNode
    federation: Federation
    clients: dict[tuple[str, PrincipalKind], TLSConfig] = field(default_factory=dict)

    def stub(self, tls: TLSConfig) -> admin_service_pb2_grpc.AdminServiceStub:
        return admin_service_pb2_grpc.AdminServiceStub(self.node.channel(tls))

    def client(self, name: str, kind: PrincipalKind = PrincipalKind.USER) -> TLSConfig:
        """The certificate of `name`, the same one each time."""
        if (name, kind) not in self.clients:
            self.clients[name, kind] = self.federation.client(LAPD, kind, name)
        return self.clients[name, kind]

    def login(self, name: str, tls: TLSConfig | None = None) -> Metadata:
        tls = tls or self.client(name)
        request = pb.LoginRequest(user_name=name, password=PASSWORD)
        return bearer(self.stub(tls).Login(request, timeout=TIMEOUT).session_token)


def make_site(federation: Federation, tmp_path: Path, *, require_login: bool) -> Iterator[Site]:
    config = replace(make_node(federation, tmp_path / "lapd", LAPD), require_login=require_login)
    with serving(config, clock=ManualClock()) as node:
        ready_user(node.services.users, "admin", Role.SYSTEM_ADMINISTRATOR)
        yield Site(node, federation)


@pytest.fixture
def site(federation: Federation, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(federation, tmp_path, require_login=False)


@pytest.fixture
def strict(federation: Federation, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(federation, tmp_path, require_login=True)


def code_of(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.Call)
    return call.code()


class TestLogin:
    def test_acc3_managing_users_needs_a_login(self, site: Site) -> None:
        admin = site.stub(site.client("admin"))
        with pytest.raises(grpc.RpcError) as refused:
            admin.ListUsers(pb.ListUsersRequest(), timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.UNAUTHENTICATED
        users = admin.ListUsers(
            pb.ListUsersRequest(), metadata=site.login("admin"), timeout=TIMEOUT
        )
        assert [user.name for user in users.users] == ["admin"]

    def test_acc3_every_login_is_audited_with_user_agency_and_ip(self, site: Site) -> None:
        site.login("admin")
        admin = site.stub(site.client("admin"))
        with pytest.raises(grpc.RpcError):
            admin.Login(pb.LoginRequest(user_name="admin", password=PASSWORD[::-1]))
        events = [e for e in site.node.services.audit.events() if e.kind.startswith("login")]
        assert [(e.kind, e.agency, e.peer_ip) for e in events] == [
            ("login", LAPD, "127.0.0.1"),
            ("login.refused", LAPD, "127.0.0.1"),
        ]
        assert all(e.actor.endswith("/user/admin") for e in events)

    def test_fails_with_another_certificate(self, site: Site) -> None:
        first, second = site.client("admin"), site.federation.client(LAPD, name="admin")
        session = site.login("admin", first)
        with pytest.raises(grpc.RpcError) as refused:
            site.stub(second).ListUsers(pb.ListUsersRequest(), metadata=session, timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.UNAUTHENTICATED
        assert "another certificate" in str(refused.value.details())

    def test_fails_for_a_user_certificate_naming_someone_else(self, site: Site) -> None:
        with pytest.raises(grpc.RpcError) as refused:
            site.login("admin", site.client("mallory"))
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED


class TestUserAdmin:
    def test_acc2_new_user_has_no_access_until_trained_and_acknowledged(self, site: Site) -> None:
        admin = site.stub(site.client("admin"))
        session = site.login("admin")
        user = pb.User(name="jdoe", display_name="J. Doe", roles=[pb.ROLE_DATA_USER])
        created = admin.CreateUser(
            pb.CreateUserRequest(user=user, password=PASSWORD), metadata=session, timeout=TIMEOUT
        ).user
        assert list(created.blocks) == [
            pb.ACCESS_BLOCK_TRAINING_NOT_RECORDED,
            pb.ACCESS_BLOCK_POLICY_NOT_ACKNOWLEDGED,
        ]
        with pytest.raises(grpc.RpcError) as refused:
            site.login("jdoe")
        assert code_of(refused.value) is grpc.StatusCode.FAILED_PRECONDITION
        for step in (pb.USER_STEP_TRAINING, pb.USER_STEP_POLICY_ACKNOWLEDGEMENT):
            request = pb.RecordUserStepRequest(name="jdoe", step=step)
            answer = admin.RecordUserStep(request, metadata=session, timeout=TIMEOUT)
        assert list(answer.user.blocks) == []
        site.login("jdoe")

    def test_acc1_only_a_system_administrator_manages_users(self, site: Site) -> None:
        ready_user(site.node.services.users, "auditor", Role.AUDITOR)
        auditor = site.stub(site.client("auditor"))
        session = site.login("auditor")
        with pytest.raises(grpc.RpcError) as refused:
            auditor.ListUsers(pb.ListUsersRequest(), metadata=session, timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED
        report = pb.ListRefusedLoginsRequest()
        auditor.ListRefusedLogins(report, metadata=session, timeout=TIMEOUT)  # auditors review

    def test_acc4_acc5_deactivation_ends_sessions_and_attempts_are_reported(
        self, site: Site
    ) -> None:
        ready_user(site.node.services.users, "deputy", Role.SYSTEM_ADMINISTRATOR)
        admin, deputy = site.stub(site.client("admin")), site.stub(site.client("deputy"))
        session, deputy_session = site.login("admin"), site.login("deputy")
        deactivate = pb.DeactivateUserRequest(name="deputy", reason="left the agency")
        assert not admin.DeactivateUser(deactivate, metadata=session, timeout=TIMEOUT).user.active
        with pytest.raises(grpc.RpcError) as ended:
            deputy.ListUsers(pb.ListUsersRequest(), metadata=deputy_session, timeout=TIMEOUT)
        assert code_of(ended.value) is grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as refused:
            site.login("deputy")
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED
        report = admin.ListRefusedLogins(
            pb.ListRefusedLoginsRequest(), metadata=session, timeout=TIMEOUT
        ).refused_logins
        assert [(r.user_name, r.reason, r.peer_ip, r.method) for r in report] == [
            ("deputy", "deactivated", "127.0.0.1", "/alpr.admin.v1.AdminService/ListUsers"),
            ("deputy", "deactivated", "127.0.0.1", ""),
        ]
        kinds = [e.kind for e in site.node.services.audit.events()]
        assert kinds.count("user.deactivated") == 1

    def test_fails_for_an_unspecified_role(self, site: Site) -> None:
        user = pb.User(name="jdoe", display_name="J", roles=[pb.ROLE_UNSPECIFIED])
        with pytest.raises(grpc.RpcError) as refused:
            site.stub(site.client("admin")).CreateUser(
                pb.CreateUserRequest(user=user, password=PASSWORD),
                metadata=site.login("admin"),
                timeout=TIMEOUT,
            )
        assert code_of(refused.value) is grpc.StatusCode.INVALID_ARGUMENT


class TestRequireLogin:
    def test_acc3_certificate_alone_is_enough_by_default(self, site: Site) -> None:
        site.stub(site.client("operator")).ListPeers(peers_pb2.ListPeersRequest(), timeout=TIMEOUT)

    def test_acc3_admin_calls_need_a_session_when_required(self, strict: Site) -> None:
        admin = strict.stub(strict.client("admin"))
        with pytest.raises(grpc.RpcError) as refused:
            admin.ListPeers(peers_pb2.ListPeersRequest(), timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.UNAUTHENTICATED
        admin.ListPeers(
            peers_pb2.ListPeersRequest(), metadata=strict.login("admin"), timeout=TIMEOUT
        )

    def test_acc1_patrol_receives_hits_but_cannot_change_data(self, strict: Site) -> None:
        ready_user(strict.node.services.users, "officer", Role.PATROL)
        car = strict.client("car-1", PrincipalKind.DEVICE)
        session = strict.login("officer", car)  # an officer logs in on the car's terminal
        patrol = patrol_grpc.PatrolServiceStub(strict.node.channel(car))
        disposition = patrol_pb.RecordDispositionRequest(hit_id="no-such-hit")
        with pytest.raises(grpc.RpcError) as missing:
            patrol.RecordDisposition(disposition, metadata=session, timeout=TIMEOUT)
        assert code_of(missing.value) is not grpc.StatusCode.PERMISSION_DENIED  # allowed past
        officer = strict.stub(strict.client("officer"))
        own_session = strict.login("officer")
        request = hotlists_pb2.CreateHotlistRequest(name="mine")
        with pytest.raises(grpc.RpcError) as refused:
            officer.CreateHotlist(request, metadata=own_session, timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED
        assert json.loads(strict.node.services.audit.events()[-1].details)["user"] == "officer"
