"""One scheduler for an agency, however many gateway processes serve it.

APScheduler's job stores must never be shared between running schedulers: each would run
every job. Several `alpr serve` processes may serve one agency on one database (DESIGN,
"Storage and scale"), so they hold a lease in that database. The process holding it runs
the jobs; the others keep their schedulers paused and take the lease over once its
holder stops renewing it (it stopped, or died): within `LEASE` of its last renewal, or at
once when it stopped cleanly and let it go.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from node.clock import Clock
from node.store.engine import table_of
from node.store.models import SchedulerLease

LEASE = timedelta(seconds=60)
"""How long a lease lasts unless renewed."""
RENEW_EVERY = timedelta(seconds=15)
"""How often its holder renews it, and the others try to take it."""

_LEASE = table_of(SchedulerLease)


def this_process() -> str:
    """A name for this process among those serving the agency, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The scheduler lease, as one process takes, renews and lets go of it."""

    def __init__(self, engine: Engine, *, holder: str, clock: Clock) -> None:
        """Hold the lease in `engine` as `holder`, timed by `clock`."""
        self._engine = engine
        self._holder = holder
        self._clock = clock

    def hold(self) -> bool:
        """Renew the lease if ours, take it if free or expired; whether we hold it now."""
        now = self._clock()
        with self._engine.begin() as connection:
            renewed = connection.execute(
                update(_LEASE)
                .where(
                    _LEASE.c.id == 1,
                    or_(_LEASE.c.holder == self._holder, _LEASE.c.expires_at < now),
                )
                .values(holder=self._holder, expires_at=now + LEASE)
            )
            if renewed.rowcount:
                return True
            if connection.execute(select(_LEASE.c.id)).first() is not None:
                return False  # another holds it
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(_LEASE).values(id=1, holder=self._holder, expires_at=now + LEASE)
                )
        except IntegrityError:
            return False  # another process took it first
        return True

    def release(self) -> None:
        """Let the lease go, if ours: another process takes it at its next try."""
        with self._engine.begin() as connection:
            connection.execute(delete(_LEASE).where(_LEASE.c.holder == self._holder))
