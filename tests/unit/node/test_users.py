"""User accounts on SQLite and PostgreSQL: roles, ACC-2's yearly rules, deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.ed25519 import password_matches
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.profile import Role
from node.users import MIN_PASSWORD, Block, User, UserDirectory
from tests.support.clock import ManualClock
from tests.support.users import PASSWORD, ready_user

YEAR = timedelta(days=366)


@pytest.fixture
def users(engine: Engine, clock: ManualClock) -> UserDirectory:
    return UserDirectory(engine, clock=clock)


class TestCreate:
    def test_acc1_succeeds_with_every_role(self, users: UserDirectory) -> None:
        user = users.create(name="chief", display_name="C", roles=set(Role), password=PASSWORD)
        assert user.roles == frozenset(Role)
        assert users.require("chief") == user
        assert [u.name for u in users.every()] == ["chief"]

    def test_sec2_keeps_only_an_argon2id_hash(self, users: UserDirectory, engine: Engine) -> None:
        users.create(name="jdoe", display_name="J", roles={Role.PATROL}, password=PASSWORD)
        with engine.connect() as connection:
            stored = bytes(
                connection.execute(text("SELECT password_hash FROM user_account")).scalar_one()
            )
        assert stored.startswith(b"$argon2id$")
        assert PASSWORD.encode() not in stored

    @pytest.mark.parametrize(
        ("field", "changes"),
        [
            ("name", {"name": "no spaces"}),
            ("display_name", {"display_name": " "}),
            ("roles", {"roles": set()}),
            ("password", {"password": "short"}),
        ],
    )
    def test_fails_for_invalid(
        self, users: UserDirectory, field: str, changes: dict[str, object]
    ) -> None:
        values: dict[str, object] = {
            "name": "jdoe",
            "display_name": "J",
            "roles": {Role.PATROL},
            "password": PASSWORD,
        }
        with pytest.raises(ValidationError) as raised:
            users.create(**{**values, **changes})  # type: ignore[arg-type]
        assert raised.value.field == field

    def test_fails_for_a_taken_name(self, users: UserDirectory) -> None:
        ready_user(users, "jdoe")
        with pytest.raises(AlreadyExistsError):
            users.create(name="jdoe", display_name="J", roles={Role.PATROL}, password=PASSWORD)


class TestAcc2Readiness:
    def test_acc2_new_account_is_blocked_until_training_and_acknowledgement(
        self, users: UserDirectory, clock: ManualClock
    ) -> None:
        user = users.create(name="jdoe", display_name="J", roles={Role.PATROL}, password=PASSWORD)
        assert user.blocks(clock()) == (
            Block.TRAINING_NOT_RECORDED,
            Block.POLICY_NOT_ACKNOWLEDGED,
        )
        assert users.record_training("jdoe").blocks(clock()) == (Block.POLICY_NOT_ACKNOWLEDGED,)
        assert users.record_acknowledgement("jdoe").blocks(clock()) == ()

    def test_acc2_acknowledgement_lapses_after_a_year(
        self, users: UserDirectory, clock: ManualClock
    ) -> None:
        ready_user(users, "jdoe")
        users.record_login("jdoe")
        clock.advance(YEAR - timedelta(days=2))
        users.record_login("jdoe")  # in use, so no reorientation is due
        assert users.require("jdoe").blocks(clock()) == ()
        clock.advance(timedelta(days=2))
        assert users.require("jdoe").blocks(clock()) == (Block.ACKNOWLEDGEMENT_EXPIRED,)
        assert users.record_acknowledgement("jdoe").blocks(clock()) == ()

    def test_acc2_a_year_unused_needs_reorientation(
        self, users: UserDirectory, clock: ManualClock
    ) -> None:
        ready_user(users, "jdoe")
        clock.advance(YEAR)
        users.record_acknowledgement("jdoe")
        assert users.require("jdoe").blocks(clock()) == (Block.REORIENTATION_NEEDED,)
        assert users.record_reorientation("jdoe").blocks(clock()) == ()


class TestDeactivation:
    def test_acc5_deactivation_is_immediate_and_ends_sessions(
        self, users: UserDirectory, clock: ManualClock
    ) -> None:
        ready_user(users, "jdoe")
        before = users.require("jdoe")
        after = users.deactivate("jdoe", "left the agency")
        assert not after.active
        assert after.deactivated_at == clock()
        assert after.generation == before.generation + 1
        assert after.blocks(clock()) == (Block.DEACTIVATED,)

    def test_acc4_reactivation_starts_a_new_generation(self, users: UserDirectory) -> None:
        ready_user(users, "jdoe")
        deactivated = users.deactivate("jdoe", "on leave")
        back = users.reactivate("jdoe")
        assert back.active
        assert back.deactivation_reason == ""
        assert back.generation == deactivated.generation + 1

    def test_fails_twice(self, users: UserDirectory) -> None:
        ready_user(users, "jdoe")
        users.deactivate("jdoe", "left")
        with pytest.raises(PreconditionError):
            users.deactivate("jdoe", "left")
        users.reactivate("jdoe")
        with pytest.raises(PreconditionError):
            users.reactivate("jdoe")

    def test_fails_without_a_reason_or_a_user(self, users: UserDirectory) -> None:
        ready_user(users, "jdoe")
        with pytest.raises(ValidationError):
            users.deactivate("jdoe", " ")
        with pytest.raises(NotFoundError):
            users.deactivate("nobody", "left")


class TestPasswords:
    def test_acc3_change_checks_the_new_password_and_ends_sessions(
        self, users: UserDirectory
    ) -> None:
        before = ready_user(users, "jdoe")
        with pytest.raises(ValidationError) as raised:
            users.change_password("jdoe", "short")
        assert raised.value.field == "new_password"
        after = users.change_password("jdoe", "a much better passphrase")
        assert after.generation == before.generation + 1
        found = users.credentials("jdoe")
        assert found is not None
        assert password_matches(found[1], "a much better passphrase")

    def test_acc3_reset_gives_a_one_time_password_to_change_first(
        self, users: UserDirectory, clock: ManualClock
    ) -> None:
        before = ready_user(users, "jdoe")
        after, temporary = users.reset_password("jdoe")
        assert len(temporary) >= MIN_PASSWORD
        assert after.generation == before.generation + 1
        assert after.blocks(clock()) == (Block.PASSWORD_CHANGE_REQUIRED,)
        found = users.credentials("jdoe")
        assert found is not None
        assert password_matches(found[1], temporary)
        assert temporary.encode() not in found[1]
        assert users.change_password("jdoe", "a much better passphrase").blocks(clock()) == ()

    def test_acc5_every_change_is_told_once_committed(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        told: list[User] = []
        users = UserDirectory(engine, clock=clock, on_change=told.append)
        ready_user(users, "jdoe")
        deactivated = users.deactivate("jdoe", "left")
        assert told[-1] == deactivated == users.require("jdoe")
        users.reset_password("jdoe")
        assert told[-1].must_change_password
