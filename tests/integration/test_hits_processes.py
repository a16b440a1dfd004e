"""Two real `alpr serve` processes for one agency on one PostgreSQL (HOT-3, issue item 6).

A read submitted to process A raises a hit that a patrol stream held on process B
receives. Both poll the feed only every 10 minutes here, so a hit that arrives within the
stream's timeout was carried by PostgreSQL's NOTIFY, not by polling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from alpr.capture.v1 import capture_service_pb2 as capture_pb
from alpr.capture.v1 import capture_service_pb2_grpc as capture_grpc
from alpr.patrol.v1 import patrol_service_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc
from gateway.node_dir import open_node
from node.clock import system_clock
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.store import HotlistStore
from node.identity import PrincipalKind
from tests.support.nodes import make_node, serve_process
from tests.support.pki import LAPD, Federation
from tests.support.streams import TIMEOUT, Stream

pytestmark = pytest.mark.postgres
# Far longer than the stream waits: only a NOTIFY can bring the hit in time.
POLL = {"ALPR_PATROL_POLL_SECONDS": "600", "ALPR_PATROL_HEARTBEAT_SECONDS": "0.2"}


@pytest.fixture
def agency(federation: Federation, tmp_path: Path, postgres_url: str) -> Path:
    """An LAPD node directory on `postgres_url` with a stolen-vehicle list."""
    config = make_node(federation, tmp_path / "lapd", LAPD, store_url=postgres_url)
    node = open_node(config, now=datetime.now(UTC))
    store = HotlistStore(node.engine, data_key=node.data_key, clock=system_clock)
    store.create_list("stolen")
    store.add("stolen", [HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE)])
    node.engine.dispose()
    return config.directory


@pytest.fixture
def two_processes(agency: Path) -> Iterator[tuple[int, int]]:
    """Processes A and B serving the same agency; their ports."""
    with serve_process(agency, POLL) as (_, port_a), serve_process(agency, POLL) as (_, port_b):
        yield port_a, port_b


def test_hot3_a_hit_committed_in_one_process_reaches_a_stream_held_by_another(
    federation: Federation, two_processes: tuple[int, int]
) -> None:
    port_a, port_b = two_processes
    with ExitStack() as stack:

        def channel(port: int, name: str) -> grpc.Channel:
            tls = federation.client(LAPD, PrincipalKind.DEVICE, name)
            return stack.enter_context(
                grpc.secure_channel(f"localhost:{port}", tls.channel_credentials())
            )

        patrol = pb_grpc.PatrolServiceStub(channel(port_b, "car-1"))
        stream = Stream(patrol.StreamHits(pb.StreamHitsRequest(after_cursor=0), timeout=60))
        stack.callback(stream.close)
        assert stream.next(skip_heartbeats=False).HasField("heartbeat")  # subscribed on B
        stamp = Timestamp()
        stamp.GetCurrentTime()
        camera = capture_grpc.CaptureServiceStub(channel(port_a, "cam-7"))
        answer = camera.SubmitReads(
            capture_pb.SubmitReadsRequest(
                camera_id="cam-7",
                reads=[capture_pb.PlateRead(plate="7ABC123", confidence=0.9, captured_at=stamp)],
            ),
            timeout=TIMEOUT,
        )
        assert answer.hit_count == 1
        received = stream.next()
        assert (received.cursor, received.hit.plate, received.hit.camera_id) == (
            1, "7ABC123", "cam-7",
        )  # fmt: skip
