"""Logins and session tokens: audited, bound to the certificate, dead at deactivation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from node.audit import AuditLog
from node.ed25519 import Ed25519Signer
from node.errors import (
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
    ValidationError,
)
from node.identity import Principal, PrincipalKind
from node.profile import Role
from node.sessions import Presenter, Refusal, Sessions, verify_token
from node.users import TEMPORARY_PASSWORD_LASTS, UserDirectory
from tests.support.clock import ManualClock
from tests.support.users import PASSWORD, ready_user

ORI = "CA0194200"
METHOD = "/alpr.admin.v1.AdminService/ListUsers"


def presenter(
    name: str = "jdoe", digest: str = "a" * 64, kind: PrincipalKind = PrincipalKind.USER
) -> Presenter:
    return Presenter(Principal("test.alpr", ORI, kind, name), digest, "10.0.0.7")


@pytest.fixture
def users(engine: Engine, clock: ManualClock) -> UserDirectory:
    directory = UserDirectory(engine, clock=clock)
    ready_user(directory, "jdoe")
    return directory


@pytest.fixture
def audit(engine: Engine, clock: ManualClock) -> AuditLog:
    return AuditLog(engine, clock=clock)


@pytest.fixture
def sessions(users: UserDirectory, audit: AuditLog, clock: ManualClock) -> Sessions:
    return Sessions(users, audit, signer=Ed25519Signer.generate(), ori=ORI, clock=clock)


def kinds_and_reasons(audit: AuditLog) -> list[tuple[str, str]]:
    return [(e.kind, json.loads(e.details).get("reason", "")) for e in audit.events()]


class TestLogin:
    def test_acc3_succeeds_and_is_audited_with_user_agency_time_ip(
        self, sessions: Sessions, audit: AuditLog, clock: ManualClock
    ) -> None:
        issued = sessions.login("jdoe", PASSWORD, presenter())
        assert issued.expires_at == clock() + timedelta(hours=8)
        assert issued.user.last_login_at == clock()
        (event,) = audit.events()
        assert event.kind == "login"
        assert event.actor == "spiffe://test.alpr/agency/CA0194200/user/jdoe"
        assert (event.agency, event.peer_ip, event.recorded_at) == (ORI, "10.0.0.7", clock())

    @pytest.mark.parametrize(
        ("name", "password", "reason"),
        [("jdoe", "wrong password!", "wrong_password"), ("nobody", PASSWORD, "unknown_user")],
    )
    def test_acc3_fails_and_is_audited(
        self, sessions: Sessions, audit: AuditLog, name: str, password: str, reason: str
    ) -> None:
        with pytest.raises(UnauthenticatedError, match="user name or password is wrong"):
            sessions.login(name, password, presenter(name))
        assert kinds_and_reasons(audit) == [("login.refused", reason)]

    def test_fails_with_another_users_certificate(self, sessions: Sessions) -> None:
        with pytest.raises(PermissionDeniedError):
            sessions.login("jdoe", PASSWORD, presenter("someone-else"))

    def test_succeeds_from_a_patrol_device_for_any_user(self, sessions: Sessions) -> None:
        sessions.login("jdoe", PASSWORD, presenter("car-12", kind=PrincipalKind.DEVICE))

    def test_acc2_fails_until_trained(self, sessions: Sessions, users: UserDirectory) -> None:
        users.create(name="new", display_name="N", roles={Role.PATROL}, password=PASSWORD)
        with pytest.raises(PreconditionError, match="no training is recorded"):
            sessions.login("new", PASSWORD, presenter("new"))

    def test_acc4_deactivated_account_refused_audited_and_reported(
        self, sessions: Sessions, users: UserDirectory, audit: AuditLog
    ) -> None:
        users.deactivate("jdoe", "left the agency")
        with pytest.raises(PermissionDeniedError, match="deactivated"):
            sessions.login("jdoe", PASSWORD, presenter())
        with pytest.raises(UnauthenticatedError):  # a guesser does not learn the account's state
            sessions.login("jdoe", "a wrong guess!", presenter())
        assert kinds_and_reasons(audit) == [("login.refused", "deactivated")] * 2
        report = sessions.refused()
        assert [(a.user, a.reason, a.peer_ip) for a in report] == [
            ("jdoe", "deactivated", "10.0.0.7")
        ] * 2


class TestAuthenticate:
    def test_succeeds(self, sessions: Sessions) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        use = sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)
        assert (use.user.name, use.method, use.presenter) == ("jdoe", METHOD, presenter())

    def test_fails_with_another_certificate(self, sessions: Sessions) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        with pytest.raises(UnauthenticatedError, match="another certificate"):
            sessions.authenticate(
                token, presenter(digest="b" * 64), roles={Role.DATA_USER}, method=METHOD
            )

    def test_fails_when_expired(self, sessions: Sessions, clock: ManualClock) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        clock.advance(timedelta(hours=8))
        with pytest.raises(UnauthenticatedError, match="expired"):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)

    def test_acc1_fails_without_the_role(self, sessions: Sessions) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        with pytest.raises(PermissionDeniedError, match="system_administrator"):
            sessions.authenticate(
                token, presenter(), roles={Role.SYSTEM_ADMINISTRATOR}, method=METHOD
            )

    @pytest.mark.parametrize("token", ["", "x.y", "a" * 5000, "e30.AAAA"])
    def test_fails_for_forged_tokens(self, sessions: Sessions, token: str) -> None:
        with pytest.raises(UnauthenticatedError):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)

    def test_fails_for_a_token_of_another_node(self, sessions: Sessions) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        with pytest.raises(UnauthenticatedError):
            verify_token(token, Ed25519Signer.generate().public_key)

    def test_acc4_deactivation_ends_issued_sessions_at_once(
        self, sessions: Sessions, users: UserDirectory, audit: AuditLog
    ) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        users.deactivate("jdoe", "left")
        with pytest.raises(PermissionDeniedError, match="deactivated"):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)
        users.reactivate("jdoe")
        with pytest.raises(UnauthenticatedError, match="ended"):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)
        (attempt,) = sessions.refused()
        assert (attempt.reason, attempt.method) == ("deactivated", METHOD)

    def test_acc2_lapsed_acknowledgement_stops_a_session(
        self, sessions: Sessions, clock: ManualClock
    ) -> None:
        clock.advance(timedelta(days=365) - timedelta(hours=1))
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        clock.advance(timedelta(hours=2))
        with pytest.raises(PreconditionError, match="acknowledgement has lapsed"):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)


class TestChangePassword:
    def test_acc3_succeeds_ends_sessions_and_is_audited(
        self, sessions: Sessions, audit: AuditLog
    ) -> None:
        token = sessions.login("jdoe", PASSWORD, presenter()).token
        sessions.change_password("jdoe", PASSWORD, "a much better passphrase", presenter())
        with pytest.raises(UnauthenticatedError, match="ended"):
            sessions.authenticate(token, presenter(), roles={Role.DATA_USER}, method=METHOD)
        assert [kind for kind, _ in kinds_and_reasons(audit)] == ["login", "user.password_changed"]
        sessions.login("jdoe", "a much better passphrase", presenter())

    def test_acc4_fails_for_a_deactivated_account_and_is_reported(
        self, sessions: Sessions, users: UserDirectory
    ) -> None:
        users.deactivate("jdoe", "left the agency")
        with pytest.raises(PermissionDeniedError, match="deactivated"):
            sessions.change_password("jdoe", PASSWORD, "a much better passphrase", presenter())
        assert [a.reason for a in sessions.refused()] == ["deactivated"]

    def test_acc3_a_reset_password_opens_only_a_change_and_only_for_three_days(
        self, sessions: Sessions, users: UserDirectory, clock: ManualClock
    ) -> None:
        _, temporary = users.reset_password("jdoe")
        with pytest.raises(PreconditionError, match="reset"):
            sessions.login("jdoe", temporary, presenter())
        clock.advance(TEMPORARY_PASSWORD_LASTS)
        with pytest.raises(PreconditionError, match="temporary password expired"):
            sessions.change_password("jdoe", temporary, "a much better passphrase", presenter())
        assert sessions.refused()[-1].reason == Refusal.TEMPORARY_PASSWORD_EXPIRED
        # Another reset gives another three days.
        _, again = users.reset_password("jdoe")
        clock.advance(TEMPORARY_PASSWORD_LASTS - timedelta(seconds=1))
        sessions.change_password("jdoe", again, "a much better passphrase", presenter())
        sessions.login("jdoe", "a much better passphrase", presenter())

    @pytest.mark.parametrize(
        ("password", "new", "error"),
        [
            ("a wrong password", "a much better passphrase", UnauthenticatedError),
            (PASSWORD, "short", ValidationError),
            (PASSWORD, PASSWORD, ValidationError),
        ],
    )
    def test_fails(
        self, sessions: Sessions, password: str, new: str, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            sessions.change_password("jdoe", password, new, presenter())
        sessions.login("jdoe", PASSWORD, presenter())  # unchanged
