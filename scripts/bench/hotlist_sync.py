"""Benchmark: a partner's hotlist pulled end to end, against plain protobuf, no crypto, no store.

    python scripts/bench/hotlist_sync.py [--sizes 100000 1000000] [--delta 1000] [--repeat 3]

For each size it builds two nodes (issuer and receiver) with an agreement between them,
fills the issuer's list (not timed), serves the issuer as a real `alpr serve` process,
and in a fresh receiver process times a full pull: sign, encrypt, send, verify,
decrypt, store. Then it adds `--delta` entries to the issuer and times the delta pull,
and times a pull with nothing new ("delta 0"): the exchange alone, what every pull
costs whatever it carries (the mTLS handshake, the signed request, receipt and
acknowledgement, the nonce and the audit events on both sides, two RPCs).
The baselines, in the same run, stream as many entries as plain protobuf chunks of a
thousand (serialized before the clock starts) over an insecure gRPC channel. "Plain"
only parses them. "Checked" also runs on each chunk the receiver's own checks of its
entries (`problems_in_bulk`: categories the policy forbids, ACC-7, and malformed
plates, states and sizes), which are neither crypto nor store: what the issue's "the
same entries ... with no crypto and no store" leaves a receiver to do. Each pull is
compared with the baselines carrying as many entries as it did (a delta with the
delta-sized ones).
A "floor" row per size is no pull at all: in one process, the chunks' bytes
only, sealed beforehand, are opened, digested, sealed again under the data key and
written to a fresh SQLite file 16 chunks a transaction, as a receiver must, with no
per-entry work and no network: what any pull of this format costs at least.
Peak RSS is the receiving process's own (VmHWM), not inherited from this one (for a delta,
a node already holding the list and its match index); "issuer MB"
is the serving issuer's peak since it started, read after each pull. "then match s" is
what the pull leaves to the next read committed: bringing the node's match index up to
the list taken (a delta patches it, a full snapshot is read into it whole), with the
receiver's peak RSS after it ("match MB").
Each case is timed `--repeat` times (a delta `2 * repeat + 1` times), each in a fresh
process (a delta with new entries each time), and its row is the median run: single
runs on these shared machines vary by a second on a million entries. The lists are
built in a child process too, so that the processes timed never share the machine with
one freeing gigabytes.
Targets (issue "Exchange"): 1M entries under 15 s and 1.5 GB; a 1k delta under 200 ms;
crypto and store at most 3x the baseline. Below the table, each target this run measured is
printed with its figure and whether it was met; "at most 3x" is judged against the checked
baseline for every pull that carried entries.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alpr.common.v1 import hotlist_pb2  # noqa: E402
from alpr.federation.v1 import exchange_pb2  # noqa: E402
from federation.agreements import AgreementBook  # noqa: E402
from federation.peers import Peer, PeerRegistry  # noqa: E402
from federation.terms import Grant  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.node_dir import init_node, open_node  # noqa: E402
from gateway.services import Services  # noqa: E402
from node.clock import system_clock  # noqa: E402
from node.ed25519 import DataKey  # noqa: E402
from node.hotlists.codec import (  # noqa: E402
    EntryChunk,
    entry_chunks,
    fields_message,
    problems_in_bulk,
    split_column,
)
from node.hotlists.entry import HotlistEntry, ListType  # noqa: E402
from node.hotlists.store import HotlistStore  # noqa: E402
from node.pki import CertificateAuthority  # noqa: E402
from node.store.engine import SQLITE_PAGE_BYTES  # noqa: E402

ISSUER, RECEIVER = "CA0190000", "CA0194200"
BASELINES = {"plain": "plain protobuf", "checked": "plain protobuf + entry checks"}
# The issue's targets: a million entries pulled whole, a delta, and either against the
# checked baseline carrying as many entries.
LARGE = 1_000_000
LARGE_SECONDS = 15.0
LARGE_RSS_MB = 1500.0
DELTA_SECONDS = 0.200
MOST_X_CHECKED = 3.0

Measured = dict[str, float]
"""One run's figures: seconds, peak RSS MB and the rest; or an "error"."""
Baselines = dict[int, dict[str, Measured]]
"""The baselines by entries carried, then by kind (`BASELINES`)."""
BATCH = 50_000


def entries(count: int, offset: int = 0) -> list[HotlistEntry]:
    """`count` distinct plausible entries."""
    return [
        HotlistEntry(
            plate=f"{(offset + i) % 10}{chr(65 + (offset + i) // 10 % 26)}"
            f"{chr(65 + (offset + i) // 260 % 26)}{(offset + i) // 6760:04d}"[:8],
            state="CA",
            list_type=ListType.STOLEN_VEHICLE,
            reason="stolen from a parking structure",
            case_number=f"26-{offset + i:06d}",
            ncic_number=f"V{offset + i:09d}",
            contact="Auto Theft Detail 213-555-0100",
        )
        for i in range(count)
    ]


def build(base: Path, size: int) -> tuple[Path, Path]:
    """Two nodes with an active agreement, the issuer's list filled with `size` entries."""
    now = datetime.now(UTC)
    ca = CertificateAuthority.create("bench.alpr", now=now)
    directories = {}
    for ori in (ISSUER, RECEIVER):
        directories[ori] = base / ori
        init_node(directories[ori], ori=ori, name=ori, federation=None, ca=ca,
                  hosts=("localhost",), listen="localhost:0", store_url="", now=now,
                  profile="lapd")  # fmt: skip
        config_text = (directories[ori] / "node.toml").read_text()
        (directories[ori] / "node.toml").write_text(
            config_text.replace("max_message_bytes = 4194304", "max_message_bytes = 67108864")
        )
    nodes = {ori: open_node(load_config(d, {}), now=now) for ori, d in directories.items()}
    books = {}
    for ori, node in nodes.items():
        other = RECEIVER if ori == ISSUER else ISSUER
        peers = PeerRegistry(node.engine, clock=system_clock)
        peers.add(Peer(ori=other, name=other, endpoint="localhost:1",
                       spiffe_id=f"spiffe://bench.alpr/agency/{other}",
                       signing_public_key=nodes[other].signer.public_key.public_bytes))  # fmt: skip
        books[ori] = AgreementBook(node.engine, ori=ori, federation="bench.alpr",
                                   signer=node.signer, peers=peers, clock=system_clock)  # fmt: skip
    draft = books[ISSUER].create(partner_ori=RECEIVER, starts_at=now - timedelta(minutes=1),
                                 sunsets_at=now + timedelta(days=30),
                                 we_grant={Grant.RECEIVE_HOTLISTS}, they_grant=set(),
                                 purposes=["stolen vehicle recovery"])  # fmt: skip
    issuer_peer = PeerRegistry(nodes[RECEIVER].engine, clock=system_clock).require(ISSUER)
    books[RECEIVER].receive_proposal(draft.envelope, issuer_peer)
    books[ISSUER].mark_proposed(draft.id)
    both = books[RECEIVER].countersign(draft.id)
    books[RECEIVER].activate(draft.id, both)
    books[ISSUER].activate(draft.id, both)
    store = HotlistStore(nodes[ISSUER].engine, data_key=nodes[ISSUER].data_key, clock=system_clock)
    store.create_list("stolen")
    for start in range(0, size, BATCH):
        store.add("stolen", entries(min(BATCH, size - start), start))
    for node in nodes.values():
        node.engine.dispose()
    return directories[ISSUER], directories[RECEIVER]


def serve_issuer(directory: Path) -> tuple[subprocess.Popen[str], int]:
    """`alpr serve` the issuer; the process and its port.

    Its log is read to the end in a thread: a pipe left unread fills after a hundred
    pulls or so, and the issuer would then block writing its next line.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", str(directory)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = process.stderr
    while log is not None and (line := log.readline()):
        entry = json.loads(line)
        if entry["msg"] == "serving":
            threading.Thread(target=log.read, daemon=True).start()
            return process, int(entry["port"])
    raise RuntimeError("the issuer did not start")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident set size, in MB (this one's by default).

    Read from /proc (VmHWM), which starts afresh at exec: on Linux `ru_maxrss` of a child
    starts from its parent's peak, so a child of a parent that built a million entries
    would report the parent's memory.
    """
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if pid == "self" else 0.0


def child_pull(receiver: Path, port: int) -> dict[str, float]:
    """In this (fresh) process: one pull from the issuer; seconds and peak RSS in MB.

    Then the node's match index is brought up to the list taken, as the next read
    committed would (`match_s`, and the peak RSS after it, `match_mb`). The index is
    built from the list held before the pull, untimed, as a running node holds it: a
    delta then patches it, a full snapshot is read into it whole.
    """
    config = load_config(receiver, {})
    node = open_node(config, now=datetime.now(UTC))
    services = Services.build(node, clock=system_clock)
    services.peers.update(ISSUER, {"endpoint": f"localhost:{port}"})
    services.index.refresh()

    async def pull() -> float:
        started = time.perf_counter()
        result = await services.sharing.pull(ISSUER)
        if not result.acknowledged:
            raise RuntimeError("the issuer did not take the acknowledgement")
        return time.perf_counter() - started

    seconds = asyncio.run(pull())
    pulled_mb = peak_rss_mb()
    started = time.perf_counter()
    services.index.refresh()
    match_s = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": pulled_mb, "match_s": match_s, "match_mb": peak_rss_mb()}


def plain_chunks(size: int) -> list[EntryChunk]:
    """`size` entries in chunks, as an issuer cuts them, built `BATCH` entries at a time."""
    chunks = []
    for start in range(0, size, BATCH):  # BATCH is whole chunks: the same cuts as in one go
        listed = entries(min(BATCH, size - start), start)
        chunks += entry_chunks(
            [str(uuid.UUID(int=start + i)) for i in range(len(listed))],
            [entry.plate for entry in listed],
            [fields_message(entry, "stolen") for entry in listed],
        )
    return chunks


def baseline_server(size: int) -> tuple[grpc.Server, int]:
    """A plain gRPC server streaming the entries as unencrypted chunks, serialized beforehand."""
    chunks = [
        exchange_pb2.HotlistChunk(
            entry_ids=chunk.entry_ids,
            plates=chunk.plates,
            encrypted_fields=chunk.fields,  # in clear: no crypto in the baseline
        ).SerializeToString()
        for chunk in plain_chunks(size)
    ]
    handler = grpc.method_handlers_generic_handler(
        "bench.Plain", {"Get": grpc.unary_stream_rpc_method_handler(lambda req, ctx: iter(chunks))}
    )
    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("localhost:0")
    server.start()
    return server, port


def child_floor(size: int) -> dict[str, float]:
    """In this (fresh) process: the receiver's byte work on `size` entries; seconds, RSS."""
    chunks, in_transit, at_rest = plain_chunks(size), DataKey.generate(), DataKey.generate()
    sealed = [in_transit.encrypt(chunk.fields) for chunk in chunks]
    with tempfile.TemporaryDirectory() as scratch:
        database = sqlite3.connect(Path(scratch) / "floor.db")
        database.execute(f"PRAGMA page_size = {SQLITE_PAGE_BYTES}")
        database.execute("PRAGMA journal_mode = WAL")
        database.execute("PRAGMA synchronous = NORMAL")  # as the node opens SQLite
        database.execute(
            "CREATE TABLE chunk (number INTEGER PRIMARY KEY, size INTEGER,"
            " entry_ids BLOB, plates BLOB, fields BLOB, digest BLOB)"
        )
        started = time.perf_counter()
        for first in range(0, len(chunks), 16):
            rows = []
            for number in range(first, min(first + 16, len(chunks))):
                chunk, opened = chunks[number], in_transit.decrypt(sealed[number])
                digest = hashlib.sha256(chunk.entry_ids + chunk.plates + opened).digest()
                rows.append((number, chunk.size, chunk.entry_ids, chunk.plates,
                             at_rest.encrypt(opened), digest))  # fmt: skip
            database.executemany("INSERT INTO chunk VALUES (?, ?, ?, ?, ?, ?)", rows)
            database.commit()
        seconds = time.perf_counter() - started
        database.close()
    return {"seconds": seconds, "rss_mb": peak_rss_mb()}


def child_baseline(port: int, *, checked: bool) -> dict[str, float]:
    """In this (fresh) process: fetch and parse (and check) the plain chunks; seconds, RSS."""
    started = time.perf_counter()
    received = 0
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        get = channel.unary_stream(
            "/bench.Plain/Get", request_serializer=None, response_deserializer=None
        )
        for data in get(b"", timeout=600):
            chunk = exchange_pb2.HotlistChunk.FromString(data)
            fields = hotlist_pb2.HotlistEntryFieldsList.FromString(chunk.encrypted_fields).fields
            plates = split_column(chunk.plates)
            if len(fields) != len(plates) or len(split_column(chunk.entry_ids)) != len(plates):
                raise RuntimeError("the baseline chunk is inconsistent")
            if checked and any(problems_in_bulk(plates, fields)):
                raise RuntimeError("the baseline's entries fail the receiver's checks")
            received += len(plates)
    if not received:
        raise RuntimeError("the baseline sent nothing")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb()}


def in_child(*argv: str) -> dict[str, float]:
    """Run this script's child mode in a fresh process; its JSON answer."""
    done = subprocess.run([sys.executable, __file__, "--child", *argv], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}  # type: ignore[dict-item]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run of median time among `runs`, or the first that failed."""
    failed = [run for run in runs if "error" in run]
    return failed[0] if failed else sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]


def measure_baselines(size: int, repeat: int) -> dict[str, dict[str, float]]:
    """The plain and checked baselines for `size` entries, each the median of `repeat` runs."""
    server, port = baseline_server(size)
    try:
        return {
            kind: median_run([in_child("baseline", str(port), kind) for _ in range(repeat)])
            for kind in BASELINES
        }
    finally:
        server.stop(None)


def end_one_a_chunk(issuer: Path, slot: int) -> None:
    """Remove the entry at `slot` of every chunk of the issuer's list: each must be cut anew."""
    node = open_node(load_config(issuer, {}), now=datetime.now(UTC))
    store = HotlistStore(node.engine, data_key=node.data_key, clock=system_clock)
    with node.engine.connect() as connection:
        chosen = connection.execute(
            text("SELECT id FROM hotlist_entry WHERE slot = :slot"), {"slot": slot}
        ).all()
    for (entry_id,) in chosen:
        store.remove(entry_id)
    node.engine.dispose()


def forget_partner_lists(receiver: Path) -> None:
    """Drop the lists the receiver holds, so that its next pull is a full snapshot."""
    node = open_node(load_config(receiver, {}), now=datetime.now(UTC))
    with node.engine.begin() as connection:
        for table in ("partner_ended", "partner_chunk", "partner_hotlist"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (our own names)
    node.engine.dispose()


def add_entries(issuer: Path, count: int, offset: int) -> None:
    """Add `count` new entries to the issuer's list: the next pull's delta."""
    node = open_node(load_config(issuer, {}), now=datetime.now(UTC))
    store = HotlistStore(node.engine, data_key=node.data_key, clock=system_clock)
    store.add("stolen", entries(count, offset))
    node.engine.dispose()


def delta_runs(repeat: int) -> int:
    """How many times a delta is timed: more than a full pull, being short and cheap.

    A delta's tens of milliseconds vary by a third from run to run on these machines.
    """
    return 2 * repeat + 1


def measure(size: int, delta: int, repeat: int) -> list[tuple[str, dict[str, float], int]]:
    """The rows for one list size: name, median measurement, and the entry count it carried.

    A full pull carries `size` entries and a delta `delta`; each is compared with the
    baseline that carries as many (the delta's own, not the full list's). Then, before
    each run, one more entry of every chunk is removed and the list pulled whole: each
    removal stored its chunk's cut, which the issuer names and sends as stored. Each
    such pull is followed by another, as the next partner's would be.
    """
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        built = in_child("build", scratch, str(size))
        if "error" in built:
            raise RuntimeError(f"the nodes were not built: {built['error']}")
        issuer, receiver = Path(scratch) / ISSUER, Path(scratch) / RECEIVER
        process, port = serve_issuer(issuer)

        def pull(*, whole: bool) -> dict[str, float]:
            if whole:
                forget_partner_lists(receiver)
            return in_child("pull", str(receiver), str(port)) | {
                "issuer_mb": peak_rss_mb(process.pid)
            }

        def pull_delta(run: int) -> dict[str, float]:
            add_entries(issuer, delta, size + run * delta)
            return pull(whole=False)

        try:
            full = median_run([pull(whole=True) for _ in range(repeat)])
            rows.append((f"full pull {size:,}", full, size))
            delta_row = median_run([pull_delta(run) for run in range(delta_runs(repeat))])
            rows.append((f"delta {delta:,} on {size:,}", delta_row, delta))
            unchanged = median_run([pull(whole=False) for _ in range(delta_runs(repeat))])
            rows.append((f"delta 0 on {size:,} (the exchange alone)", unchanged, 0))
            cut, cut_again = [], []
            for run in range(repeat):
                end_one_a_chunk(issuer, slot=7 + run)
                cut.append(pull(whole=True))
                cut_again.append(pull(whole=True))
            rows.append((f"full pull {size:,}, 1 more a chunk ended", median_run(cut), size))
            rows.append((f"full pull {size:,}, the same pulled again", median_run(cut_again), size))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return rows


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--delta", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs a case; the median shown")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeat = max(args.repeat, 1)
    if args.child:
        mode, *rest = args.child
        if mode == "build":  # the lists are built, and freed, in a process of their own
            build(Path(rest[0]), int(rest[1]))
            answer = {}
        elif mode == "pull":
            answer = child_pull(Path(rest[0]), int(rest[1]))
        elif mode == "floor":
            answer = child_floor(int(rest[0]))
        else:
            answer = child_baseline(int(rest[0]), checked=rest[1] == "checked")
        print(json.dumps(answer))
        return 0
    print(f"hotlist_sync on {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
          f" each row the median of {repeat} runs, a delta's of {delta_runs(repeat)}")  # fmt: skip
    print(f"{'case':<52}{'seconds':>9}{'peak RSS MB':>13}{'x plain':>9}{'x checked':>11}"
          f"{'issuer MB':>11}{'then match s':>14}{'match MB':>10}")  # fmt: skip
    baselines = {n: measure_baselines(n, repeat) for n in sorted({*args.sizes, args.delta})}
    rows = [row for size in args.sizes for row in measure(size, args.delta, repeat)]
    rows += [
        (
            f"floor {size:,} (open, digest, seal, write bytes)",
            median_run([in_child("floor", str(size)) for _ in range(repeat)]),
            size,
        )
        for size in args.sizes
    ]
    rows += [
        (f"baseline {n:,} ({BASELINES[kind]})", row, 0)
        for n, kinds in baselines.items()
        for kind, row in kinds.items()
    ]
    for name, row, carried in rows:
        if "error" in row:
            print(f"{name:<52}  failed: {row['error']}")
            continue
        ratios = [
            f"{times:.1f}" if (times := times_baseline(row, carried, baselines, kind)) else ""
            for kind in BASELINES
        ]
        issuer = f"{row['issuer_mb']:.0f}" if "issuer_mb" in row else ""
        match = f"{row['match_s']:.3f}" if "match_s" in row else ""
        match_mb = f"{row['match_mb']:.0f}" if "match_mb" in row else ""
        print(f"{name:<52}{row['seconds']:>9.3f}{row['rss_mb']:>13.0f}{ratios[0]:>9}"
              f"{ratios[1]:>11}{issuer:>11}{match:>14}{match_mb:>10}")  # fmt: skip
    print('\ntargets (issue "Exchange")')
    for target, figure, met in verdicts(rows, baselines, args.delta):
        print(f"{target:<72}{figure:>10}  {'met' if met else 'NOT MET'}")
    return 0


def times_baseline(row: Measured, carried: int, baselines: Baselines, kind: str) -> float | None:
    """How many times the `kind` baseline carrying as many entries `row` took, if it compares."""
    baseline = baselines.get(carried, {}).get(kind, {})
    if not carried or "seconds" not in row or "seconds" not in baseline:
        return None
    return row["seconds"] / baseline["seconds"]


def verdicts(
    rows: list[tuple[str, Measured, int]], baselines: Baselines, delta: int
) -> list[tuple[str, str, bool]]:
    """Each target this run measured: what it asks, the figure, and whether it was met.

    A row that failed meets nothing. "At most 3x" is judged against the checked baseline
    for every pull that carried entries: full pulls and the delta.
    """
    judged = []
    for name, row, carried in rows:
        if not carried or name.startswith(("floor", "baseline")):
            continue
        seconds, rss = row.get("seconds", math.inf), row.get("rss_mb", math.inf)
        if name == f"full pull {LARGE:,}":
            judged += [
                (
                    f"{name} under {LARGE_SECONDS:.0f} s",
                    f"{seconds:.1f} s",
                    seconds < LARGE_SECONDS,
                ),
                (
                    f"{name} under {LARGE_RSS_MB:,.0f} MB peak RSS",
                    f"{rss:.0f} MB",
                    rss < LARGE_RSS_MB,
                ),
            ]
        if name.startswith(f"delta {delta:,} "):
            milliseconds = seconds * 1000
            met = seconds < DELTA_SECONDS
            judged.append(
                (f"{name} under {DELTA_SECONDS * 1000:.0f} ms", f"{milliseconds:.0f} ms", met)
            )
        times = times_baseline(row, carried, baselines, "checked")
        figure = f"{times:.1f}x" if times else "failed"
        met = times is not None and times <= MOST_X_CHECKED
        judged.append((f"{name}: at most {MOST_X_CHECKED:.0f}x the checked baseline", figure, met))
    return judged


if __name__ == "__main__":
    sys.exit(main())
