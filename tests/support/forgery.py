"""A careful forger's rewrite of an audit log: consistent with itself, not with its past."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from node.merkle import CompactRange


def truncate_log(engine: Engine, keep: int) -> None:
    """Cut the audit log to its first `keep` events, fixing the head and subtrees to match.

    What remains passes `AuditLog.verify`, and later appends and proofs work on it:
    only a checkpoint signed before the cut, held by someone else, tells.
    """
    with engine.begin() as connection:
        leaves = connection.execute(
            text("SELECT leaf_hash FROM audit_event WHERE seq <= :keep ORDER BY seq"),
            {"keep": keep},
        ).scalars()
        frontier = CompactRange()
        for leaf in leaves:
            frontier.append(bytes(leaf))
        connection.execute(text("DELETE FROM audit_event WHERE seq > :keep"), {"keep": keep})
        subtrees = connection.execute(text('SELECT level, "index" FROM audit_subtree')).all()
        for level, index in subtrees:
            if (index + 1) << level > keep:
                connection.execute(
                    text('DELETE FROM audit_subtree WHERE level = :level AND "index" = :index'),
                    {"level": level, "index": index},
                )
        connection.execute(
            text("UPDATE audit_head SET size = :keep, frontier = :frontier"),
            {"keep": keep, "frontier": frontier.to_bytes()},
        )
