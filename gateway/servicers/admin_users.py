"""AdminService's user RPCs: logins, and operators managing the agency's users (ACC-1 to ACC-5).

Login and ChangePassword are open to any user or device certificate of the agency (the
password is the proof); the rest needs a session of a system administrator (an auditor or
custodian of records may also read the report of refused logins), as `gateway.server.ACCESS`
says. Every change is audited; a change that ends a user's sessions ends the calls they hold
open too (`node.session_watch`, ACC-5).
"""

from __future__ import annotations

from collections.abc import Callable

from alpr.admin.v1 import users_pb2 as pb
from gateway.interceptors import Context, audit_call, current_presenter
from gateway.servicers.paging import page
from gateway.servicers.times import optional_time, timestamp
from gateway.services import Services
from node.errors import ValidationError
from node.profile import Role
from node.sessions import RefusedAttempt
from node.users import Block, User, UserDirectory

ROLE_TO_PROTO = {role: pb.Role.Value(f"ROLE_{role.name}") for role in Role}
ROLE_OF_PROTO = {value: role for role, value in ROLE_TO_PROTO.items()}
_BLOCK_TO_PROTO = {block: pb.AccessBlock.Value(f"ACCESS_BLOCK_{block.name}") for block in Block}


def user_to_proto(user: User, services: Services) -> pb.User:
    """A user on the wire, with what blocks their access now."""
    return pb.User(
        name=user.name,
        display_name=user.display_name,
        roles=sorted(ROLE_TO_PROTO[role] for role in user.roles),
        active=user.active,
        blocks=[_BLOCK_TO_PROTO[block] for block in user.blocks(services.clock())],
        training_time=timestamp(user.trained_at),
        acknowledge_time=timestamp(user.acknowledged_at),
        acknowledgement_expire_time=timestamp(user.acknowledgement_expires_at),
        reorientation_time=timestamp(user.reoriented_at),
        last_login_time=timestamp(user.last_login_at),
        create_time=timestamp(user.created_at),
        deactivate_time=timestamp(user.deactivated_at),
        deactivation_reason=user.deactivation_reason,
    )


def _refused_to_proto(attempt: RefusedAttempt) -> pb.RefusedLogin:
    return pb.RefusedLogin(
        audit_seq=attempt.seq,
        attempt_time=timestamp(attempt.at),
        user_name=attempt.user,
        reason=attempt.reason,
        peer_ip=attempt.peer_ip,
        certificate=attempt.certificate,
        method=attempt.method,
    )


def _roles(values: list[pb.Role.ValueType]) -> set[Role]:
    """Roles from the wire.

    Raises:
        ValidationError: One is unspecified or unknown.
    """
    if any(value not in ROLE_OF_PROTO for value in values):
        raise ValidationError("user.roles", "name roles other than ROLE_UNSPECIFIED")
    return {ROLE_OF_PROTO[value] for value in values}


def _required(value: str, field: str) -> str:
    if not value:
        raise ValidationError(field, "is required")
    return value


# What each step of ACC-2 records, and the audit event kind it is recorded as.
_STEPS: dict[int, tuple[Callable[[UserDirectory, str], User], str]] = {
    pb.USER_STEP_TRAINING: (UserDirectory.record_training, "user.trained"),
    pb.USER_STEP_POLICY_ACKNOWLEDGEMENT: (
        UserDirectory.record_acknowledgement,
        "user.acknowledged",
    ),
    pb.USER_STEP_REORIENTATION: (UserDirectory.record_reorientation, "user.reoriented"),
}


class UserAdmin:
    """The login and user RPCs of AdminService, mixed into its servicer."""

    services: Services

    def _user_proto(self, user: User) -> pb.User:
        return user_to_proto(user, self.services)

    def Login(  # noqa: N802 (gRPC method name)
        self, request: pb.LoginRequest, context: Context
    ) -> pb.LoginResponse:
        """Log a user in over the caller's certificate (audited, refused or not)."""
        # argon2id takes tens of milliseconds on purpose: a plain function, run in a worker thread.
        issued = self.services.sessions.login(
            _required(request.user_name, "user_name"), request.password, current_presenter(context)
        )
        return pb.LoginResponse(
            session_token=issued.token,
            expire_time=timestamp(issued.expires_at),
            user=self._user_proto(issued.user),
        )

    def CreateUser(  # noqa: N802 (gRPC method name)
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        """Create an account; it has no access until ACC-2's steps are recorded."""
        if not request.HasField("user"):
            raise ValidationError("user", "is required")
        user = self.services.users.create(
            name=request.user.name,
            display_name=request.user.display_name,
            roles=_roles(list(request.user.roles)),
            password=request.password,
        )
        audit_call(
            self.services.audit, "user.created", context, user=user.name, roles=sorted(user.roles)
        )
        return pb.CreateUserResponse(user=self._user_proto(user))

    def ListUsers(  # noqa: N802 (gRPC method name)
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        """List accounts in name order, a page at a time."""
        every = self.services.users.every()
        users, token = page(every, request.page_size, request.page_token, "user")
        return pb.ListUsersResponse(
            users=[self._user_proto(user) for user in users], next_page_token=token
        )

    def DeactivateUser(  # noqa: N802 (gRPC method name)
        self, request: pb.DeactivateUserRequest, context: Context
    ) -> pb.DeactivateUserResponse:
        """Deactivate at once; sessions already issued stop working (ACC-4, ACC-5)."""
        user = self.services.users.deactivate(_required(request.name, "name"), request.reason)
        audit_call(
            self.services.audit, "user.deactivated", context, user=user.name, reason=request.reason
        )
        return pb.DeactivateUserResponse(user=self._user_proto(user))

    def ChangePassword(  # noqa: N802 (gRPC method name)
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        """Change a user's password, knowing the current one (audited, refused or not)."""
        user = self.services.sessions.change_password(
            _required(request.user_name, "user_name"),
            request.password,
            request.new_password,
            current_presenter(context),
        )
        return pb.ChangePasswordResponse(user=self._user_proto(user))

    def ResetPassword(  # noqa: N802 (gRPC method name)
        self, request: pb.ResetPasswordRequest, context: Context
    ) -> pb.ResetPasswordResponse:
        """Give a user a temporary password, to change before any other use; sessions end."""
        user, temporary = self.services.users.reset_password(_required(request.name, "name"))
        audit_call(self.services.audit, "user.password_reset", context, user=user.name)
        return pb.ResetPasswordResponse(user=self._user_proto(user), temporary_password=temporary)

    def ReactivateUser(  # noqa: N802 (gRPC method name)
        self, request: pb.ReactivateUserRequest, context: Context
    ) -> pb.ReactivateUserResponse:
        """Make a deactivated account usable again, subject to ACC-2."""
        user = self.services.users.reactivate(_required(request.name, "name"))
        audit_call(self.services.audit, "user.reactivated", context, user=user.name)
        return pb.ReactivateUserResponse(user=self._user_proto(user))

    def RecordUserStep(  # noqa: N802 (gRPC method name)
        self, request: pb.RecordUserStepRequest, context: Context
    ) -> pb.RecordUserStepResponse:
        """Record training, the yearly acknowledgement or a reorientation, now (ACC-2)."""
        if request.step not in _STEPS:
            raise ValidationError("step", "name a step other than USER_STEP_UNSPECIFIED")
        record, kind = _STEPS[request.step]
        user = record(self.services.users, _required(request.name, "name"))
        audit_call(self.services.audit, kind, context, user=user.name)
        return pb.RecordUserStepResponse(user=self._user_proto(user))

    def ListRefusedLogins(  # noqa: N802 (gRPC method name)
        self, request: pb.ListRefusedLoginsRequest, context: Context
    ) -> pb.ListRefusedLoginsResponse:
        """Report refused logins and refused sessions, oldest first (ACC-4)."""
        since = optional_time(request, "since")
        attempts = self.services.sessions.refused(since=since)
        shown, token = page(attempts, request.page_size, request.page_token, "refused")
        return pb.ListRefusedLoginsResponse(
            refused_logins=[_refused_to_proto(attempt) for attempt in shown],
            next_page_token=token,
        )
