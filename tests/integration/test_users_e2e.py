"""Users and access against a real node on loopback: logins, sessions, roles, deactivation.

ACC-1 (roles in the one method table), ACC-2 (training, acknowledgement), ACC-3 (a login is
needed and audited with the peer's IP; password changes and resets, audited), ACC-4 and
ACC-5 (deactivation ends sessions, and the streams they hold open, at once; attempts are
refused, audited and reported), and the session's binding to its certificate.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from alpr.admin.v1 import admin_service_pb2 as admin_pb
from alpr.admin.v1 import admin_service_pb2_grpc, hotlists_pb2, peers_pb2
from alpr.admin.v1 import users_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2 as patrol_pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as patrol_grpc
from gateway.config import NodeConfig
from gateway.tls import TLSConfig
from node.identity import PrincipalKind
from node.profile import Role
from node.store import create_engine
from node.users import UserDirectory
from tests.support.clock import ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation
from tests.support.streams import Stream
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
    clock: ManualClock
    clients: dict[tuple[str, PrincipalKind], TLSConfig] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)

    def stub(self, tls: TLSConfig) -> admin_service_pb2_grpc.AdminServiceStub:
        return admin_service_pb2_grpc.AdminServiceStub(self.node.channel(tls))

    def client(self, name: str, kind: PrincipalKind = PrincipalKind.USER) -> TLSConfig:
        """The certificate of `name`, the same one each time."""
        if (name, kind) not in self.clients:
            self.clients[name, kind] = self.federation.client(LAPD, kind, name)
        return self.clients[name, kind]

    def login(self, name: str, tls: TLSConfig | None = None, password: str = PASSWORD) -> Metadata:
        tls = tls or self.client(name)
        request = pb.LoginRequest(user_name=name, password=password)
        return bearer(self.stub(tls).Login(request, timeout=TIMEOUT).session_token)

    def hit_stream(self, name: str) -> Stream:
        """`name`'s hit stream, opened on a car's terminal with their session, once it is open."""
        car = self.client(f"car-of-{name}", PrincipalKind.DEVICE)
        patrol = patrol_grpc.PatrolServiceStub(self.node.channel(car))
        request = patrol_pb.StreamHitsRequest()
        stream = Stream(patrol.StreamHits(request, metadata=self.login(name, car), timeout=60))
        self.streams.append(stream)
        stream.next(skip_heartbeats=False)  # a heartbeat: the call is open, under watch
        return stream

    def sweep(self) -> None:
        """Re-check every open call against the store now, as the node does every poll."""
        services = self.node.services
        self.node.run(services.watch.sweep(services.users.get))

    def cuts(self) -> list[tuple[str, str, str]]:
        """The audited cuts of open calls: user, reason, method."""
        events = [e for e in self.node.services.audit.events() if e.kind == "session.cut"]
        details = [json.loads(e.details) for e in events]
        return [(d["user"], d["reason"], d["method"]) for d in details]


def make_site(
    federation: Federation,
    tmp_path: Path,
    *,
    require_login: bool,
    store_url: str = "",
    worker_threads: int = NodeConfig.worker_threads,
) -> Iterator[Site]:
    config = replace(
        make_node(federation, tmp_path / "lapd", LAPD, store_url=store_url),
        require_login=require_login,
        worker_threads=worker_threads,
        heartbeat_seconds=0.2,
        poll_seconds=3600,  # no sweep of its own during a test: tests sweep when they mean to
    )
    clock = ManualClock()
    with serving(config, clock=clock) as node:
        ready_user(node.services.users, "admin", Role.SYSTEM_ADMINISTRATOR)
        site = Site(node, federation, clock)
        try:
            yield site
        finally:
            for stream in site.streams:
                stream.close()


@pytest.fixture
def site(federation: Federation, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(federation, tmp_path, require_login=False)


@pytest.fixture
def strict(federation: Federation, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(federation, tmp_path, require_login=True)


@pytest.fixture
def patrolled(federation: Federation, tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A node needing logins, on each database, with the patrol officer `officer`."""
    for site in make_site(federation, tmp_path, require_login=True, store_url=database_url):
        ready_user(site.node.services.users, "officer", Role.PATROL)
        yield site


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


STREAM_HITS = "/alpr.patrol.v1.PatrolService/StreamHits"


class TestOpenStreams:
    def test_acc5_deactivation_ends_open_streams_at_once_and_is_audited(
        self, patrolled: Site
    ) -> None:
        stream, other = patrolled.hit_stream("officer"), patrolled.hit_stream("officer")
        admin = patrolled.stub(patrolled.client("admin"))
        deactivate = pb.DeactivateUserRequest(name="officer", reason="left the agency")
        admin.DeactivateUser(deactivate, metadata=patrolled.login("admin"), timeout=TIMEOUT)
        ended = (grpc.StatusCode.PERMISSION_DENIED, "the account is deactivated")
        assert stream.ending() == ended  # the node sweeps once an hour here: this is at once
        assert other.ending() == ended
        assert patrolled.cuts() == [("officer", "deactivated", STREAM_HITS)] * 2

    def test_acc5_another_users_stream_stays_open(self, patrolled: Site) -> None:
        ready_user(patrolled.node.services.users, "partner", Role.PATROL)
        stream = patrolled.hit_stream("partner")
        patrolled.node.services.users.deactivate("officer", "left the agency")
        patrolled.sweep()
        assert stream.next(skip_heartbeats=False).HasField("heartbeat")
        assert patrolled.cuts() == []

    def test_acc5_deactivation_by_another_process_ends_streams_at_the_next_sweep(
        self, patrolled: Site, database_url: str
    ) -> None:
        stream = patrolled.hit_stream("officer")
        engine = create_engine(database_url)  # the store, as another process serving it
        try:
            UserDirectory(engine, clock=patrolled.clock).deactivate("officer", "left")
        finally:
            engine.dispose()
        assert stream.next(skip_heartbeats=False).HasField("heartbeat")  # not told: still open
        patrolled.sweep()
        assert stream.ending() == (grpc.StatusCode.PERMISSION_DENIED, "the account is deactivated")
        assert patrolled.cuts() == [("officer", "deactivated", STREAM_HITS)]

    def test_acc3_a_stream_ends_when_its_session_expires(self, patrolled: Site) -> None:
        stream = patrolled.hit_stream("officer")
        patrolled.sweep()
        assert stream.next(skip_heartbeats=False).HasField("heartbeat")
        patrolled.clock.advance(timedelta(hours=8))  # the session's lifetime
        patrolled.sweep()
        assert stream.ending() == (
            grpc.StatusCode.UNAUTHENTICATED, "the session has expired; log in again",
        )  # fmt: skip
        assert patrolled.cuts() == [("officer", "session_expired", STREAM_HITS)]


@pytest.mark.parametrize("waiting", ["its session check", "its own work"])
def test_an_admin_call_waiting_on_the_database_holds_up_no_patrol_stream(
    patrolled: Site, waiting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session checks and admin calls run in worker threads, never on the event loop."""
    stream = patrolled.hit_stream("officer")
    services = patrolled.node.services
    owner, name = (
        (services.sessions, "authenticate") if "session" in waiting else (services.peers, "list")
    )
    slowed, entered, go_on = getattr(owner, name), threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()  # as a database slow to answer, or a write lock held elsewhere
        go_on.wait(3 * TIMEOUT)
        return slowed(*args, **kwargs)

    admin = patrolled.stub(patrolled.client("admin"))
    session = patrolled.login("admin")
    monkeypatch.setattr(owner, name, slow)
    with ThreadPoolExecutor(max_workers=1) as pool:
        listing = pool.submit(
            admin.ListPeers, peers_pb2.ListPeersRequest(), metadata=session, timeout=3 * TIMEOUT
        )
        try:
            assert entered.wait(TIMEOUT)
            stream.drain()
            # Two heartbeats: at most one was on its way before the call began to wait.
            assert [stream.next(skip_heartbeats=False).HasField("heartbeat") for _ in "12"] == [
                True,
                True,
            ]
        finally:
            go_on.set()
        assert list(listing.result(TIMEOUT).peers) == []


@pytest.fixture
def two_workers(federation: Federation, tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A node with `[server] worker_threads = 2`, on each database."""
    yield from make_site(
        federation, tmp_path, require_login=False, store_url=database_url, worker_threads=2
    )


def test_calls_work_on_as_many_threads_as_configured_and_wait_for_one_when_all_are_busy(
    two_workers: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[server] worker_threads` sizes the threads that do the node's work, and its pool."""
    services = two_workers.node.services
    listed, entered, go_on = services.peers.list, threading.Semaphore(0), threading.Event()
    workers: list[str] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        workers.append(threading.current_thread().name)
        entered.release()
        go_on.wait(3 * TIMEOUT)  # as a database slow to answer
        return listed(*args, **kwargs)

    monkeypatch.setattr(services.peers, "list", slow)
    admin = two_workers.stub(two_workers.client("admin"))
    request = peers_pb2.ListPeersRequest()
    with ThreadPoolExecutor(max_workers=3) as pool:
        calls = [pool.submit(admin.ListPeers, request, timeout=3 * TIMEOUT) for _ in "123"]
        try:
            assert entered.acquire(timeout=TIMEOUT)
            assert entered.acquire(timeout=TIMEOUT)  # two calls at once: a thread each
        finally:
            go_on.set()
        # The third waited for a thread to come free, and was answered.
        assert [list(call.result(TIMEOUT).peers) for call in calls] == [[], [], []]
    assert len(workers) == 3
    assert set(workers) <= {"node-worker_0", "node-worker_1"}
    assert two_workers.node.engine.pool.size() == 2  # type: ignore[attr-defined]


def change_password(site: Site, name: str, password: str, new: str) -> pb.User:
    request = pb.ChangePasswordRequest(user_name=name, password=password, new_password=new)
    return site.stub(site.client(name)).ChangePassword(request, timeout=TIMEOUT).user


NEW_PASSWORD = "a much better passphrase"  # noqa: S105 (a test password)


class TestPasswords:
    def test_acc3_change_ends_sessions_and_streams_and_is_audited(self, patrolled: Site) -> None:
        stream, session = patrolled.hit_stream("officer"), patrolled.login("officer")
        change_password(patrolled, "officer", PASSWORD, NEW_PASSWORD)
        assert stream.ending() == (
            grpc.StatusCode.UNAUTHENTICATED, "the session was ended; log in again",
        )  # fmt: skip
        officer = patrolled.stub(patrolled.client("officer"))
        with pytest.raises(grpc.RpcError) as ended:
            officer.GetNodeInfo(admin_pb.GetNodeInfoRequest(), metadata=session, timeout=TIMEOUT)
        assert code_of(ended.value) is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            patrolled.login("officer")
        patrolled.login("officer", password=NEW_PASSWORD)
        kinds = [e.kind for e in patrolled.node.services.audit.events()]
        assert kinds.count("user.password_changed") == 1
        assert patrolled.cuts() == [("officer", "session_ended", STREAM_HITS)]

    @pytest.mark.parametrize(
        ("password", "new", "code"),
        [
            ("a wrong password", NEW_PASSWORD, grpc.StatusCode.UNAUTHENTICATED),
            (PASSWORD, "too short", grpc.StatusCode.INVALID_ARGUMENT),
            (PASSWORD, PASSWORD, grpc.StatusCode.INVALID_ARGUMENT),
        ],
    )
    def test_acc3_change_fails(
        self, site: Site, password: str, new: str, code: grpc.StatusCode
    ) -> None:
        with pytest.raises(grpc.RpcError) as refused:
            change_password(site, "admin", password, new)
        assert code_of(refused.value) is code
        site.login("admin")  # the password is unchanged

    def test_acc4_change_fails_with_another_users_certificate(self, site: Site) -> None:
        request = pb.ChangePasswordRequest(
            user_name="admin", password=PASSWORD, new_password=NEW_PASSWORD
        )
        with pytest.raises(grpc.RpcError) as refused:
            site.stub(site.client("mallory")).ChangePassword(request, timeout=TIMEOUT)
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED
        reasons = [(r.user, r.reason) for r in site.node.services.sessions.refused()]
        assert reasons == [("admin", "certificate_of_another_user")]

    def test_acc3_reset_gives_a_temporary_password_to_change_at_next_login(
        self, patrolled: Site
    ) -> None:
        stream = patrolled.hit_stream("officer")
        admin = patrolled.stub(patrolled.client("admin"))
        answer = admin.ResetPassword(
            pb.ResetPasswordRequest(name="officer"),
            metadata=patrolled.login("admin"),
            timeout=TIMEOUT,
        )
        temporary = answer.temporary_password
        assert list(answer.user.blocks) == [pb.ACCESS_BLOCK_PASSWORD_CHANGE_REQUIRED]
        assert stream.ending()[0] is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            patrolled.login("officer", password=temporary)
        assert code_of(refused.value) is grpc.StatusCode.FAILED_PRECONDITION
        assert "the password was reset" in str(refused.value.details())
        assert list(change_password(patrolled, "officer", temporary, NEW_PASSWORD).blocks) == []
        patrolled.login("officer", password=NEW_PASSWORD)
        with pytest.raises(grpc.RpcError):  # used once: it is no password any more
            change_password(patrolled, "officer", temporary, "yet another passphrase")
        (reset,) = [e for e in patrolled.node.services.audit.events() if "reset" in e.kind]
        assert (reset.kind, json.loads(reset.details)) == (
            "user.password_reset",
            {"user": "officer"},
        )
        assert reset.actor.endswith("/user/admin")
        assert temporary not in "".join(e.details for e in patrolled.node.services.audit.events())

    def test_acc1_only_a_system_administrator_resets_passwords(self, patrolled: Site) -> None:
        officer = patrolled.stub(patrolled.client("officer"))
        with pytest.raises(grpc.RpcError) as refused:
            officer.ResetPassword(
                pb.ResetPasswordRequest(name="admin"),
                metadata=patrolled.login("officer"),
                timeout=TIMEOUT,
            )
        assert code_of(refused.value) is grpc.StatusCode.PERMISSION_DENIED
