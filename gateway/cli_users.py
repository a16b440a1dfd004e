"""`alpr login` and `alpr users` commands: users log in; operators manage the agency's users.

`alpr login` asks the node for a session over the user's own certificate and keeps the
token in the file ``--session`` (or ALPR_SESSION) names, mode 0600; every admin command
given the same file sends the token with each call (`gateway.cli_admin`). The token is
bound to the certificate it was issued over, so the file is useless with another one.
`alpr users passwd` changes the user's own password, knowing the current one (or the
temporary one `alpr users reset` gave); it needs no session, and every session ends.
`alpr users bootstrap` is the one command that works on the node's directory instead: it
creates the first system administrator, whom no one could otherwise log in to create.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc

from alpr.admin.v1 import users_pb2 as pb
from gateway.cli_admin import Stub, _call, _connection_options, _print_rows, _timestamp
from gateway.cli_hotlists import _every_page
from gateway.config import NodeConfig, load_config
from gateway.node_dir import open_node
from node.audit import AuditLog
from node.clock import system_clock
from node.errors import PreconditionError, ValidationError
from node.pki import write_secret
from node.profile import Role
from node.users import TEMPORARY_PASSWORD_LASTS, UserDirectory

STEPS = {
    "training": pb.USER_STEP_TRAINING,
    "acknowledgement": pb.USER_STEP_POLICY_ACKNOWLEDGEMENT,
    "reorientation": pb.USER_STEP_REORIENTATION,
}


def _password(args: argparse.Namespace, prompt: str) -> str:
    """The password from the first line of standard input, or asked at the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(prompt)


def _names(values: object) -> str:
    return ",".join(pb.Role.Name(v).removeprefix("ROLE_").lower() for v in values)  # type: ignore[attr-defined]


def _moment(stamp: object) -> str:
    if not getattr(stamp, "seconds", 0):
        return "-"
    return f"{stamp.ToDatetime(UTC):%Y-%m-%d %H:%M}"  # type: ignore[attr-defined]


def _new_password(args: argparse.Namespace) -> str:
    """The new password: the next line of standard input, or asked twice at the terminal.

    Raises:
        ValidationError: The two entries at the terminal differ.
    """
    if args.password_stdin:
        return _password(args, "")
    new = getpass.getpass("new password: ")
    if getpass.getpass("new password again: ") != new:
        raise ValidationError("new password", "the two entries differ")
    return new


def _print_user(user: pb.User) -> None:
    state = "active" if user.active else f"deactivated ({user.deactivation_reason})"
    blocks = ", ".join(
        pb.AccessBlock.Name(b).removeprefix("ACCESS_BLOCK_").lower() for b in user.blocks
    )
    print(f"user {user.name}  {user.display_name}  {state}  roles {_names(user.roles)}")
    print(
        f"    trained {_moment(user.training_time)}, acknowledged "
        f"{_moment(user.acknowledge_time)} (lapses {_moment(user.acknowledgement_expire_time)}), "
        f"last login {_moment(user.last_login_time)}"
    )
    print(f"    access: {'blocked: ' + blocks if blocks else 'allowed'}")


def _login(args: argparse.Namespace) -> int:
    if not args.session:
        raise ValidationError("--session", "is required (or set ALPR_SESSION)")
    request = pb.LoginRequest(user_name=args.user, password=_password(args, "password: "))

    def action(admin: Stub, _: grpc.Channel) -> None:
        answer = admin.Login(request, timeout=args.timeout)
        write_secret(args.session, answer.session_token.encode() + b"\n")
        print(f"logged in as {answer.user.name} until {_moment(answer.expire_time)} UTC")

    return _call(args, action)


def _passwd(args: argparse.Namespace) -> int:
    current = _password(args, "current password: ")
    request = pb.ChangePasswordRequest(
        user_name=args.user, password=current, new_password=_new_password(args)
    )

    def action(admin: Stub, _: grpc.Channel) -> None:
        answer = admin.ChangePassword(request, timeout=args.timeout)
        print(f"password changed for {answer.user.name}; every session ended: log in again")

    return _call(args, action)


def _reset(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        reset = pb.ResetPasswordRequest(name=args.name)
        answer = admin.ResetPassword(reset, timeout=args.timeout)
        _print_user(answer.user)
        print(
            f"temporary password (shown once; it serves to choose a new one within "
            f"{TEMPORARY_PASSWORD_LASTS.days} days): {answer.temporary_password}"
        )

    return _call(args, action)


def _create(args: argparse.Namespace) -> int:
    user = pb.User(
        name=args.name,
        display_name=args.display_name,
        roles=[pb.Role.Value(f"ROLE_{role.upper()}") for role in args.role],
    )
    password = _password(args, f"first password for {args.name}: ")
    request = pb.CreateUserRequest(user=user, password=password)
    return _call(
        args, lambda admin, _: _print_user(admin.CreateUser(request, timeout=args.timeout).user)
    )


def _list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        for page in _every_page(
            lambda token: admin.ListUsers(
                pb.ListUsersRequest(page_token=token), timeout=args.timeout
            )
        ):
            for user in page.users:
                _print_user(user)

    return _call(args, action)


def _change(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        if args.change == "deactivate":
            deactivate = pb.DeactivateUserRequest(name=args.name, reason=args.reason)
            _print_user(admin.DeactivateUser(deactivate, timeout=args.timeout).user)
        elif args.change == "reactivate":
            reactivate = pb.ReactivateUserRequest(name=args.name)
            _print_user(admin.ReactivateUser(reactivate, timeout=args.timeout).user)
        else:
            step = pb.RecordUserStepRequest(name=args.name, step=STEPS[args.step])
            _print_user(admin.RecordUserStep(step, timeout=args.timeout).user)

    return _call(args, action)


def _report(args: argparse.Namespace) -> int:
    since = _timestamp(args.since, "--since") if args.since else None

    def action(admin: Stub, _: grpc.Channel) -> None:
        rows = [
            (
                _moment(a.attempt_time),
                a.user_name,
                a.reason,
                a.peer_ip,
                a.certificate,
                a.method or "Login",
            )
            for page in _every_page(
                lambda token: admin.ListRefusedLogins(
                    pb.ListRefusedLoginsRequest(since=since, page_token=token),
                    timeout=args.timeout,
                )
            )
            for a in page.refused_logins
        ]
        _print_rows(("TIME (UTC)", "USER", "REASON", "IP", "CERTIFICATE", "METHOD"), rows)

    return _call(args, action)


def bootstrap_administrator(
    config: NodeConfig, *, name: str, display_name: str, password: Callable[[], str]
) -> None:
    """Create the first system administrator on the node's own store, trained and acknowledged.

    Args:
        config: The node's configuration.
        name: The administrator's user name.
        display_name: The person's name.
        password: Gives their password, asked only once no administrator is found.

    Raises:
        PreconditionError: An active system administrator exists.
    """
    node = open_node(config, now=datetime.now(UTC))
    try:
        users = UserDirectory(node.engine, clock=system_clock)
        if users.has_active(Role.SYSTEM_ADMINISTRATOR):
            raise PreconditionError(
                "an active system administrator exists; they create users with `alpr users create`"
            )
        users.create(
            name=name,
            display_name=display_name,
            roles={Role.SYSTEM_ADMINISTRATOR},
            password=password(),
        )
        users.record_training(name)
        users.record_acknowledgement(name)
        AuditLog(node.engine, clock=system_clock).append(
            "user.bootstrapped",
            actor="system",
            agency=node.config.ori,
            details={"user": name, "roles": [Role.SYSTEM_ADMINISTRATOR]},
        )
    finally:
        node.engine.dispose()


def _bootstrap(args: argparse.Namespace) -> int:
    bootstrap_administrator(
        load_config(args.dir, os.environ),
        name=args.name,
        display_name=args.display_name,
        password=lambda: _password(args, f"password for {args.name}: "),
    )
    print(f"created system administrator {args.name}, training and acknowledgement recorded")
    return 0


def add_user_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `login` and `users` commands to the `alpr` parser."""
    login = commands.add_parser("login", help="log in to a node; the session goes in --session")
    login.add_argument("--user", required=True, help="your user name")
    login.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    _connection_options(login)
    login.set_defaults(run=_login)

    users = commands.add_parser("users", help="the agency's users (needs a login)")
    actions = users.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an account (no access until trained)")
    create.add_argument("name")
    create.add_argument("--display-name", required=True, help="the person's name")
    create.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    create.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="every account and what blocks its access")
    listing.set_defaults(run=_list)
    deactivate = actions.add_parser("deactivate", help="deactivate at once (ACC-4, ACC-5)")
    deactivate.add_argument("name")
    deactivate.add_argument("--reason", required=True)
    deactivate.set_defaults(run=_change, change="deactivate")
    reactivate = actions.add_parser("reactivate", help="make an account usable again")
    reactivate.add_argument("name")
    reactivate.set_defaults(run=_change, change="reactivate")
    record = actions.add_parser("record", help="record a step of ACC-2, done now")
    record.add_argument("name")
    record.add_argument("step", choices=sorted(STEPS))
    record.set_defaults(run=_change, change="record")
    report = actions.add_parser("report", help="refused logins, deactivated accounts' too")
    report.add_argument("--since", help="ISO 8601, UTC unless zoned")
    report.set_defaults(run=_report)
    passwd = actions.add_parser("passwd", help="change your password (no login needed)")
    passwd.add_argument("--user", required=True, help="your user name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the current, then the new, from stdin"
    )
    passwd.set_defaults(run=_passwd)
    reset = actions.add_parser("reset", help="a temporary password, to change at next login")
    reset.add_argument("name")
    reset.set_defaults(run=_reset)
    for command in (create, listing, deactivate, reactivate, record, report, passwd, reset):
        _connection_options(command)

    bootstrap = actions.add_parser("bootstrap", help="create the first system administrator")
    bootstrap.add_argument("name")
    bootstrap.add_argument("--dir", type=Path, required=True, help="the node's directory")
    bootstrap.add_argument("--display-name", required=True)
    bootstrap.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    bootstrap.set_defaults(run=_bootstrap)
