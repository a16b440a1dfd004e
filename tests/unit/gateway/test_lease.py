"""The scheduler lease: one process of those serving an agency runs its jobs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from gateway.lease import LEASE, Lease
from tests.support.clock import ManualClock


def leases(engine: Engine, clock: ManualClock) -> tuple[Lease, Lease]:
    """Two processes serving one agency."""
    return Lease(engine, holder="a", clock=clock), Lease(engine, holder="b", clock=clock)


class TestLease:
    def test_one_holds_it_and_renews_it_while_the_other_waits(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        a, b = leases(engine, clock)
        assert (a.hold(), b.hold()) == (True, False)
        clock.advance(LEASE - timedelta(seconds=1))
        assert (a.hold(), b.hold()) == (True, False)  # renewed: a full lease from now
        clock.advance(LEASE - timedelta(seconds=1))
        assert b.hold() is False

    def test_the_other_takes_it_over_once_it_expires_unrenewed(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        """The holder died: within a lease, another process runs the jobs."""
        a, b = leases(engine, clock)
        assert a.hold()
        clock.advance(LEASE + timedelta(seconds=1))
        assert (b.hold(), a.hold()) == (True, False)

    def test_the_other_takes_it_at_once_when_the_holder_lets_it_go(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        a, b = leases(engine, clock)
        assert a.hold()
        b.release()  # not b's: nothing happens
        assert b.hold() is False
        a.release()
        assert (b.hold(), a.hold()) == (True, False)
