"""Benchmark: from a read submitted to its hit received on 50 concurrent patrol streams.

    python scripts/bench/hit_latency.py [--streams 50] [--reads 100] [--postgres-url URL]

Two setups, each with real `alpr serve` processes on loopback, mTLS, a stolen-vehicle
list, and `--streams` patrol clients (one channel each, as cars have) in this process:

- sqlite, 1 process: the camera and every stream on the same node process;
- postgresql, 2 processes: the camera submits to process A, every stream is held on
  process B; the hit reaches B by NOTIFY (B's poll stays at its 2 s default). The
  server is a throwaway cluster unless `--postgres-url` names one.

Reads are submitted one at a time; each waits until every stream has its hit. The first
`WARMUP` reads are not counted (connections and caches warming up). A sample
is the time from just before SubmitReads is sent to a stream receiving the hit, so it
includes the commit itself: the time from commit to hit is at most this. The baseline,
measured in the same run, is the commit alone: SubmitReads' round trip (the read stored,
matched, its hit stored, acknowledged). Targets (issue "Matching and hits"): p99 under
50 ms on SQLite in one process, under 100 ms across two processes on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alpr.capture.v1 import capture_service_pb2 as capture_pb  # noqa: E402
from alpr.capture.v1 import capture_service_pb2_grpc as capture_grpc  # noqa: E402
from alpr.patrol.v1 import patrol_service_pb2 as pb  # noqa: E402
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.node_dir import init_node, open_node  # noqa: E402
from gateway.tls import TLSConfig  # noqa: E402
from node.clock import system_clock  # noqa: E402
from node.hotlists.entry import HotlistEntry, ListType  # noqa: E402
from node.hotlists.store import HotlistStore  # noqa: E402
from node.identity import Principal, PrincipalKind  # noqa: E402
from node.pki import CertificateAuthority  # noqa: E402
from tests.support.postgres import fresh_database, throwaway_cluster  # noqa: E402

ORI = "CA0194200"
FEDERATION = "bench.alpr"
PLATE = "7ABC123"
ROW = "{:<52} {:>8} {:>8} {:>8} {:>8}"
WARMUP = 5


def build(base: Path, store_url: str) -> tuple[Path, TLSConfig]:
    """A node directory with a stolen-vehicle list; a patrol device's credentials."""
    now = datetime.now(UTC)
    ca = CertificateAuthority.create(FEDERATION, now=now)
    directory = base / "node"
    init_node(directory, ori=ORI, name="Bench PD", federation=None, ca=ca,
              hosts=("localhost",), listen="localhost:0", store_url=store_url, now=now,
              profile="lapd")  # fmt: skip
    node = open_node(load_config(directory, {}), now=now)
    store = HotlistStore(node.engine, data_key=node.data_key, clock=system_clock)
    store.create_list("stolen")
    store.add("stolen", [HotlistEntry(plate=PLATE, list_type=ListType.STOLEN_VEHICLE)])
    node.engine.dispose()
    device = ca.issue(Principal(FEDERATION, ORI, PrincipalKind.DEVICE, "bench"), now=now,
                      days=1, hosts=("localhost",))  # fmt: skip
    device.write(base / "device.crt", base / "device.key")
    tls = TLSConfig(ca=ca.certificate_pem, cert=(base / "device.crt").read_bytes(),
                    key=(base / "device.key").read_bytes())  # fmt: skip
    return directory, tls


@contextmanager
def served(directory: Path) -> Iterator[int]:
    """`alpr serve` the node as a process; its port."""
    env = {
        **os.environ,
        "ALPR_PATROL_HEARTBEAT_SECONDS": "1",
        "ALPR_CAPTURE_READS_PER_SECOND": "1000000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", str(directory)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in process.stderr or ():
            entry = json.loads(line)
            if entry["msg"] == "serving":
                break
        else:
            raise RuntimeError("alpr serve did not start")
        yield int(entry["port"])
    finally:
        process.kill()
        process.wait()


async def measure(
    tls: TLSConfig, camera_port: int, stream_port: int, streams: int, reads: int
) -> tuple[list[float], list[float]]:
    """Submit `reads` reads; the commit round trips and every stream's latencies (seconds)."""
    credentials = tls.channel_credentials()
    channels = [
        grpc.aio.secure_channel(f"localhost:{stream_port}", credentials) for _ in range(streams)
    ]
    camera_channel = grpc.aio.secure_channel(f"localhost:{camera_port}", credentials)
    camera = capture_grpc.CaptureServiceStub(camera_channel)
    arrivals: dict[int, list[float]] = {}
    progress = asyncio.Condition()
    ready = asyncio.Semaphore(0)

    async def follow(channel: grpc.aio.Channel) -> None:
        call = pb_grpc.PatrolServiceStub(channel).StreamHits(pb.StreamHitsRequest())
        announced = False
        async for message in call:
            if not announced:  # the first heartbeat: subscribed
                announced = True
                ready.release()
            if message.HasField("hit"):
                arrivals.setdefault(message.cursor, []).append(time.perf_counter())
                async with progress:
                    progress.notify_all()

    followers = [asyncio.create_task(follow(channel)) for channel in channels]
    for _ in range(streams):
        await asyncio.wait_for(ready.acquire(), 60)
    commits, latencies = [], []
    try:
        for number in range(WARMUP + reads):
            stamp = Timestamp()
            stamp.GetCurrentTime()
            request = capture_pb.SubmitReadsRequest(
                camera_id="cam-1",
                reads=[capture_pb.PlateRead(plate=PLATE, confidence=0.9, captured_at=stamp)],
            )
            sent = time.perf_counter()
            await camera.SubmitReads(request, timeout=30)
            committed = time.perf_counter() - sent
            async with progress:
                await asyncio.wait_for(
                    progress.wait_for(lambda: _complete(arrivals, streams) is not None), 30
                )
            received = arrivals.pop(_complete(arrivals, streams) or 0)
            if number >= WARMUP:
                commits.append(committed)
                latencies += [at - sent for at in received]
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for channel in (*channels, camera_channel):
            await channel.close(None)
    return commits, latencies


def _complete(arrivals: dict[int, list[float]], streams: int) -> int | None:
    """The cursor of the hit every stream has received, if any."""
    return next((cursor for cursor, at in arrivals.items() if len(at) == streams), None)


def row(name: str, samples: list[float]) -> str:
    """One table row: p50, p99, max in milliseconds, and the sample count."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return ROW.format(
        name,
        f"{statistics.median(ordered) * 1000:.1f}",
        f"{p99 * 1000:.1f}",
        f"{ordered[-1] * 1000:.1f}",
        len(ordered),
    )


def main() -> None:
    """Run both setups and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--postgres-url", help="a PostgreSQL server URL (default: throwaway)")
    args = parser.parse_args()
    print(f"{args.reads} reads, one at a time, each a hit on {args.streams} streams")
    print(ROW.format("", "p50 ms", "p99 ms", "max ms", "samples"))
    with tempfile.TemporaryDirectory() as scratch:
        directory, tls = build(Path(scratch) / "sqlite", "")
        with served(directory) as port:
            commits, latencies = asyncio.run(measure(tls, port, port, args.streams, args.reads))
        print(row("sqlite, 1 process: commit alone (baseline)", commits))
        print(row("sqlite, 1 process: submitted -> hit", latencies))
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        server = args.postgres_url or stack.enter_context(throwaway_cluster())
        url = stack.enter_context(fresh_database(server))
        directory, tls = build(Path(scratch) / "pg", url)
        port_a = stack.enter_context(served(directory))
        port_b = stack.enter_context(served(directory))
        commits, latencies = asyncio.run(measure(tls, port_a, port_b, args.streams, args.reads))
        print(row("postgresql, 2 processes: commit alone (baseline)", commits))
        print(row("postgresql, 2 processes: submitted on A -> hit on B", latencies))


if __name__ == "__main__":
    main()
