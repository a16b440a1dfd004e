"""The scheduler's jobs on real nodes: persisted schedules, refresh with backoff, purge, sunsets."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from logging.handlers import QueueHandler
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from alpr.admin.v1 import agreements_pb2
from alpr.federation.v1 import agreement_pb2
from federation.client import PartnerClient
from federation.hotlist_sharing import HotlistSharing, PullResult
from gateway import jobs
from gateway.lease import LEASE, Lease
from gateway.logs import FIELDS
from node.errors import UnavailableError
from node.hotlists.entry import HotlistEntry, ListType
from node.reads import CameraKey, NewRead, Sent
from node.store import create_engine
from tests.support.agencies import TIMEOUT, Agency, agree, running_agencies
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD, LASD, SPD, Federation

JOB_ENDED = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
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


def _unreachable(lapd: Agency, _: pytest.MonkeyPatch) -> None:
    lapd.node.services.peers.update(LASD, {"endpoint": "localhost:1"})  # nobody listens


async def _pull_failing_unexpectedly(*_: object, **__: object) -> PullResult:
    raise RuntimeError("a bug, not a refusal")


def _unexpected(_: Agency, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HotlistSharing, "pull", _pull_failing_unexpectedly)


async def _partner_down(*_: object) -> None:
    raise UnavailableError("the partner went down before the acknowledgement")


def start(agency: Agency) -> AsyncIOScheduler:
    async def on_loop() -> AsyncIOScheduler:
        engine = create_engine(agency.node.config.store_url)
        return jobs.start_scheduler(agency.node.services, engine, paused=True)

    return agency.node.run(on_loop())


def job_runs(agency: Agency) -> list[dict[str, object]]:
    return [json.loads(e.details) for e in agency.audit_events("job.run")]


def _locked(*_: object, **__: object) -> object:
    """What a statement raises while another process holds SQLite's write lock (one long one)."""
    ids = ", ".join(["?"] * 500)
    statement = f"DELETE FROM partner_list WHERE id IN ({ids})"  # noqa: S608 (never run)
    raise OperationalError(statement, {}, sqlite3.OperationalError("database is locked"))


def refuse_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
    """Make `owner.name` fail as a locked database would, the first time it is called."""
    kept = getattr(owner, name)

    def refusing(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(owner, name, kept)
        return _locked(*args, **kwargs)

    monkeypatch.setattr(owner, name, refusing)


def fail_purge_and_miss_sunsets(scheduler: AsyncIOScheduler) -> datetime:
    """Let the scheduler run only `purge`, now, and `expire_sunsets`, missed; when that was due.

    APScheduler tells a missed run by the system's clock, not the node's.
    """
    now = datetime.now(UTC)
    scheduler.remove_all_jobs()
    scheduler.add_job(jobs.purge, "date", run_date=now, id="purge")
    due = now - jobs.MISFIRE_GRACE - timedelta(minutes=1)
    scheduler.add_job(jobs.expire_sunsets, "date", run_date=due, id="expire_sunsets")
    scheduler.resume()
    return due


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
                "apply_retention",
                "expire_sunsets",
                "notify_revocations",
                "purge",
                "refresh_partners",
                "sign_checkpoint",
                "witness_partners",
            ]
        engine.dispose()

    def test_keeps_its_jobs_in_the_database_without_a_statement_on_the_event_loop(
        self, pair: tuple[Agency, Agency]
    ) -> None:
        """Finding the jobs due and storing their next runs would hold up every call there."""
        lapd, _ = pair
        engine = create_engine(lapd.node.config.store_url)
        watching, ended = threading.Event(), threading.Semaphore(0)
        on_loop: list[str] = []
        off_loop: list[str] = []

        def record(*_: object) -> None:
            if watching.is_set():
                (on_loop if in_loop() else off_loop).append(threading.current_thread().name)

        def in_loop() -> bool:
            try:
                return asyncio.get_running_loop() is lapd.node.loop
            except RuntimeError:
                return False

        async def on_loop_start() -> AsyncIOScheduler:
            scheduler = jobs.start_scheduler(lapd.node.services, engine)  # not paused
            scheduler.add_listener(lambda _: ended.release(), JOB_ENDED)
            watching.set()  # from here on: the wakeup that start() asked for, and those after
            return scheduler

        event.listen(engine, "before_cursor_execute", record)
        # Every job's first run was due days ago (on the test's clock): each runs, or is
        # missed if past its grace time, and its next run is stored.
        scheduler = lapd.node.run(on_loop_start())
        try:
            for _ in range(6):
                assert ended.acquire(timeout=60)
        finally:
            lapd.node.run(_shutdown(scheduler))
            event.remove(engine, "before_cursor_execute", record)
            engine.dispose()
        assert off_loop
        assert on_loop == []

    def test_audits_a_run_that_failed_or_was_missed(
        self, pair: tuple[Agency, Agency], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """APScheduler only logs them: an auditor would see nothing of a run that did not happen."""
        lapd, _ = pair
        services = lapd.node.services
        monkeypatch.setattr(services.partner_lists, "purge_expired", _locked)
        audited: queue.Queue[str] = queue.Queue()
        append = services.audit.append

        def appending(kind: str, **given: object) -> object:
            record = append(kind, **given)  # type: ignore[arg-type]
            audited.put(kind)
            return record

        monkeypatch.setattr(services.audit, "append", appending)
        scheduler = start(lapd)
        try:
            due = fail_purge_and_miss_sunsets(scheduler)
            assert [audited.get(timeout=60) for _ in range(2)] == ["job.run", "job.run"]
        finally:
            lapd.node.run(_shutdown(scheduler))
        failed, missed = sorted(job_runs(lapd), key=lambda run: str(run["job"]), reverse=True)
        assert missed == {"job": "expire_sunsets", "ok": False, "missed": due.isoformat()}
        assert (failed["job"], failed["ok"]) == ("purge", False)
        error = str(failed["error"])
        assert error.startswith("OperationalError: (sqlite3.OperationalError) database is locked")
        assert len(error) == jobs.MAX_ERROR

    def test_logs_a_failed_or_missed_run_it_cannot_audit_and_goes_on(
        self, pair: tuple[Agency, Agency], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The database is down: the audit log cannot be written either."""
        lapd, _ = pair
        services = lapd.node.services
        monkeypatch.setattr(services.partner_lists, "purge_expired", _locked)
        monkeypatch.setattr(services.audit, "append", _locked)
        logged: queue.Queue[logging.LogRecord] = queue.Queue()
        handler = QueueHandler(logged)
        handler.setLevel(logging.ERROR)
        jobs.log.addHandler(handler)
        scheduler = start(lapd)
        try:
            due = fail_purge_and_miss_sunsets(scheduler)
            records = [logged.get(timeout=60) for _ in range(2)]
            assert scheduler.running
        finally:
            lapd.node.run(_shutdown(scheduler))
            jobs.log.removeHandler(handler)
        unaudited = sorted((getattr(r, FIELDS) for r in records), key=lambda run: run["job"])
        assert [run["job"] for run in unaudited] == ["expire_sunsets", "purge"]
        assert unaudited[0]["missed"] == due.isoformat()
        assert "database is locked" in unaudited[1]["error"]
        assert all("could not audit" in r.getMessage() for r in records)
        assert job_runs(lapd) == []

    def test_runs_its_jobs_only_while_this_process_holds_the_lease(
        self, pair: tuple[Agency, Agency], clock: ManualClock
    ) -> None:
        """Several processes may serve one agency: each job must run in one of them only."""
        lapd, _ = pair
        engine = create_engine(lapd.node.config.store_url)
        ours, theirs = (Lease(engine, holder=h, clock=clock) for h in ("ours", "theirs"))
        scheduler = start(lapd)
        try:
            assert theirs.hold()  # another process runs the jobs
            assert lapd.node.run(jobs.follow_lease(scheduler, ours)) is False
            assert scheduler.state == STATE_PAUSED
            clock.advance(LEASE + timedelta(seconds=1))  # and died
            assert lapd.node.run(jobs.follow_lease(scheduler, ours)) is True
            assert scheduler.state == STATE_RUNNING
            with engine.begin() as connection:  # ours lapsed (the database was away) ...
                connection.execute(text("DELETE FROM scheduler_lease"))
            assert theirs.hold()  # ... and the other process took it over
            assert lapd.node.run(jobs.follow_lease(scheduler, ours)) is False
            assert scheduler.state == STATE_PAUSED
        finally:
            lapd.node.run(_shutdown(scheduler))
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
        # In the match index already: the next camera read does not index the list.
        assert lapd.node.services.index.index.size(LASD) == 1
        run, summary = job_runs(lapd)
        assert (run["job"], run["partner"], run["ok"]) == ("refresh_partner", LASD, True)
        assert summary == {"job": "refresh_partners", "refreshed": [LASD], "failed": []}

    def test_hot6_a_list_pulled_stands_when_indexing_it_fails(
        self, pair: tuple[Agency, Agency], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lapd, _ = pair

        def failing() -> None:
            raise RuntimeError("out of memory")

        monkeypatch.setattr(lapd.node.services.index, "refresh", failing)
        scheduler = start(lapd)
        try:
            assert lapd.node.run(jobs.refresh_partners()) == [LASD]
        finally:
            lapd.node.run(_shutdown(scheduler))
        assert len(lapd.node.services.partner_lists.find("7ABC123")) == 1
        run, _ = job_runs(lapd)
        assert (run["partner"], run["ok"]) == (LASD, True)

    @pytest.mark.parametrize(
        ("breakage", "error"),
        [
            (_unreachable, "is unavailable: failed to connect"),
            (_unexpected, "unexpected RuntimeError"),
        ],
    )
    def test_a_failed_refresh_is_audited_and_retried_with_backoff(
        self,
        pair: tuple[Agency, Agency],
        clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        breakage: Callable[[Agency, pytest.MonkeyPatch], None],
        error: str,
    ) -> None:
        lapd, lasd = pair
        breakage(lapd, monkeypatch)
        scheduler = start(lapd)
        try:
            with caplog.at_level(logging.WARNING, logger=jobs.log.name):
                assert lapd.node.run(jobs.refresh_partners()) == []
            retry = scheduler.get_job(f"retry-{LASD}")
            assert retry.args == (LASD, 1)
            assert retry.trigger.run_date == clock() + timedelta(minutes=1)
        finally:
            lapd.node.run(_shutdown(scheduler))
        run, summary = job_runs(lapd)
        assert (run["ok"], run["retry_in_seconds"]) == (False, 60)
        assert error in str(run["error"])
        assert summary == {"job": "refresh_partners", "refreshed": [], "failed": [LASD]}
        # An unexpected error's trace is in the node's log under the id the audit names.
        traced = {getattr(r, FIELDS)["error_id"] for r in caplog.records if r.exc_info}
        assert traced == set(re.findall(r"error id (\w+)", str(run["error"])))
        assert lasd.audit_events("exchange.hotlist_served") == []

    def test_a_refresh_that_raises_does_not_hold_up_the_partners_after_it(
        self,
        federation: Federation,
        tmp_path: Path,
        clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with running_agencies(federation, tmp_path, clock, (LAPD, LASD, SPD)) as found:
            lapd = found[LAPD]
            for issuer in (found[LASD], found[SPD]):
                lapd.add_peer(issuer)
                issuer.add_peer(lapd)
                agree(issuer, lapd, we_grant=[agreement_pb2.GRANT_RECEIVE_HOTLISTS], they_grant=[])
                issuer.node.services.hotlists.create_list("stolen")
                issuer.node.services.hotlists.add("stolen", [STOLEN])
            refuse_once(monkeypatch, jobs, "_audit")  # the first partner's refresh raises
            scheduler = start(lapd)
            try:
                refreshed = lapd.node.run(jobs.refresh_partners())
            finally:
                lapd.node.run(_shutdown(scheduler))
            *_, summary = job_runs(lapd)
            assert summary["job"] == "refresh_partners"
            assert (summary["failed"], summary["refreshed"], refreshed) == ([LASD], [SPD], [SPD])

    def test_a_failed_refresh_is_retried_even_when_its_audit_fails(
        self, pair: tuple[Agency, Agency], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Else the backoff ends there, and the partner's lists expire before the next refresh."""
        lapd, _ = pair
        _unexpected(lapd, monkeypatch)
        refuse_once(monkeypatch, lapd.node.services.audit, "append")
        scheduler = start(lapd)
        try:
            with pytest.raises(OperationalError, match="database is locked"):
                lapd.node.run(jobs.refresh_partner(LASD))
            assert scheduler.get_job(f"retry-{LASD}").args == (LASD, 1)
        finally:
            lapd.node.run(_shutdown(scheduler))

    def test_a_failed_refresh_is_retried_when_its_agreements_cannot_be_read(
        self, pair: tuple[Agency, Agency], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The retry reads them again, and ends if no agreement lets us receive the lists."""
        lapd, _ = pair
        _unexpected(lapd, monkeypatch)
        refuse_once(monkeypatch, lapd.node.services.agreements, "list")
        scheduler = start(lapd)
        try:
            assert not lapd.node.run(jobs.refresh_partner(LASD))
            assert scheduler.get_job(f"retry-{LASD}").args == (LASD, 1)
        finally:
            lapd.node.run(_shutdown(scheduler))
        [run] = job_runs(lapd)
        assert (run["ok"], run["retry_in_seconds"]) == (False, 60)

    def test_retries_end_once_no_agreement_lets_us_receive_the_partners_lists(
        self, pair: tuple[Agency, Agency], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A partner down past its agreement's sunset is not pulled every hour for ever."""
        lapd, _ = pair
        _unreachable(lapd, monkeypatch)
        scheduler = start(lapd)
        try:
            assert lapd.node.run(jobs.refresh_partners()) == []
            assert scheduler.get_job(f"retry-{LASD}").args == (LASD, 1)
            clock.advance(timedelta(days=30))  # the agreement's sunset
            assert not lapd.node.run(jobs.refresh_partner(LASD, 1))
            # Not replaced by the next retry, (LASD, 2): that one was the last.
            assert scheduler.get_job(f"retry-{LASD}").args == (LASD, 1)
        finally:
            lapd.node.run(_shutdown(scheduler))
        *_, last = job_runs(lapd)
        assert (last["ok"], last["retry_in_seconds"]) == (False, None)
        assert "no agreement in force" in str(last["error"])

    def test_refresh_is_audited_even_with_no_partner_to_refresh(
        self, pair: tuple[Agency, Agency]
    ) -> None:
        _, lasd = pair  # LASD lets LAPD receive its lists; nobody lets LASD receive any
        scheduler = start(lasd)
        try:
            assert lasd.node.run(jobs.refresh_partners()) == []
        finally:
            lasd.node.run(_shutdown(scheduler))
        assert job_runs(lasd) == [{"job": "refresh_partners", "refreshed": [], "failed": []}]

    def test_aud6_purge_flags_an_exchange_left_unacknowledged(
        self,
        pair: tuple[Agency, Agency],
        clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        lapd, lasd = pair
        monkeypatch.setattr(PartnerClient, "acknowledge_receipts", _partner_down)
        pulled = lapd.node.run(lapd.node.services.sharing.pull(LASD))
        assert not pulled.acknowledged
        scheduler = start(lasd)
        try:
            jobs.purge()  # just answered: not yet overdue
            clock.advance(jobs.ACKNOWLEDGE_WITHIN)
            with caplog.at_level(logging.WARNING, logger=jobs.log.name):
                jobs.purge()
        finally:
            lasd.node.run(_shutdown(scheduler))
        assert [run["unacknowledged"] for run in job_runs(lasd)] == [{}, {LAPD: 1}]
        [warning] = caplog.records
        assert getattr(warning, FIELDS) == {"by_partner": {LAPD: 1}, "oldest": pulled.exchange_id}

    def test_a_revocation_the_partner_missed_is_sent_until_it_takes_it(
        self, pair: tuple[Agency, Agency], clock: ManualClock
    ) -> None:
        """Both sides stop: the partner, down when we revoked, stops once it comes back."""
        lapd, lasd = pair
        lapd.node.run(lapd.node.services.sharing.pull(LASD))
        [agreement] = lasd.node.services.agreements.list()
        endpoint = lasd.node.services.peers.require(LAPD).endpoint
        lasd.node.services.peers.update(LAPD, {"endpoint": "localhost:1"})  # LAPD is down
        revoked = lasd.admin.RevokeAgreement(
            agreements_pb2.RevokeAgreementRequest(agreement_id=agreement.id, reason="audit"),
            timeout=TIMEOUT,
        )
        assert not revoked.partner_notified
        scheduler = start(lasd)
        try:
            [missed] = lasd.node.run(jobs.notify_revocations()).values()
            assert missed.startswith("owed still")
            assert len(lapd.node.services.partner_lists.find(STOLEN.plate)) == 1
            lasd.node.services.peers.update(LAPD, {"endpoint": endpoint})  # back up
            assert lasd.node.run(jobs.notify_revocations()) == {agreement.id: "taken"}
            assert lasd.node.run(jobs.notify_revocations()) == {}  # taken: owed no more
        finally:
            lasd.node.run(_shutdown(scheduler))
        assert lapd.node.services.agreements.require(agreement.id).state.value == "revoked"
        assert lapd.node.services.partner_lists.find(STOLEN.plate) == []
        assert [run["job"] for run in job_runs(lasd)].count("notify_revocations") == 3

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
            "refresh_partners",
            "purge",
            "expire_sunsets",
        ]


async def _shutdown(scheduler: AsyncIOScheduler) -> None:
    await jobs.stop_scheduler(scheduler)


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


class TestRetentionJob:
    def test_ret2_archives_reads_past_the_profiles_period_and_is_audited(
        self, pair: tuple[Agency, Agency], clock: ManualClock
    ) -> None:
        lapd, _ = pair
        services = lapd.node.services
        read = NewRead(plate="7ABC123", confidence=0.9, captured_at=START)
        key = CameraKey(key="r-1", field="reads[0].camera_read_id", digest="0" * 64)
        services.reads.take("cam-1", [Sent(key=key, reads=[read])])
        scheduler = start(lapd)
        try:
            assert jobs.apply_retention() == (0, 0, 0)
            clock.advance(timedelta(days=2 * 366))
            assert jobs.apply_retention() == (1, 0, 0)  # LAPD's profile: archived at two years
        finally:
            lapd.node.run(_shutdown(scheduler))
        runs = [run for run in job_runs(lapd) if run["job"] == "apply_retention"]
        assert [(run["archived"], run["deleted"]) for run in runs] == [(0, 0), (1, 0)]
        # The camera's id for the read is kept a day, then forgotten by the same job.
        assert [run["camera_ids_forgotten"] for run in runs] == [0, 1]
