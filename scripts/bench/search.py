"""Benchmark: searching the agency's own reads, against the bare indexed SELECT.

    python scripts/bench/search.py [--reads 10000000] [--queries 200] [--postgres URL]
                                   [--sqlite PATH]

Fills a store with `--reads` reads (seeded plausible plates over a year, 1,000 cameras;
loaded in bulk, not timed), then times on SQLite and on PostgreSQL, p50 and p99:

- a whole-plate search through `ReadSearch.search` (purpose and case checked, the
  audit event written) against the baseline measured in the same run: the bare
  ``SELECT ... WHERE plate = ?`` on the same index;
- a partial-plate search (``7AB?1*``-like witness patterns, a literal prefix then
  wildcards) through `ReadSearch.search`, against the bare SELECT that answers the same
  page: the prefix range on the plate index, the pattern (SQLite ``GLOB``, PostgreSQL
  ``LIKE``), newest first, the page's size.

PostgreSQL is a throwaway cluster the script starts (as the tests do), or the server
`--postgres` names. `--sqlite PATH` keeps the SQLite store for another run.
Targets (issue "Local node"): whole plate p99 under 20 ms, partial p99 under 500 ms,
audit and access checks adding at most 2 ms.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.audit import AuditLog  # noqa: E402
from node.profile import builtin_profiles, load_profile  # noqa: E402
from node.search import DEFAULT_PAGE, ReadQuery, ReadSearch, prefix_range  # noqa: E402
from node.store import create_engine, sqlite_url, upgrade  # noqa: E402
from node.store.capture_models import ReadRecord  # noqa: E402
from node.store.engine import insert_rows, table_of  # noqa: E402
from tests.support.postgres import throwaway_cluster  # noqa: E402

ORI = "CA0194200"
USER = f"spiffe://bench.alpr/agency/{ORI}/user/detective"
START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
PROFILE = load_profile(builtin_profiles()["lapd"])
COLUMNS = ("id", "plate", "confidence", "captured_at", "camera_id", "latitude", "longitude",
           "plate_image_sha256", "vehicle_image_sha256", "committed_at")  # fmt: skip
BATCH = 50_000


def plate(rng: random.Random) -> str:
    """A California-style plate: digit, three letters, three digits."""
    return (
        f"{rng.randrange(1, 10)}{rng.choice(LETTERS)}{rng.choice(LETTERS)}"
        f"{rng.choice(LETTERS)}{rng.randrange(1000):03d}"
    )


def fill(engine: Engine, count: int) -> list[str]:
    """Load reads until the store holds `count`; a sample of the plates it holds."""
    rng = random.Random(count)  # noqa: S311 (plausible plates, not secrets)
    with engine.connect() as connection:
        held = connection.execute(
            select(func.count()).select_from(table_of(ReadRecord))
        ).scalar_one()
    sample: list[str] = []
    table = table_of(ReadRecord)
    while held < count:
        size = min(BATCH, count - held)
        rows = []
        for _ in range(size):
            seen = START + timedelta(seconds=rng.randrange(YEAR_SECONDS))
            rows.append((str(uuid.uuid4()), plate(rng), 0.9, seen, f"cam-{rng.randrange(1000)}",
                         34.0, -118.2, "", "", seen))  # fmt: skip
        with Session(engine) as session:
            insert_rows(session, table, COLUMNS, rows)
            session.commit()
        sample += [row[1] for row in rows[:20]]
        held += size
    with engine.begin() as connection:  # the planner's statistics, as a maintained store has
        connection.execute(text("ANALYZE"))
    if not sample:  # a kept store: take plates from it
        with engine.connect() as connection:
            sample = list(
                connection.execute(text("SELECT plate FROM plate_read LIMIT 2000")).scalars()
            )
    return sample


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples`, in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1e3


def timed(action: Callable[[str], object], arguments: list[str]) -> tuple[float, float]:
    """p50/p99 of `action` over `arguments`, after two warm-up calls."""
    for argument in arguments[:2]:
        action(argument)
    samples = []
    for argument in arguments:
        began = time.perf_counter()
        action(argument)
        samples.append(time.perf_counter() - began)
    return percentiles(samples)


def measure(engine: Engine, plates: list[str]) -> list[tuple[str, tuple[float, float]]]:
    """The four timings on one store."""
    search = ReadSearch(engine, profile=PROFILE, audit=AuditLog(engine, clock=_clock), ori=ORI)
    window = (START, START + timedelta(days=366))
    partials = [f"{p[:3]}?{p[4]}*" for p in plates]

    def searched(pattern: str) -> object:
        query = ReadQuery(plate=pattern, since=window[0], until=window[1],
                          purpose=PROFILE.access.purposes[0], case_number="DR 26-1")  # fmt: skip
        return search.search(query, user=USER, peer_ip="10.1.2.3")

    def bare(sql: str) -> Callable[[str], object]:
        def run(value: str) -> object:
            low, high = prefix_range(value[:3]) if "low" in sql else (value, None)
            glob = engine.dialect.name == "sqlite"
            bounds = {
                "v": value if glob else value.replace("?", "_").replace("*", "%"),
                "low": low,
                "high": high or "~",
                "page": DEFAULT_PAGE + 1,
            }
            with engine.connect() as connection:
                return connection.execute(
                    text(sql), {**bounds, "since": window[0], "until": window[1]}
                ).all()

        return run

    in_window = "AND captured_at >= :since AND captured_at < :until"
    exact_sql = f"SELECT * FROM plate_read WHERE plate = :v {in_window}"  # noqa: S608
    # The same terms ReadSearch asks (node.search._plate_terms), without its checks, audit
    # and records: the prefix range on the plate index, the pattern, the window, one page.
    sqlite = engine.dialect.name == "sqlite"
    likely = "likelihood({}, 0.99)" if sqlite else "{}"
    window_terms = " AND ".join(
        likely.format(term) for term in ("captured_at >= :since", "captured_at < :until")
    )
    pattern_sql = (
        f"SELECT * FROM plate_read WHERE plate >= :low AND plate < :high"  # noqa: S608
        f" AND plate {'GLOB' if sqlite else 'LIKE'} :v AND {window_terms}"
        " AND archived_at IS NULL ORDER BY captured_at DESC, id LIMIT :page"
    )
    return [
        ("whole plate, bare indexed SELECT", timed(bare(exact_sql), plates)),
        ("whole plate, ReadSearch + audit", timed(searched, plates)),
        ("partial, bare indexed SELECT", timed(bare(pattern_sql), partials)),
        ("partial, ReadSearch + audit", timed(searched, partials)),
    ]


def _clock() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def postgres_store(server: str | None) -> Iterator[str]:
    """A fresh database on `server`, or on a throwaway cluster started here."""
    with contextlib.ExitStack() as stack:
        url = server.rstrip("/") if server else stack.enter_context(throwaway_cluster())
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{url}/{name}"
        finally:
            with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    """Fill both stores, time the searches, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: start one)")
    parser.add_argument("--sqlite", type=Path, help="keep the SQLite store here for reuse")
    args = parser.parse_args()
    print(f"search on {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{args.reads:,} reads, {args.queries} queries each")  # fmt: skip
    print(f"{'store':<12}{'case':<36}{'p50 ms':>9}{'p99 ms':>9}{'p99 - bare':>12}")
    with contextlib.ExitStack() as stack:
        sqlite_path = (
            args.sqlite or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "r.db"
        )
        stores = {
            "SQLite": sqlite_url(sqlite_path),
            "PostgreSQL": stack.enter_context(postgres_store(args.postgres)),
        }
        for name, url in stores.items():
            engine = create_engine(url)
            upgrade(engine)
            sample = fill(engine, args.reads)
            chosen = random.Random(7)  # noqa: S311 (which plates to ask for)
            plates = chosen.sample(sample, min(args.queries, len(sample)))
            rows = measure(engine, plates)
            bare = {case.split(",")[0]: timing[1] for case, timing in rows if "bare" in case}
            for case, (p50, p99) in rows:
                extra = "" if "bare" in case else f"{p99 - bare[case.split(',')[0]]:+.2f}"
                print(f"{name:<12}{case:<36}{p50:>9.2f}{p99:>9.2f}{extra:>12}")
            engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
