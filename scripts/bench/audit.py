"""Benchmark: the audit log's appends, proofs and verification, against plain inserts.

    python scripts/bench/audit.py [--appends 2000] [--sizes 1000000 10000000] [--proofs 200]
                                  [--postgres URL]

1. Appends with the Merkle tree maintained (`AuditLog.append`: head, frontier and
   completed subtrees in one transaction per event), on SQLite and on PostgreSQL,
   against the baseline measured in the same run: plain inserts of the same event
   rows, one transaction each, with no head and no subtrees. PostgreSQL is a throwaway
   cluster the script starts (as the tests do), or the server `--postgres` names.
2. A log grown on SQLite to each of `--sizes` (loaded in bulk, as `append` would have
   written it, which `verify` then confirms), and at each size the time of inclusion
   and consistency proofs at random places, p50 and p99.
3. `AuditLog.verify` (every event replayed from its fields) at the first size.

Targets (issue "Audit transparency"): appends at least half the plain rate; a proof
under 5 ms at 10M events; verifying 1M events in under 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.audit import AuditLog, canonical_json, leaf_bytes  # noqa: E402
from node.merkle import CompactRange, leaf_hash  # noqa: E402
from node.store import create_engine, sqlite_url, upgrade  # noqa: E402
from node.store.models import AuditEvent, AuditHead, AuditSubtree  # noqa: E402
from tests.support.postgres import throwaway_cluster  # noqa: E402

ORI = "CA0194200"
ACTOR = f"spiffe://bench.alpr/agency/{ORI}/user/analyst"
START = datetime(2026, 11, 30, tzinfo=UTC)
LOAD_BATCH = 20_000


def details(n: int) -> dict[str, object]:
    """A query event's details, as a search would record them."""
    return {"plate": f"7ABC{n % 1000:03d}", "results": n % 7}


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that ticks a microsecond per call, so every event has its own time."""
    ticks = iter(range(10**12))
    return lambda: start + timedelta(microseconds=next(ticks))


def time_appends(engine: Engine, count: int) -> float:
    """Seconds for `count` appends through `AuditLog.append`."""
    log = AuditLog(engine, clock=clock_from(START))
    began = time.perf_counter()
    for n in range(count):
        log.append("query", actor=ACTOR, agency=ORI, purpose="stolen vehicle", details=details(n))
    return time.perf_counter() - began


def time_plain_inserts(engine: Engine, count: int) -> float:
    """Seconds for `count` inserts of the same rows, one transaction each, no tree."""
    began = time.perf_counter()
    for n in range(count):
        event = AuditEvent(
            seq=10**9 + n,
            recorded_at=START + timedelta(microseconds=n),
            kind="query",
            actor=ACTOR,
            agency=ORI,
            purpose="stolen vehicle",
            details=canonical_json(details(n)),
            leaf_hash=b"\x00" * 32,
        )
        event.leaf_hash = leaf_hash(leaf_bytes(event))
        with Session(engine) as session:
            session.add(event)
            session.commit()
    return time.perf_counter() - began


def grow(engine: Engine, frontier: CompactRange, size: int) -> None:
    """Bulk-load events until the log holds `size`, writing what `append` would have."""
    events: list[dict[str, object]] = []
    subtrees: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as connection:
            if events:
                connection.execute(insert(AuditEvent), events)
            if subtrees:
                connection.execute(insert(AuditSubtree), subtrees)
            connection.execute(
                AuditHead.__table__.update().values(  # type: ignore[attr-defined]
                    size=frontier.size, frontier=frontier.to_bytes()
                )
            )
        events.clear()
        subtrees.clear()

    while frontier.size < size:
        seq = frontier.size + 1
        row = AuditEvent(
            seq=seq,
            recorded_at=START + timedelta(microseconds=seq),
            kind="query",
            actor=ACTOR,
            agency=ORI,
            purpose="stolen vehicle",
            details=canonical_json(details(seq)),
            leaf_hash=b"",
        )
        row.leaf_hash = leaf_hash(leaf_bytes(row))
        completed = frontier.append(row.leaf_hash)
        events.append(row.model_dump())
        subtrees.extend(
            {"level": level, "index": (seq - 1) >> level, "hash": subtree}
            for level, subtree in enumerate(completed, start=1)
        )
        if len(events) >= LOAD_BATCH:
            flush()
    flush()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples`, in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.99) - 1] * 1e3


def time_proofs(log: AuditLog, size: int, count: int) -> dict[str, tuple[float, float]]:
    """p50/p99 milliseconds of inclusion and consistency proofs at random places."""
    rng = random.Random(size)  # noqa: S311 (places to prove, not secrets)
    inclusion, consistency = [], []
    for _ in range(count):
        seq = rng.randrange(1, size + 1)
        began = time.perf_counter()
        log.inclusion_proof(seq, size)
        inclusion.append(time.perf_counter() - began)
        old = rng.randrange(1, size)
        began = time.perf_counter()
        log.consistency_proof(old, size)
        consistency.append(time.perf_counter() - began)
    return {"inclusion": percentiles(inclusion), "consistency": percentiles(consistency)}


@contextmanager
def postgres_database(server: str | None) -> Iterator[str]:
    """A fresh database on `server`, or on a throwaway cluster started here."""
    with (
        throwaway_cluster() if server is None else _given(server) as url,
        psycopg.connect(f"{url}/postgres", autocommit=True) as admin,
    ):
        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{url}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url.rstrip("/")


def migrated(url: str) -> Engine:
    """An engine on `url`, migrated."""
    engine = create_engine(url)
    upgrade(engine)
    return engine


def main() -> int:
    """Run every measurement and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=2000, help="events appended per engine")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--proofs", type=int, default=200, help="proofs timed per size")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: start one)")
    parser.add_argument(
        "--log",
        type=Path,
        help="keep the grown SQLite log in this file and reuse it on the next run "
        "(growing 10M events takes many minutes; default: a temporary file)",
    )
    parser.add_argument("--skip-appends", action="store_true", help="only the log-size table")
    args = parser.parse_args()

    print(f"audit log on {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if not args.skip_appends:
        print()
        time_append_rates(args.appends, args.postgres)
    print()
    with contextlib.ExitStack() as stack:
        path = args.log or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "log.db"
        time_log_sizes(path, sorted(args.sizes), args.proofs)
    return 0


def time_append_rates(count: int, postgres: str | None) -> None:
    """Print appends per second against plain inserts, on SQLite and PostgreSQL."""
    print(f"{'appends':<34}{'per second':>12}{'plain inserts/s':>17}{'x plain':>9}")
    with tempfile.TemporaryDirectory() as tmp, postgres_database(postgres) as pg_url:
        for name, url in (("SQLite", sqlite_url(Path(tmp) / "a.db")), ("PostgreSQL", pg_url)):
            engine = migrated(url)
            appended = count / time_appends(engine, count)
            plain = count / time_plain_inserts(engine, count)
            engine.dispose()
            print(f"{name + ', tree maintained':<34}{appended:>12.0f}{plain:>17.0f}"
                  f"{appended / plain:>9.2f}")  # fmt: skip


def time_log_sizes(path: Path, sizes: list[int], proofs: int) -> None:
    """Grow the SQLite log at `path` to each size; time proofs there, and verify at the first."""
    print(f"{'SQLite log of':<16}{'load s':>9}{'inclusion p50/p99 ms':>24}"
          f"{'consistency p50/p99 ms':>26}{'verify s':>10}")  # fmt: skip
    engine = migrated(sqlite_url(path))
    log = AuditLog(engine, clock=clock_from(START))
    head = log.head()
    frontier = CompactRange.from_bytes(_frontier_bytes(engine)) if head.size else CompactRange()
    for index, size in enumerate(sizes):
        began = time.perf_counter()
        grow(engine, frontier, size)
        loaded = time.perf_counter() - began
        timed = time_proofs(log, size, proofs)
        verified = ""
        if index == 0 and size == log.head().size:  # a kept, larger log is not re-verified
            began = time.perf_counter()
            log.verify()
            verified = f"{time.perf_counter() - began:.1f}"
        inclusion, consistency = timed["inclusion"], timed["consistency"]
        print(f"{size:<16,}{loaded:>9.0f}{inclusion[0]:>13.2f} / {inclusion[1]:<8.2f}"
              f"{consistency[0]:>15.2f} / {consistency[1]:<8.2f}{verified:>10}")  # fmt: skip
    engine.dispose()


def _frontier_bytes(engine: Engine) -> bytes:
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
        assert head is not None  # noqa: S101 (a migrated store has its head row)
        return head.frontier


if __name__ == "__main__":
    raise SystemExit(main())
