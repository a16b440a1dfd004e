"""Test accounts: a password, and users made ready for access (ACC-2's steps recorded)."""

from __future__ import annotations

from node.profile import Role
from node.users import User, UserDirectory

PASSWORD = "correct horse battery"  # noqa: S105 (the test accounts' password)


def ready_user(users: UserDirectory, name: str, *roles: Role) -> User:
    """Create `name` with `roles` (a data user by default), trained and acknowledged now."""
    users.create(
        name=name, display_name=name.title(), roles=roles or {Role.DATA_USER}, password=PASSWORD
    )
    users.record_training(name)
    return users.record_acknowledgement(name)
