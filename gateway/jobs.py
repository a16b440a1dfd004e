"""The node's scheduled jobs, run by APScheduler in the node's event loop.

Jobs are stored in the node's own database (APScheduler's SQLAlchemy job store), so a
restart loses no schedule, and each is a module-level function APScheduler names by
reference. Every run is audited as ``job.run``: one that raised or was missed too, with
``ok`` false (`_audit_unsuccessful`), where APScheduler would only log it. The scheduler
reads and writes that store in a worker thread, never on the event loop (`_Scheduler`).
Of several processes serving the agency, only the one holding the scheduler lease runs
the jobs (`gateway.lease`); the others' schedulers wait, paused, to take over.

- ``refresh_partners`` (every 6 hours): pull every partner's hotlists that an agreement
  in force lets us receive, well before their 24 hours run out (HOT-6). A failed pull,
  whatever the error, is audited and retried for that partner alone with exponential
  backoff. A list taken is indexed for matching at once, not by the next read committed.
- ``purge`` (every 5 minutes): delete partner lists past their expiry (HOT-6; they
  stopped matching at that instant already) and nonces too old to be replayed, and
  flag exchanges we answered that were left unacknowledged (AUD-6).
- ``expire_sunsets`` (every 15 minutes): mark agreements past their sunset expired
  (SHR-3; nothing flowed under them from that instant already).
- ``notify_revocations`` (every 5 minutes): send each revocation notice a partner could
  not be given when our operator revoked, until it takes it, so that the partner stops
  using what it holds under the agreement too.
- ``sign_checkpoint`` (every 10 minutes): sign and keep a checkpoint of the audit log,
  which `alpr audit verify` checks and auditors and partners can hold the node to (AUD-5).
- ``apply_retention`` (every day): archive reads past the profile's read period and
  delete them past its hard limit, sparing those under a legal hold (RET-1…RET-4); and
  forget the ids cameras gave frames and reads more than a day ago (`node.reads.KEEP_KEYS`).
- ``witness_partners`` (every 10 minutes): ask every registered partner, agreement or
  not, for its latest checkpoint; check it is consistent with the last one we hold and
  cosign it, or raise the alarm (AUD-7).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING, STATE_STOPPED
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from federation.terms import Grant
from gateway.lease import RENEW_EVERY, Lease, this_process
from gateway.logs import fields
from gateway.services import Services
from node.errors import NodeError

log = logging.getLogger("alpr.jobs")
JOB_TABLE = "scheduler_job"
REFRESH_EVERY = timedelta(hours=6)
PURGE_EVERY = timedelta(minutes=5)
SUNSET_EVERY = timedelta(minutes=15)
CHECKPOINT_EVERY = timedelta(minutes=10)
RETENTION_EVERY = timedelta(days=1)
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=1)
FIRST_RUN_AFTER = timedelta(seconds=10)
# A run that cannot start within this of its time (the node was down, or busy) is missed.
MISFIRE_GRACE = timedelta(hours=1)
# The most of a failed run's error its audit record keeps: the trace is in the node's log.
MAX_ERROR = 500
# A requester acknowledges in the same pull that got our receipt; longer than this is flagged.
ACKNOWLEDGE_WITHIN = timedelta(minutes=10)

_services: Services | None = None
_scheduler: AsyncIOScheduler | None = None
_following: asyncio.Task[None] | None = None


class _Scheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An `AsyncIOScheduler` that reads and writes its job store in a worker thread.

    At every wakeup upstream's finds the jobs due and stores each one's next run on the
    event loop: statements on the node's database, which would hold up every call of the
    node while the database is slow to answer, or SQLite's write lock is held by another
    process. Here that runs in the loop's default executor (the node's worker threads),
    and the jobs found due are handed back to the loop, where they run.
    """

    def wakeup(self) -> None:
        """Process the jobs due now (called from any thread, as upstream's)."""
        self._eventloop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._stop_timer()
        processing = self._eventloop.run_in_executor(None, self._process_jobs)
        processing.add_done_callback(self._processed)

    def _processed(self, processing: asyncio.Future[float | None]) -> None:
        """Wake up again when the next job is due (or, after a failure, to try again)."""
        if processing.cancelled() or self.state == STATE_STOPPED:
            return
        if (error := processing.exception()) is not None:
            log.error("the scheduler could not process its jobs", exc_info=error)
            self._start_timer(self.jobstore_retry_interval)
            return
        self._start_timer(processing.result())

    def _create_default_executor(self) -> AsyncIOExecutor:
        return _LoopExecutor()


class _LoopExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Starts each job on the event loop, whichever thread found it due."""

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._eventloop.call_soon_threadsafe(super()._do_submit_job, job, run_times)


def retry_delay(attempt: int) -> timedelta:
    """How long to wait before retry `attempt` (1, 2, ...): doubling from 1 minute to 1 hour."""
    return min(FIRST_RETRY * (1 << max(attempt - 1, 0)), LAST_RETRY)


def _bound() -> Services:
    if _services is None:
        raise RuntimeError("the scheduler's jobs ran before start_scheduler bound the services")
    return _services


def _audit(job: str, **details: object) -> None:
    services = _bound()
    services.audit.append(
        "job.run",
        actor=services.sharing.spiffe_id,
        agency=services.identity.ori,
        details={"job": job, **details},
    )


def _audit_unsuccessful(event: JobExecutionEvent) -> None:
    """Audit a run that raised or was missed past its grace time; APScheduler only logs it.

    APScheduler calls this on the event loop, where its executor hands back what became of a
    run, so the audit log (the node's database) is written in a worker thread.
    """
    if event.exception is not None:
        error = f"{type(event.exception).__name__}: {event.exception}"
        outcome: dict[str, object] = {"error": error[:MAX_ERROR]}
    else:
        outcome = {"missed": event.scheduled_run_time.isoformat()}
    asyncio.get_running_loop().run_in_executor(None, _audit_or_log, event.job_id, outcome)


def _audit_or_log(job: str, outcome: dict[str, object]) -> None:
    """Audit a failed or missed run; when even that fails (the database is down), log it.

    Nothing is raised: the worker thread has no one to raise it to, and the scheduler goes on.
    """
    try:
        _audit(job, ok=False, **outcome)
    except Exception:  # any failure: the run is in the node's log instead
        log.exception("could not audit a job's run", extra=fields(job=job, ok=False, **outcome))


def _failure(error: Exception, partner_ori: str) -> str:
    """What the audit log says of a failed refresh; an unexpected error's trace goes to the log."""
    if isinstance(error, NodeError):
        return error.diagnostics()
    error_id = uuid.uuid4().hex[:12]
    log.exception(
        "unexpected error refreshing a partner",
        extra=fields(partner=partner_ori, error_id=error_id),
    )
    return f"unexpected {type(error).__name__}; see the node log, error id {error_id}"


async def refresh_partner(partner_ori: str, attempt: int = 0) -> bool:
    """Pull one partner's hotlists; on failure schedule the next retry. Whether it worked.

    Any failure, an unexpected one too, is audited and retried with backoff: APScheduler
    would only log an exception that escaped, and a retry job that raised would be gone.
    Retries end once no agreement in force lets us receive the partner's lists (its
    sunset passed, it was revoked, or the partner removed): nothing is left to refresh.
    """
    services = _bound()
    try:
        result = await services.pull_partner(partner_ori)
    except Exception as error:  # any failure: audited and retried, never lost
        failure = _failure(error, partner_ori)
        delay = await _retry(partner_ori, attempt + 1)  # first: the audit may fail as well
        await asyncio.to_thread(_audit, "refresh_partner", partner=partner_ori, ok=False,
                                error=failure, retry_in_seconds=delay)  # fmt: skip
        return False
    await asyncio.to_thread(_audit, "refresh_partner", partner=partner_ori, ok=True,
                            version=result.version, added=result.added, ended=result.ended,
                            refused=result.refused)  # fmt: skip
    return True


async def _retry(partner_ori: str, attempt: int) -> int | None:
    """Schedule retry `attempt` of a partner's refresh; its delay in seconds, or None if none.

    A partner no agreement in force lets us receive lists from gets none. Whether one does
    is read from the database, which may be what failed the pull (locked, or down): then
    the retry is scheduled all the same, and checks again. The retry chain is lost only if
    the job store, the same database, cannot take the retry either.
    """
    try:
        giving = partner_ori in await asyncio.to_thread(_giving_us_lists)
    except Exception:  # any failure: retrying is what keeps the partner's lists fresh
        log.exception(
            "could not tell whether a partner still gives us lists; retrying",
            extra=fields(partner=partner_ori),
        )
        giving = True
    if not giving:
        return None
    delay = retry_delay(attempt)
    if _scheduler is not None:  # the job store is the node's database: not on the loop
        await asyncio.to_thread(
            _scheduler.add_job,
            refresh_partner,
            "date",
            run_date=_bound().clock() + delay,
            args=[partner_ori, attempt],
            id=f"retry-{partner_ori}",
            replace_existing=True,
        )
    return int(delay.total_seconds())


async def refresh_partners() -> list[str]:
    """Pull from every partner that lets us receive its hotlists; the partners refreshed.

    The run is audited even when no partner lets us receive anything, so an auditor
    sees that the 6-hourly refresh ran (each partner's pull is audited too). A partner's
    refresh that raises (its own audit could not be written) is counted failed, and the
    partners after it are refreshed all the same.
    """
    refreshed: list[str] = []
    failed: list[str] = []
    for partner in await asyncio.to_thread(_giving_us_lists):
        try:
            done = await refresh_partner(partner)
        except Exception:  # any failure: the next partner's lists must not wait 6 hours
            log.exception("a partner's refresh failed", extra=fields(partner=partner))
            done = False
        (refreshed if done else failed).append(partner)
    await asyncio.to_thread(_audit, "refresh_partners", refreshed=refreshed, failed=failed)
    return refreshed


def _giving_us_lists() -> list[str]:
    """The partners an agreement in force lets us receive hotlists from, in agreement order."""
    services, partners = _bound(), []
    for agreement in services.agreements.list():
        partner = agreement.terms.partner_of(services.identity.ori)
        if partner not in partners and services.agreements.in_force(
            partner, Grant.RECEIVE_HOTLISTS, grantor=partner
        ):
            partners.append(partner)
    return partners


def purge() -> list[str]:
    """Delete expired partner lists and old nonces, and flag unacknowledged exchanges.

    An exchange we answered whose acknowledgement has not come within
    `ACKNOWLEDGE_WITHIN` is flagged (AUD-6) at every run until it comes: counted by
    partner in the run's audit record and warned of in the log, where an operator sees
    it; `alpr receipts verify` lists each one.

    Returns:
        The partners whose lists went.
    """
    services = _bound()
    expired = services.partner_lists.purge_expired()
    nonces = services.checker.forget_old_nonces()
    overdue = services.ledger.unacknowledged(ACKNOWLEDGE_WITHIN)
    by_partner = dict(Counter(record.partner_ori for record in overdue))
    if overdue:
        log.warning(
            "exchanges left unacknowledged by partners",
            extra=fields(by_partner=by_partner, oldest=overdue[0].id),
        )
    _audit("purge", expired_partner_lists=expired, nonces=nonces, unacknowledged=by_partner)
    return expired


def expire_sunsets() -> list[str]:
    """Mark agreements past their sunset expired; their ids."""
    expired = _bound().agreements.expire_sunsets()
    _audit("expire_sunsets", expired=expired)
    return expired


def sign_checkpoint() -> int:
    """Audit the run, then sign a checkpoint of the log that includes it; its tree size."""
    services = _bound()
    _audit("sign_checkpoint")
    head = services.audit.head()
    services.checkpoints.sign(head)
    return head.size


def apply_retention() -> tuple[int, int, int]:
    """Apply the profile's retention to the agency's reads and forget old camera ids.

    Returns:
        The reads archived, deleted, and kept only by a hold.
    """
    services = _bound()
    done = services.retention.run(actor=services.sharing.spiffe_id, agency=services.identity.ori)
    forgotten = services.reads.forget_keys()
    _audit("apply_retention", archived=done.archived, deleted=done.deleted, held=done.held,
           camera_ids_forgotten=forgotten)  # fmt: skip
    return done.archived, done.deleted, done.held


async def notify_revocations() -> dict[str, str]:
    """Send every revocation notice still owed; what became of each, by agreement."""
    services = _bound()
    outcomes: dict[str, str] = {}
    for owed in await asyncio.to_thread(services.agreements.owed_notices):
        try:
            peer = await asyncio.to_thread(services.peers.require, owed.partner_ori)
            await services.partners.revoke_agreement(peer, owed.notice)
        except NodeError as error:
            outcomes[owed.agreement_id] = f"owed still: {error.diagnostics()}"
            continue
        await asyncio.to_thread(services.agreements.notice_taken, owed.agreement_id)
        outcomes[owed.agreement_id] = "taken"
    await asyncio.to_thread(_audit, "notify_revocations", outcomes=outcomes)
    return outcomes


async def witness_partners() -> dict[str, str]:
    """Witness every partner's latest checkpoint; what became of each, by ORI."""
    services = _bound()
    outcomes: dict[str, str] = {}
    for peer in await asyncio.to_thread(services.peers.every):
        try:
            outcomes[peer.ori] = (await services.witness.observe_latest(peer)).value
        except NodeError as error:
            outcomes[peer.ori] = f"not witnessed: {error.diagnostics()}"
    await asyncio.to_thread(_audit, "witness_partners", outcomes=outcomes)
    return outcomes


def start_scheduler(
    services: Services, engine: Engine, *, paused: bool = False
) -> AsyncIOScheduler:
    """Bind `services`, then start the scheduler on the running loop with jobs kept in `engine`.

    It runs the jobs only while this process holds the scheduler lease (`follow_lease`).

    Args:
        services: The node's services, which the jobs use.
        engine: The node's database, where the jobs are kept.
        paused: Keep the jobs but run none (tests run them by hand, on their own clock).
    """
    global _services, _scheduler, _following  # noqa: PLW0603 (APScheduler calls module-level functions)
    _services = services
    scheduler = _Scheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
        },
        timezone="UTC",
    )
    soon = services.clock() + FIRST_RUN_AFTER
    for job, every in (
        (refresh_partners, REFRESH_EVERY),
        (purge, PURGE_EVERY),
        (expire_sunsets, SUNSET_EVERY),
        (notify_revocations, PURGE_EVERY),
        (sign_checkpoint, CHECKPOINT_EVERY),
        (witness_partners, CHECKPOINT_EVERY),
        (apply_retention, RETENTION_EVERY),
    ):
        scheduler.add_job(
            job,
            "interval",
            seconds=every.total_seconds(),
            next_run_time=soon,
            id=job.__name__,
            replace_existing=True,
        )
    scheduler.add_listener(_audit_unsuccessful, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    _scheduler = scheduler
    if not paused:
        lease = Lease(engine, holder=this_process(), clock=services.clock)
        _following = asyncio.get_running_loop().create_task(_follow(scheduler, lease))
    log.info("scheduler started", extra=fields(jobs=[j.id for j in scheduler.get_jobs()]))
    return scheduler


async def stop_scheduler(scheduler: AsyncIOScheduler) -> None:
    """Stop `scheduler`, and let the lease go for another process to take over at once."""
    global _following  # noqa: PLW0603 (the task `start_scheduler` began)
    scheduler.shutdown(wait=False)
    if _following is not None:
        _following.cancel()
        await asyncio.gather(_following, return_exceptions=True)
        _following = None


async def _follow(scheduler: AsyncIOScheduler, lease: Lease) -> None:
    """Follow the lease every `RENEW_EVERY` while the node runs; let it go at the end."""
    try:
        while True:
            await follow_lease(scheduler, lease)
            await asyncio.sleep(RENEW_EVERY.total_seconds())
    finally:
        await asyncio.shield(asyncio.to_thread(lease.release))


async def follow_lease(scheduler: AsyncIOScheduler, lease: Lease) -> bool:
    """Take or renew the lease; run the jobs if we hold it, pause them if not; whether we do.

    A database that fails to answer leaves the scheduler as it was, until the next try: the
    lease outlasts a few missed renewals.
    """
    try:
        held = await asyncio.to_thread(lease.hold)
    except (OperationalError, PoolTimeoutError) as error:
        log.warning("could not renew the scheduler lease", extra=fields(error=str(error)))
        return scheduler.state == STATE_RUNNING  # type: ignore[no-any-return]
    if held and scheduler.state == STATE_PAUSED:
        log.info("this process runs the scheduled jobs now")
        scheduler.resume()
    elif not held and scheduler.state == STATE_RUNNING:
        log.info("another process runs the scheduled jobs now")
        scheduler.pause()
    return held
