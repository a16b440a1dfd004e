"""The agency's own users: roles, training, yearly acknowledgement, deactivation (ACC-1 to ACC-5).

A `User` says by itself what stands between it and access (`User.blocks`): deactivation
(ACC-4, ACC-5), training not recorded, the policy not acknowledged or acknowledged more than
a year ago, a year without use and no reorientation since (ACC-2), or a password an
operator reset and the user has not changed yet. Logins and every call with a session check
the same `blocks`, at the reference time they fix once.
`UserDirectory` keeps the accounts; it never deletes one. Passwords are kept only as
argon2id hashes (`node.ed25519.hash_password`). Every change to an account is told to the
directory's `on_change` once committed, so what holds a session open (a patrol stream,
`node.session_watch`) can end it at once.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.clock import Clock
from node.ed25519 import hash_password
from node.errors import AlreadyExistsError, NotFoundError, PreconditionError, ValidationError
from node.identity import validate_name
from node.profile import Period, Role
from node.store.models import utc
from node.store.user_models import UserRecord

# ACC-2: the acknowledgement is renewed every year; a year unused needs reorientation.
ACKNOWLEDGEMENT_LASTS = Period(years=1)
IDLE_LIMIT = Period(years=1)
MIN_PASSWORD = 12
MAX_PASSWORD = 256
MAX_DISPLAY_NAME = 200
MAX_REASON = 500
TEMPORARY_PASSWORD_BYTES = 12  # 16 URL-safe characters: longer than MIN_PASSWORD
TEMPORARY_PASSWORD_LASTS = timedelta(days=3)
"""A reset's temporary password travels outside the system: it must not stay good for long."""


class Block(enum.StrEnum):
    """Why an account may not be used now."""

    DEACTIVATED = "deactivated"
    TRAINING_NOT_RECORDED = "training_not_recorded"
    POLICY_NOT_ACKNOWLEDGED = "policy_not_acknowledged"
    ACKNOWLEDGEMENT_EXPIRED = "acknowledgement_expired"
    REORIENTATION_NEEDED = "reorientation_needed"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"  # noqa: S105 (a block, not a password)


# What an operator must do about each block, for messages.
REMEDY = {
    Block.DEACTIVATED: "the account is deactivated",
    Block.TRAINING_NOT_RECORDED: "no training is recorded for the account (ACC-2)",
    Block.POLICY_NOT_ACKNOWLEDGED: "the policy has not been acknowledged (ACC-2)",
    Block.ACKNOWLEDGEMENT_EXPIRED: "the yearly policy acknowledgement has lapsed (ACC-2)",
    Block.REORIENTATION_NEEDED: "the account was unused for a year and needs reorientation (ACC-2)",
    Block.PASSWORD_CHANGE_REQUIRED: "the password was reset; choose a new one first",
}


def validate_password(password: str, field: str = "password") -> str:
    """Return `password` if it is long enough and not absurdly long.

    Raises:
        ValidationError: It has fewer than `MIN_PASSWORD` or more than `MAX_PASSWORD` characters.
    """
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError(field, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True, kw_only=True)
class User:
    """A user account as stored, with the times that decide its access."""

    name: str
    display_name: str
    roles: frozenset[Role]
    active: bool
    generation: int
    created_at: datetime
    trained_at: datetime | None = None
    acknowledged_at: datetime | None = None
    reoriented_at: datetime | None = None
    last_login_at: datetime | None = None
    deactivated_at: datetime | None = None
    deactivation_reason: str = ""
    password_reset_at: datetime | None = None

    @property
    def must_change_password(self) -> bool:
        """Whether the password was reset: only a new one opens the account."""
        return self.password_reset_at is not None

    def temporary_password_expired(self, reference_time: datetime) -> bool:
        """Whether the password was reset longer than `TEMPORARY_PASSWORD_LASTS` ago."""
        reset = self.password_reset_at
        return reset is not None and reference_time >= reset + TEMPORARY_PASSWORD_LASTS

    @property
    def last_active_at(self) -> datetime:
        """When the account was last used, reoriented, or else created: its idle clock starts."""
        moments = (self.created_at, self.last_login_at, self.reoriented_at)
        return max(moment for moment in moments if moment is not None)

    @property
    def acknowledgement_expires_at(self) -> datetime | None:
        """When the policy acknowledgement lapses, if one is recorded."""
        if self.acknowledged_at is None:
            return None
        return ACKNOWLEDGEMENT_LASTS.add_to(self.acknowledged_at)

    def blocks(self, reference_time: datetime) -> tuple[Block, ...]:
        """Everything that stops the account being used at `reference_time`; empty if nothing."""
        found = []
        if not self.active:
            found.append(Block.DEACTIVATED)
        if self.trained_at is None:
            found.append(Block.TRAINING_NOT_RECORDED)
        expires = self.acknowledgement_expires_at
        if expires is None:
            found.append(Block.POLICY_NOT_ACKNOWLEDGED)
        elif reference_time >= expires:
            found.append(Block.ACKNOWLEDGEMENT_EXPIRED)
        if reference_time >= IDLE_LIMIT.add_to(self.last_active_at):
            found.append(Block.REORIENTATION_NEEDED)
        if self.must_change_password:
            found.append(Block.PASSWORD_CHANGE_REQUIRED)
        return tuple(found)


class UserDirectory:
    """Creates, lists, deactivates and reactivates the agency's users, and records their steps."""

    def __init__(
        self, engine: Engine, *, clock: Clock, on_change: Callable[[User], None] | None = None
    ) -> None:
        """Keep users in `engine`'s database, stamping changes with `clock`.

        Args:
            engine: The store.
            clock: Where the times of changes come from.
            on_change: Called with the account as stored after each change is committed,
                from the thread that made it.
        """
        self._engine = engine
        self._clock = clock
        self._on_change = on_change

    def create(self, *, name: str, display_name: str, roles: Iterable[Role], password: str) -> User:
        """Create an active account; it has no access until ACC-2's steps are recorded.

        Raises:
            ValidationError: The name, display name, roles or password are not acceptable.
            AlreadyExistsError: A user of that name exists (deactivated ones too).
        """
        validate_name(name)  # as a user certificate names its user
        if not display_name.strip() or len(display_name) > MAX_DISPLAY_NAME:
            raise ValidationError("display_name", f"must be 1 to {MAX_DISPLAY_NAME} characters")
        granted = frozenset(roles)
        if not granted:
            raise ValidationError("roles", "name at least one role")
        record = UserRecord(
            name=name,
            display_name=display_name,
            roles=",".join(sorted(granted)),
            password_hash=hash_password(validate_password(password)),
            active=True,
            created_at=self._clock(),
        )
        with Session(self._engine) as session:
            if session.get(UserRecord, name) is not None:
                raise AlreadyExistsError(f"user {name} already exists")
            session.add(record)
            session.commit()
            return _to_user(record)

    def get(self, name: str) -> User | None:
        """The user called `name`, if any."""
        found = self.credentials(name)
        return found[0] if found else None

    def require(self, name: str) -> User:
        """The user called `name`.

        Raises:
            NotFoundError: There is none.
        """
        user = self.get(name)
        if user is None:
            raise NotFoundError(f"no user {name}")
        return user

    def credentials(self, name: str) -> tuple[User, bytes] | None:
        """The user called `name` and their stored password hash, if there is one."""
        with Session(self._engine) as session:
            record = session.get(UserRecord, name)
            return (_to_user(record), record.password_hash) if record else None

    def every(self) -> list[User]:
        """Every account, deactivated ones too, in name order."""
        with Session(self._engine) as session:
            records = session.exec(select(UserRecord).order_by(col(UserRecord.name))).all()
            return [_to_user(record) for record in records]

    def has_active(self, role: Role) -> bool:
        """Whether some active account holds `role`."""
        return any(user.active and role in user.roles for user in self.every())

    def deactivate(self, name: str, reason: str) -> User:
        """Deactivate at once: no login, and every session already issued dies (ACC-4, ACC-5).

        Raises:
            ValidationError: No reason is given, or it is too long.
            NotFoundError: No such user.
            PreconditionError: The account is already deactivated.
        """
        if not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationError("reason", f"must be 1 to {MAX_REASON} characters")

        def apply(record: UserRecord, now: datetime) -> None:
            if not record.active:
                raise PreconditionError(f"user {name} is already deactivated")
            record.active = False
            record.deactivated_at = now
            record.deactivation_reason = reason
            record.session_generation += 1

        return self._change(name, apply)

    def reactivate(self, name: str) -> User:
        """Make a deactivated account usable again, subject to ACC-2 as any other.

        Raises:
            NotFoundError: No such user.
            PreconditionError: The account is active.
        """

        def apply(record: UserRecord, _: datetime) -> None:
            if record.active:
                raise PreconditionError(f"user {name} is active")
            record.active = True
            record.deactivated_at = None
            record.deactivation_reason = ""
            record.session_generation += 1

        return self._change(name, apply)

    def change_password(self, name: str, password: str) -> User:
        """Replace the password, ending every session issued before (the caller checked the old).

        Raises:
            ValidationError: `password` is too short or too long (as at creation).
            NotFoundError: No such user.
        """
        digest = hash_password(validate_password(password, "new_password"))
        return self._change(name, lambda record, _: _set_password(record, digest, reset=None))

    def reset_password(self, name: str) -> tuple[User, str]:
        """Give the account a temporary password that serves only to choose a new one.

        Every session issued before ends. The temporary password is returned once and
        kept only as its hash.

        Returns:
            The account as stored, and the temporary password.

        Raises:
            NotFoundError: No such user.
        """
        temporary = secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)
        digest = hash_password(temporary)
        user = self._change(name, lambda record, now: _set_password(record, digest, reset=now))
        return user, temporary

    def record_training(self, name: str) -> User:
        """Record that the user completed the system's training now (ACC-2).

        Raises:
            NotFoundError: No such user.
        """
        return self._stamp(name, "trained_at")

    def record_acknowledgement(self, name: str) -> User:
        """Record that the user acknowledged the policy now; it lasts a year (ACC-2).

        Raises:
            NotFoundError: No such user.
        """
        return self._stamp(name, "acknowledged_at")

    def record_reorientation(self, name: str) -> User:
        """Record that the user was reoriented now, restarting the idle year (ACC-2).

        Raises:
            NotFoundError: No such user.
        """
        return self._stamp(name, "reoriented_at")

    def record_login(self, name: str) -> User:
        """Record a successful login now, restarting the idle year.

        Raises:
            NotFoundError: No such user.
        """
        return self._stamp(name, "last_login_at")

    def _stamp(self, name: str, field: str) -> User:
        return self._change(name, lambda record, now: setattr(record, field, now))

    def _change(self, name: str, apply: Callable[[UserRecord, datetime], None]) -> User:
        """Apply one change to the account under a row lock, and commit it."""
        with Session(self._engine) as session:
            query = select(UserRecord).where(col(UserRecord.name) == name).with_for_update()
            record = session.exec(query).one_or_none()
            if record is None:
                raise NotFoundError(f"no user {name}")
            apply(record, self._clock())
            session.add(record)
            session.commit()
            user = _to_user(record)
        if self._on_change is not None:
            self._on_change(user)
        return user


def _set_password(record: UserRecord, digest: bytes, *, reset: datetime | None) -> None:
    record.password_hash = digest
    record.password_reset_at = reset
    record.session_generation += 1


def _optional_utc(moment: datetime | None) -> datetime | None:
    return utc(moment) if moment is not None else None


def _to_user(record: UserRecord) -> User:
    return User(
        name=record.name,
        display_name=record.display_name,
        roles=frozenset(Role(value) for value in record.roles.split(",") if value),
        active=record.active,
        generation=record.session_generation,
        created_at=utc(record.created_at),
        trained_at=_optional_utc(record.trained_at),
        acknowledged_at=_optional_utc(record.acknowledged_at),
        reoriented_at=_optional_utc(record.reoriented_at),
        last_login_at=_optional_utc(record.last_login_at),
        deactivated_at=_optional_utc(record.deactivated_at),
        deactivation_reason=record.deactivation_reason,
        password_reset_at=_optional_utc(record.password_reset_at),
    )
