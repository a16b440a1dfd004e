"""The tables of the agency's own users (ACC-1 to ACC-5).

A user's password is kept only as its argon2id hash (`node.ed25519.hash_password`);
session tokens are signed, never stored. Refused logins are audit events, not rows here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


class UserRecord(SQLModel, table=True):
    """One user account of the agency; never deleted, only deactivated (ACC-5).

    `roles` holds the `node.profile.Role` values, sorted and comma-separated.
    `session_generation` grows at every deactivation, reactivation, password change and
    reset: a session token names the generation it was issued in, so one issued before is
    dead at once (ACC-4). `password_reset_at` is set by a reset: the temporary password
    serves only to choose a new one, within `node.users.TEMPORARY_PASSWORD_LASTS`.
    """

    __tablename__ = "user_account"

    name: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=200)
    roles: str = Field(max_length=200)
    password_hash: bytes
    active: bool
    session_generation: int = 0
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    trained_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    acknowledged_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    reoriented_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    deactivated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    deactivation_reason: str = Field(default="", max_length=500)
    password_reset_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
