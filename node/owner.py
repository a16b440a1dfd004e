"""Whose database this is: the agency a node's store belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from node.ed25519 import fingerprint
from node.errors import NodeError
from node.store.models import NodeIdentity


class OwnerMismatchError(NodeError):
    """The database belongs to another agency or another signing key."""


def record_owner(
    engine: Engine, *, ori: str, name: str, federation: str, public_key: bytes, now: datetime
) -> None:
    """Write the owner row of a new database (the private key never enters it, SEC-2)."""
    with Session(engine) as session:
        session.add(
            NodeIdentity(
                ori=ori,
                name=name,
                federation=federation,
                signing_public_key=public_key,
                created_at=now,
            )
        )
        session.commit()


def check_owner(engine: Engine, *, ori: str, federation: str, public_key: bytes) -> NodeIdentity:
    """Return the owner row if it names this agency, federation and signing key.

    Raises:
        OwnerMismatchError: The database has no owner or belongs to someone else.
    """
    with Session(engine) as session:
        owner = session.get(NodeIdentity, 1)
    if owner is None:
        raise OwnerMismatchError("the database has no owner; create the node with `alpr init`")
    if (owner.ori, owner.federation) != (ori, federation):
        raise OwnerMismatchError(
            f"the database belongs to {owner.ori} in {owner.federation}, "
            f"but the configuration names {ori} in {federation}"
        )
    if owner.signing_public_key != public_key:
        raise OwnerMismatchError(
            f"the database was created with signing key {fingerprint(owner.signing_public_key)}, "
            f"not the configured key {fingerprint(public_key)}"
        )
    return owner
