"""Benchmark: a page of the agency's own hotlist entries, as `alpr hotlists entries` asks for it.

    python scripts/bench/hotlist_entries.py [--entries 200000] [--page-size 500] [--repeat 5]
                                            [--postgres URL]

Fills a store, on SQLite and on PostgreSQL, with `--entries` entries on one list ("stolen")
and a hundredth as many on another ("amber"), added in turns (not timed), then times
`HotlistStore.entries`, the median of `--repeat` calls:

- baseline, one chunk opened: a stored chunk's fields decrypted and parsed, no store; a
  page holds entries of one or two chunks (decoding its entries costs more);
- baseline, the whole list as one page: `entries` with a limit past the list, which reads
  every entry and decrypts every chunk, as each page did before pages were found from
  the index by place (it read the list whole and kept one page of it);
- the first page, a page in the middle and the last of all lists, and the last of "stolen"
  alone (the order is by place across both lists, so a list's pages skip the other's);
- every page in turn, as the CLI walks them (timed once), next to that walk as it was:
  as many pages, each costing the whole-list baseline.

Each row is also given as a multiple of the first page: a page deep in the list should
cost what the first does.

PostgreSQL is a throwaway cluster the script starts (as the tests do), or the server
`--postgres` names; it is analyzed once filled, as autovacuum soon does. SQLite is not:
a node never analyzes it, and a page must find its index without statistics.
The issue's scale is a million entries: read whole, a page of 200k took 6.5 s when the
issue was filed, so a page of a million passed the CLI's 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alpr.common.v1 import hotlist_pb2  # noqa: E402
from node.clock import system_clock  # noqa: E402
from node.ed25519 import DataKey  # noqa: E402
from node.hotlists.entry import HotlistEntry, ListType  # noqa: E402
from node.hotlists.store import MAX_BATCH, EntryPage, EntryPlace, HotlistStore  # noqa: E402
from node.store import create_engine, sqlite_url, upgrade  # noqa: E402
from node.store.engine import table_of  # noqa: E402
from node.store.hotlist_models import HotlistChunkRecord  # noqa: E402
from tests.support.postgres import fresh_database, throwaway_cluster  # noqa: E402

ROW = "{:<12}{:<46}{:>10}{:>12}"
TURNS = 4
"""The "stolen" entries are added in this many batches, each followed by some "amber"."""


def entries(count: int, offset: int, list_type: ListType) -> list[HotlistEntry]:
    """`count` entries with distinct plates, every field filled as an import fills them."""
    return [
        HotlistEntry(
            plate=f"{list_type.value[0].upper()}{n:07d}",
            state="CA",
            list_type=list_type,
            reason="stolen from a parking structure",
            case_number=f"26-{n:06d}",
            ncic_number=f"V{n:09d}",
            contact="Auto Theft Detail 213-555-0100",
        )
        for n in range(offset, offset + count)
    ]


def fill(engine: Engine, key: DataKey, count: int) -> HotlistStore:
    """A store holding `count` entries on "stolen" and a hundredth as many on "amber"."""
    store = HotlistStore(engine, data_key=key, clock=system_clock)
    store.create_list("stolen")
    store.create_list("amber")
    added = 0
    for turn in range(TURNS):
        share = count * (turn + 1) // TURNS - added
        for start in range(0, share, MAX_BATCH):
            size = min(MAX_BATCH, share - start)
            store.add("stolen", entries(size, added + start, ListType.STOLEN_VEHICLE))
        added += share
        store.add("amber", entries(max(share // 100, 1), added, ListType.AMBER_ALERT))
    if engine.dialect.name == "postgresql":  # statistics, as autovacuum gathers them soon
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return store


def median_ms(action: Callable[[], object], repeat: int) -> float:
    """The median of `repeat` timed calls of `action`, in milliseconds, after one warm-up."""
    action()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e3


def walk(store: HotlistStore, list_name: str | None, size: int) -> Iterator[EntryPage]:
    """Every page in turn, as the CLI asks for them."""
    page = store.entries(list_name, limit=size)
    yield page
    while page.last is not None:
        page = store.entries(list_name, after=page.last, limit=size)
        yield page


def measure(engine: Engine, args: argparse.Namespace) -> list[tuple[str, float]]:
    """The cases on one store, in milliseconds."""
    key = DataKey.generate()
    store = fill(engine, key, args.entries)
    chunk_table = table_of(HotlistChunkRecord)
    with engine.connect() as connection:
        sealed = connection.execute(
            select(chunk_table.c.fields).order_by(chunk_table.c.id).limit(1)
        ).scalar_one()
    size = args.page_size

    def open_chunk() -> object:
        [plain] = key.decrypt_many([sealed])
        return hotlist_pb2.HotlistEntryFieldsList.FromString(plain)

    places: list[EntryPlace | None] = [None]  # where each page starts after
    places += [page.last for page in walk(store, None, size) if page.last is not None]
    stolen_last = [page.last for page in walk(store, "stolen", size)][-2]
    whole = median_ms(lambda: store.entries(limit=args.entries * 2), max(args.repeat // 2, 1))
    began = time.perf_counter()
    pages = sum(1 for _ in walk(store, None, size))
    walked = (time.perf_counter() - began) * 1e3

    def one_page(after: EntryPlace | None, list_name: str | None = None) -> Callable[[], object]:
        return lambda: store.entries(list_name, after=after, limit=size)

    return [
        ("baseline: one chunk opened", median_ms(open_chunk, args.repeat * 10)),
        ("baseline: whole list as one page (as before)", whole),
        ("first page", median_ms(one_page(places[0]), args.repeat)),
        ("page in the middle", median_ms(one_page(places[len(places) // 2]), args.repeat)),
        ("last page", median_ms(one_page(places[-1]), args.repeat)),
        ('last page of "stolen" alone', median_ms(one_page(stolen_last, "stolen"), args.repeat)),
        (f"every page in turn ({pages} pages)", walked),
        (f"  as before: {pages} x whole list (estimated)", pages * whole),
    ]


def main() -> int:
    """Fill both stores, time the pages, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: start one)")
    args = parser.parse_args()
    print(f"hotlist_entries on {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
          f" {args.entries:,} entries (+1% elsewhere), pages of {args.page_size}")  # fmt: skip
    print(ROW.format("store", "case", "ms", "x 1st page"))
    with contextlib.ExitStack() as stack:
        server = args.postgres.rstrip("/") if args.postgres else None
        stores = {
            "SQLite": sqlite_url(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "h.db"),
            "PostgreSQL": stack.enter_context(
                fresh_database(server or stack.enter_context(throwaway_cluster()))
            ),
        }
        for name, url in stores.items():
            engine = create_engine(url)
            upgrade(engine)
            rows = measure(engine, args)
            first = dict(rows)["first page"]
            for case, ms in rows:
                print(ROW.format(name, case, f"{ms:.1f}", f"{ms / first:.2f}"))
            engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
