"""Logins and the session tokens they give, bound to the client certificate (ACC-2 to ACC-4).

A user logs in with name and password over a connection whose client certificate the
gateway has already verified (SEC-1). The node checks the argon2id hash, then the account
(`node.users.User.blocks`: deactivation, training, the yearly acknowledgement, a year
unused), and answers with a token it signs with its Ed25519 key (never stored: SEC-2):

    base64url(claims JSON) "." base64url(signature over pae(SESSION_TYPE, claims JSON))

The claims name the user, the agency, the account's session generation, the SHA-256 of
the certificate the login came over, and when the token was issued and expires. Every
call presenting the token checks the signature, the expiry, that the same certificate
presents it, and the account again (`session_ending`), so a deactivation ends every session
at once (ACC-4); a call that stays open is ended as well (`node.session_watch`, ACC-5).
Every login, refused or not, is an audit event with the user, agency, time and IP address
(ACC-3, AUD-1); so is every use of a session of a deactivated account, and every password
change. `Sessions.refused` reports the refusals (ACC-4).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from node.audit import AuditLog, canonical_json
from node.clock import Clock
from node.ed25519 import hash_password, password_matches
from node.errors import (
    NodeError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
    ValidationError,
)
from node.identity import Principal, PrincipalKind, validate_name
from node.profile import Role
from node.signing import Key, Signature, Signer, VerificationError, pae
from node.store.models import AuditEvent
from node.users import (
    REMEDY,
    TEMPORARY_PASSWORD_LASTS,
    Block,
    User,
    UserDirectory,
    validate_password,
)

SESSION_TYPE = "application/vnd.alpr.session.v1+json"
DEFAULT_LIFETIME = timedelta(hours=8)  # one patrol shift
MAX_TOKEN = 4096
LOGIN, LOGIN_REFUSED, SESSION_REFUSED = "login", "login.refused", "session.refused"
PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an audit event kind)


class Refusal:
    """Why a login or a session was refused, as audit events and reports name it."""

    UNKNOWN_USER = "unknown_user"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (a reason, not a password)
    CERTIFICATE_OF_ANOTHER_USER = "certificate_of_another_user"
    SESSION_ENDED = "session_ended"
    SESSION_EXPIRED = "session_expired"
    TEMPORARY_PASSWORD_EXPIRED = "temporary_password_expired"  # noqa: S105 (a reason)


@dataclass(frozen=True)
class Presenter:
    """Who presents a login or a session: the verified client certificate, and from where.

    Attributes:
        principal: What the certificate names.
        certificate_sha256: The SHA-256 of the certificate (DER), hex.
        peer_ip: The address the call came from.
    """

    principal: Principal
    certificate_sha256: str
    peer_ip: str


@dataclass(frozen=True, kw_only=True)
class SessionClaims:
    """What a session token says, once its signature is verified."""

    user: str
    ori: str
    generation: int
    certificate_sha256: str
    issued_at: datetime
    expires_at: datetime
    session_id: str

    def is_expired(self, reference_time: datetime) -> bool:
        """Whether the session is over at `reference_time`."""
        return reference_time >= self.expires_at

    def to_bytes(self) -> bytes:
        """The claims as canonical JSON, times in whole seconds since the epoch."""
        return canonical_json(
            {
                "cnf": self.certificate_sha256,
                "exp": int(self.expires_at.timestamp()),
                "gen": self.generation,
                "iat": int(self.issued_at.timestamp()),
                "ori": self.ori,
                "sid": self.session_id,
                "sub": self.user,
            }
        ).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionClaims:
        """Read claims written by `to_bytes` (only ever after their signature is verified).

        Raises:
            UnauthenticatedError: They are not such claims.
        """
        try:
            raw = json.loads(data)
            return cls(
                user=str(raw["sub"]),
                ori=str(raw["ori"]),
                generation=int(raw["gen"]),
                certificate_sha256=str(raw["cnf"]),
                issued_at=datetime.fromtimestamp(int(raw["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(raw["exp"]), UTC),
                session_id=str(raw["sid"]),
            )
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise UnauthenticatedError("the session token is malformed") from error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(claims: SessionClaims, signer: Signer) -> str:
    """The token carrying `claims`, signed by `signer`."""
    payload = claims.to_bytes()
    return f"{_b64(payload)}.{_b64(signer.sign(pae(SESSION_TYPE, payload)).signature)}"


def verify_token(token: str, key: Key) -> SessionClaims:
    """The claims of a token `key` signed; nothing is parsed before the signature verifies.

    Raises:
        UnauthenticatedError: The token is malformed, or not signed by `key`.
    """
    payload_text, _, signature_text = token.partition(".")
    try:
        if len(token) > MAX_TOKEN:
            raise ValueError
        payload, signature = _unb64(payload_text), _unb64(signature_text)
        key.verify_signature(Signature(key.key_id, signature), pae(SESSION_TYPE, payload))
    except (ValueError, binascii.Error, VerificationError) as error:
        raise UnauthenticatedError("the session token is not one this node issued") from error
    return SessionClaims.from_bytes(payload)


@dataclass(frozen=True)
class SessionUse:
    """A call admitted with a session: the user, the session, who presents it, to what."""

    user: User
    claims: SessionClaims
    presenter: Presenter
    method: str


@dataclass(frozen=True)
class Ending:
    """Why a session may no longer be used: the reason audits name, and the error to answer."""

    reason: str
    error: NodeError


def session_ending(claims: SessionClaims, user: User | None, now: datetime) -> Ending | None:
    """Why the session `claims` describe is over at `now` for `user` as stored; None if it is not.

    A deactivated account answers PERMISSION_DENIED (ACC-4); a session of an earlier
    generation (a deactivation, reactivation, password change or reset since) or past its
    expiry, UNAUTHENTICATED; an account ACC-2 blocks, FAILED_PRECONDITION.
    """
    if user is None:
        return Ending(Refusal.UNKNOWN_USER, UnauthenticatedError("the session's user is unknown"))
    if not user.active:
        return Ending(Block.DEACTIVATED, PermissionDeniedError(REMEDY[Block.DEACTIVATED]))
    if claims.generation != user.generation:
        ended = UnauthenticatedError("the session was ended; log in again")
        return Ending(Refusal.SESSION_ENDED, ended)
    if claims.is_expired(now):
        expired = UnauthenticatedError("the session has expired; log in again")
        return Ending(Refusal.SESSION_EXPIRED, expired)
    blocks = user.blocks(now)
    if blocks:
        return Ending(blocks[0], PreconditionError(_remedies(blocks)))
    return None


def record_presented(
    audit: AuditLog, kind: str, name: str, presenter: Presenter, **extra: object
) -> None:
    """Audit `kind` done as the user `name` over `presenter`'s certificate (AUD-1)."""
    own = presenter.principal
    actor = (
        Principal(own.federation, own.ori, PrincipalKind.USER, name).spiffe_id
        if _is_name(name)
        else own.spiffe_id
    )
    audit.append(
        kind,
        actor=actor,
        agency=own.ori,
        peer_ip=presenter.peer_ip,
        details={"user": name[:64], "certificate": own.spiffe_id, **extra},
    )


@dataclass(frozen=True)
class IssuedSession:
    """A successful login: the token to present, when it expires, and the user."""

    token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True, kw_only=True)
class RefusedAttempt:
    """A refused login, or a refused use of a session, as the audit log holds it (ACC-4)."""

    seq: int
    at: datetime
    user: str
    reason: str
    peer_ip: str
    certificate: str
    method: str


@cache
def _decoy_hash() -> bytes:
    """A hash to check an unknown user's password against, so that takes as long as a known's."""
    return hash_password(secrets.token_urlsafe(16))


class Sessions:
    """Logs users in and checks their sessions on every call."""

    def __init__(
        self,
        users: UserDirectory,
        audit: AuditLog,
        *,
        signer: Signer,
        ori: str,
        clock: Clock,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> None:
        """Check `users`, audit to `audit`, sign tokens as `signer` for the agency `ori`."""
        self._users = users
        self._audit = audit
        self._signer = signer
        self._ori = ori
        self._clock = clock
        self._lifetime = lifetime

    def login(self, name: str, password: str, presenter: Presenter) -> IssuedSession:
        """Log `name` in; every attempt, refused or not, is audited (ACC-3, ACC-4, AUD-1).

        Args:
            name: The user's name.
            password: The user's password.
            presenter: The certificate the login comes over; a user's certificate may only
                log its own user in, a device's (a patrol car's terminal) any user.

        Returns:
            The signed session token, bound to the presenter's certificate.

        Raises:
            UnauthenticatedError: No such user, or the password is wrong.
            PermissionDeniedError: The account is deactivated, or the certificate is another
                user's.
            PreconditionError: ACC-2 blocks the account (training, acknowledgement, idle year).
        """
        now = self._clock()
        user = self._verified(name, password, presenter)
        blocks = user.blocks(now)
        if blocks:
            error = PreconditionError(_remedies(blocks))
            raise self._refuse(LOGIN_REFUSED, name, blocks[0], presenter, error)
        user = self._users.record_login(name)
        claims = SessionClaims(
            user=name,
            ori=self._ori,
            generation=user.generation,
            certificate_sha256=presenter.certificate_sha256,
            issued_at=now,
            expires_at=now + self._lifetime,
            session_id=secrets.token_hex(16),
        )
        record_presented(self._audit, LOGIN, name, presenter, session_id=claims.session_id)
        return IssuedSession(sign_token(claims, self._signer), claims.expires_at, user)

    def change_password(
        self, name: str, password: str, new_password: str, presenter: Presenter
    ) -> User:
        """Replace `name`'s password, knowing the current one; every session of theirs ends.

        The current password is checked as a login checks it, refusals audited alike
        (ACC-4); an account ACC-2 blocks, or one whose password was reset, may still change
        it, but a reset's temporary password only within `TEMPORARY_PASSWORD_LASTS`. The
        change is audited (ACC-3, AUD-1).

        Raises:
            ValidationError: The new password is too short or too long, or is the current one.
            UnauthenticatedError: No such user, or the current password is wrong.
            PermissionDeniedError: The account is deactivated, or the certificate is another
                user's.
            PreconditionError: The password is a reset's temporary one, and it expired.
        """
        validate_password(new_password, "new_password")
        if secrets.compare_digest(password.encode(), new_password.encode()):
            raise ValidationError("new_password", "must differ from the current password")
        user = self._verified(name, password, presenter)
        if user.temporary_password_expired(self._clock()):
            error = PreconditionError(
                f"the temporary password expired {TEMPORARY_PASSWORD_LASTS.days} days after the"
                " reset; ask a system administrator for another reset"
            )
            reason = Refusal.TEMPORARY_PASSWORD_EXPIRED
            raise self._refuse(LOGIN_REFUSED, name, reason, presenter, error)
        user = self._users.change_password(name, new_password)
        record_presented(self._audit, PASSWORD_CHANGED, name, presenter)
        return user

    def _verified(self, name: str, password: str, presenter: Presenter) -> User:
        """The account `name`, if `password` is its password and `presenter` may act for it.

        Raises:
            UnauthenticatedError: No such user, or the password is wrong (audited).
            PermissionDeniedError: The account is deactivated, or the certificate is another
                user's (audited).
        """
        found = self._users.credentials(name) if _is_name(name) else None
        if found is None:
            password_matches(_decoy_hash(), password)
            raise self._refuse(LOGIN_REFUSED, name, Refusal.UNKNOWN_USER, presenter, _wrong())
        user, stored = found
        own = presenter.principal
        if own.kind is PrincipalKind.USER and own.name != name:
            denied = PermissionDeniedError(f"your certificate is {own.name}'s; log in as them")
            raise self._refuse(
                LOGIN_REFUSED, name, Refusal.CERTIFICATE_OF_ANOTHER_USER, presenter, denied
            )
        right = password_matches(stored, password)
        if not user.active:
            # Audited and reported either way (ACC-4); only the right password learns why.
            error: NodeError = (
                PermissionDeniedError(REMEDY[Block.DEACTIVATED]) if right else _wrong()
            )
            raise self._refuse(
                LOGIN_REFUSED, name, Block.DEACTIVATED, presenter, error, password_right=right
            )
        if not right:
            raise self._refuse(LOGIN_REFUSED, name, Refusal.WRONG_PASSWORD, presenter, _wrong())
        return user

    def authenticate(
        self, token: str, presenter: Presenter, *, roles: Collection[Role], method: str
    ) -> SessionUse:
        """The session `token` is, and its user, if they may call `method` now.

        Args:
            token: The token `login` gave.
            presenter: The certificate the call comes over; it must be the login's.
            roles: The roles that may call `method`; the user needs one of them.
            method: The full name of the method called, for messages and the audit.

        Raises:
            UnauthenticatedError: The token is forged, expired, ended, or presented over
                another certificate.
            PermissionDeniedError: The account is deactivated (audited), or has none of `roles`.
            PreconditionError: ACC-2 blocks the account now, or its password must be changed.
        """
        now = self._clock()
        claims = verify_token(token, self._signer.public_key)
        if claims.ori != self._ori:
            raise UnauthenticatedError("the session is not one this node issued")
        if not secrets.compare_digest(claims.certificate_sha256, presenter.certificate_sha256):
            raise UnauthenticatedError("the session was issued to another certificate")
        user = self._users.get(claims.user)
        ending = session_ending(claims, user, now)
        if ending is not None:
            if ending.reason == Block.DEACTIVATED:
                self._refuse(
                    SESSION_REFUSED,
                    claims.user,
                    ending.reason,
                    presenter,
                    ending.error,
                    method=method,
                )
            raise ending.error
        assert user is not None  # noqa: S101 (session_ending ends an unknown user's session)
        if not user.roles & set(roles):
            needed = ", ".join(sorted(roles))
            raise PermissionDeniedError(f"{method} needs one of the roles: {needed}")
        return SessionUse(user, claims, presenter, method)

    def refused(self, *, since: datetime | None = None) -> list[RefusedAttempt]:
        """Every refused login and refused session use, oldest first (ACC-4's report).

        Args:
            since: Only those at or after this time.
        """
        found: list[RefusedAttempt] = []
        after = 0
        while page := self._audit.events(after, kinds=(LOGIN_REFUSED, SESSION_REFUSED)):
            found += [_attempt(e) for e in page if since is None or e.recorded_at >= since]
            after = page[-1].seq
        return found

    def _refuse(
        self,
        kind: str,
        name: str,
        reason: str,
        presenter: Presenter,
        error: NodeError,
        **extra: object,
    ) -> NodeError:
        """Audit a refusal for `reason`; `error`, to raise."""
        record_presented(self._audit, kind, name, presenter, reason=reason, **extra)
        return error


def _is_name(name: str) -> bool:
    try:
        validate_name(name)
    except ValidationError:
        return False
    return True


def _wrong() -> UnauthenticatedError:
    return UnauthenticatedError("user name or password is wrong")


def _remedies(blocks: tuple[Block, ...]) -> str:
    return "no access: " + "; ".join(REMEDY[block] for block in blocks)


def _attempt(event: AuditEvent) -> RefusedAttempt:
    details = json.loads(event.details)
    return RefusedAttempt(
        seq=event.seq,
        at=event.recorded_at,
        user=str(details.get("user", "")),
        reason=str(details.get("reason", "")),
        peer_ip=event.peer_ip,
        certificate=str(details.get("certificate", "")),
        method=str(details.get("method", "")),
    )
