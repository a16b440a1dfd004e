"""The scheduler's jobs on real nodes: persisted schedules, refresh with backoff, purge, sunsets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text

from alpr.federation.v1 import agreement_pb2
from gateway import jobs
from node.hotlists.entry import HotlistEntry, ListType
from node.store import create_engine
from tests.support.agencies import Agency, agree, running_agencies
from tests.support.clock import ManualClock
from tests.support.pki import LAPD, LASD, Federation

STOLEN = HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE)


@pytest.fixture
def pair(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[tuple[Agency, Agency]]:
    with running_agencies(federation, tmp_path, clock, (LAPD, LASD), {LAPD: database_url}) as found:
        lapd, lasd = found[LAPD], found[LASD]
        lapd.add_peer(lasd)
        lasd.add_peer(lapd)
        agree(lasd, lapd, we_grant=[agreement_pb2.GRANT_RECEIVE_HOTLISTS], they_grant=[], days=30)
        lasd.node.services.hotlists.create_list("stolen")
        lasd.node.services.hotlists.add("stolen", [STOLEN])
        yield lapd, lasd


def start(agency: Agency) -> AsyncIOScheduler:
    async def on_loop() -> AsyncIOScheduler:
        engine = create_engine(agency.node.config.store_url)
        return jobs.start_scheduler(agency.node.services, engine, paused=True)

    return agency.node.run(on_loop())


def job_runs(agency: Agency) -> list[dict[str, object]]:
    return [json.loads(e.details) for e in agency.audit_events("job.run")]


class TestSchedule:
    def test_succeeds_persisting_jobs_so_a_restart_loses_none(
        self, pair: tuple[Agency, Agency]
    ) -> None:
        lapd, _ = pair
        for _ in range(2):  # a start, then a restart over the same database
            scheduler = start(lapd)
            lapd.node.run(_shutdown(scheduler))
        engine = create_engine(lapd.node.config.store_url)
        with engine.connect() as connection:
            ids = connection.execute(text("SELECT id FROM scheduler_job ORDER BY id")).scalars()
            assert list(ids) == [
                "expire_sunsets",
                "purge",
                "refresh_partners",
                "sign_checkpoint",
                "witness_partners",
            ]
        engine.dispose()

    @pytest.mark.parametrize(
        ("attempt", "minutes"), [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (30, 60)]
    )
    def test_retry_delay_doubles_up_to_an_hour(self, attempt: int, minutes: int) -> None:
        assert jobs.retry_delay(attempt) == timedelta(minutes=minutes)


class TestJobs:
    def test_hot6_refresh_pulls_every_partner_that_lets_us(
        self, pair: tuple[Agency, Agency]
    ) -> None:
        lapd, _ = pair
        scheduler = start(lapd)
        try:
            assert lapd.node.run(jobs.refresh_partners()) == [LASD]
        finally:
            lapd.node.run(_shutdown(scheduler))
        assert len(lapd.node.services.partner_lists.find("7ABC123")) == 1
        [run] = job_runs(lapd)
        assert (run["job"], run["partner"], run["ok"]) == ("refresh_partner", LASD, True)

    def test_a_failed_refresh_is_retried_with_backoff(
        self, pair: tuple[Agency, Agency], clock: ManualClock
    ) -> None:
        lapd, lasd = pair
        lapd.node.services.peers.update(LASD, {"endpoint": "localhost:1"})  # nobody listens
        scheduler = start(lapd)
        try:
            assert lapd.node.run(jobs.refresh_partner(LASD)) is False
            retry = scheduler.get_job(f"retry-{LASD}")
            assert retry.args == (LASD, 1)
            assert retry.trigger.run_date == clock() + timedelta(minutes=1)
        finally:
            lapd.node.run(_shutdown(scheduler))
        [run] = job_runs(lapd)
        assert (run["ok"], run["retry_in_seconds"]) == (False, 60)
        assert "unreachable" in str(run["error"])
        assert lasd.audit_events("exchange.hotlist_served") == []

    def test_purge_and_sunset_jobs_run_and_are_audited(
        self, pair: tuple[Agency, Agency], clock: ManualClock
    ) -> None:
        lapd, _ = pair
        scheduler = start(lapd)
        try:
            lapd.node.run(jobs.refresh_partners())
            clock.advance(timedelta(days=30))
            assert jobs.purge() == [LASD]
            assert len(jobs.expire_sunsets()) == 1
        finally:
            lapd.node.run(_shutdown(scheduler))
        assert [run["job"] for run in job_runs(lapd)] == [
            "refresh_partner",
            "purge",
            "expire_sunsets",
        ]


async def _shutdown(scheduler: AsyncIOScheduler) -> None:
    scheduler.shutdown(wait=False)


class TestCheckpointJob:
    def test_aud5_signs_a_checkpoint_of_the_log_including_its_own_run(
        self, pair: tuple[Agency, Agency]
    ) -> None:
        lapd, _ = pair
        scheduler = start(lapd)
        try:
            size = jobs.sign_checkpoint()
        finally:
            lapd.node.run(_shutdown(scheduler))
        services = lapd.node.services
        assert size == services.audit.head().size
        note = services.checkpoints.latest()
        assert note is not None
        assert note.split(b"\n")[1] == str(size).encode()
        assert services.checkpoints.verify(services.audit) >= 1
        assert [run["job"] for run in job_runs(lapd)] == ["sign_checkpoint"]
