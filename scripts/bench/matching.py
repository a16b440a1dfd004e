"""Benchmark: reads matched per second against a large hotlist, and the match index's memory.

    python scripts/bench/matching.py [--entries 1000000] [--reads 200000] [--edit-entries 10000]

Builds, from seeded random plates, a hotlist of `--entries` entries of which 1% are partial
patterns (a witness's ``7AB?12*``), and matches `--reads` reads on one core: most plates not
listed, some listed, some misread through a confusable character. Rows:

- baseline: a plain dict of the exact plates (plate -> entry id), looked up once per read;
- exact + confusable: the index over the same list without its partial patterns;
- + partial: the index over the whole list, patterns included;
- + edit list: that, plus `--edit-entries` more plates on a list that allows one edit
  (meant for short lists such as AMBER alerts: one edit from a plate is many plates, so a
  long list that allows edits raises false hits as much as it costs time and memory).

Memory is what the structure keeps after it is built, as tracemalloc counts it (entry ids
included). Targets (issue "Matching and hits"): at least 200k reads/s with exact plus
confusable matching, above 100k/s with partial patterns, under 300 MB for 1M entries.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node.matching import IndexedEntry, IndexedList, MatchIndex  # noqa: E402
from node.matching.canonical import CONFUSABLE_CLASSES  # noqa: E402

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # as most states issue them: no I, O or Q
DIGITS = "0123456789"
# California's 9AAA999, the common AAA9999, and a short vanity-like 99AAA9.
FORMATS = ("DLLLDDD", "LLLDDDD", "DDLLLD")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T = TypeVar("T")
ROW = "{:<34} {:>10} {:>11} {:>10} {:>8} {:>8}"
SWAP = {c: cls for cls in CONFUSABLE_CLASSES for c in cls}


def plate(rng: random.Random) -> str:
    """A random plate in one of `FORMATS`."""
    return "".join(rng.choice(LETTERS if kind == "L" else DIGITS) for kind in rng.choice(FORMATS))


def partial(rng: random.Random, whole: str) -> str:
    """A pattern a witness might give for `whole`: a character or two unknown, or an end.

    A witness who gives only the start or the end of a plate gives four characters or more:
    ``*123`` would match one plate in a thousand and flood patrol cars with false hits.
    """
    chars = list(whole)
    shape = rng.random()
    if shape < 0.5:
        for place in rng.sample(range(len(chars)), rng.choice((1, 2))):
            chars[place] = "?"
        return "".join(chars)
    if shape < 0.8:
        return "".join(chars[: rng.randint(4, len(chars) - 1)]) + "*"
    return "*" + "".join(chars[rng.randint(1, len(chars) - 4) :])


def misread(rng: random.Random, whole: str) -> str:
    """`whole` with one confusable character read as another of its class, if it has one."""
    places = [i for i, c in enumerate(whole) if c in SWAP]
    if not places:
        return whole
    place = rng.choice(places)
    other = rng.choice([c for c in SWAP[whole[place]] if c != whole[place]])
    return whole[:place] + other + whole[place + 1 :]


def entry_ids(rng: random.Random) -> Iterator[str]:
    """Fresh UUID4 strings, as the store makes them."""
    while True:
        yield str(uuid.UUID(int=rng.getrandbits(128), version=4))


def measured(build: Callable[[], T]) -> tuple[T, float, float]:
    """Build a structure under tracemalloc: it, the MB it keeps, the seconds it took."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    built = build()
    seconds = time.perf_counter() - started
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return built, kept / 2**20, seconds


def rate(match: Callable[[str], object], reads: list[str]) -> float:
    """Reads matched per second, best of three passes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for read in reads:
            match(read)
        best = min(best, time.perf_counter() - started)
    return len(reads) / best


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=200_000)
    parser.add_argument("--edit-entries", type=int, default=10_000)
    parser.add_argument("--partial-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = random.Random(args.seed)  # noqa: S311 (repeatable data, not secrets)
    plates = [plate(rng) for _ in range(args.entries)]
    patterns = {
        i: partial(rng, plates[i])
        for i in rng.sample(range(args.entries), k=int(args.entries * args.partial_share))
    }
    listed = [p for i, p in enumerate(plates) if i not in patterns]
    edit_plates = [plate(rng) for _ in range(args.edit_entries)]
    reads = []
    for _ in range(args.reads):
        roll = rng.random()
        if roll < 0.02:  # 2% of reads are listed plates
            reads.append(rng.choice(listed))
        elif roll < 0.04:  # 2% are listed plates misread
            reads.append(misread(rng, rng.choice(listed)))
        else:
            reads.append(plate(rng))
    seed = args.seed + 1

    def baseline() -> dict[str, str]:
        ids = entry_ids(random.Random(seed))  # noqa: S311
        return {p: next(ids) for p in listed}

    def index(*, with_patterns: bool, with_edit: bool) -> MatchIndex:
        ids = entry_ids(random.Random(seed))  # noqa: S311
        built = MatchIndex()
        built.put_list(
            IndexedList(list_id="bench", name="bench"),
            (
                IndexedEntry(next(ids), patterns.get(i, p))
                for i, p in enumerate(plates)
                if with_patterns or i not in patterns
            ),
        )
        if with_edit:
            built.put_list(
                IndexedList(list_id="edit", name="edit", allow_edit=True),
                (IndexedEntry(next(ids), p) for p in edit_plates),
            )
        return built

    rows = []
    exact, mb, seconds = measured(baseline)
    base_rate = rate(exact.get, reads)
    rows.append(("baseline: dict of exact plates", len(exact), base_rate, mb, seconds))
    del exact
    cases = [
        ("exact + confusable", False, False),
        (f"+ partial ({args.partial_share:.0%} patterns)", True, False),
        (f"+ edit list ({args.edit_entries:,} plates)", True, True),
    ]
    for name, with_patterns, with_edit in cases:
        if with_edit and not args.edit_entries:
            continue
        built, mb, seconds = measured(
            functools.partial(index, with_patterns=with_patterns, with_edit=with_edit)
        )
        speed = rate(functools.partial(built.match, reference_time=NOW), reads)
        rows.append((name, len(built), speed, mb, seconds))
        del built

    python = sys.version.split()[0]
    print(f"{args.entries:,} entries, {args.reads:,} reads, one core, Python {python}")
    print(ROW.format("case", "entries", "reads/s", "x baseline", "MB", "build s"))
    for name, size, speed, mb, seconds in rows:
        ratio = speed / base_rate
        print(
            ROW.format(
                name, f"{size:,}", f"{speed:,.0f}", f"{ratio:.3f}", f"{mb:.1f}", f"{seconds:.1f}"
            )
        )


if __name__ == "__main__":
    main()
