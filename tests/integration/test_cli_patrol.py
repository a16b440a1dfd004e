"""`alpr patrol` in process against a real node on loopback, keys scripted on stdin.

HOT-3 (hits shown as they arrive, resumed from the saved cursor after a dropped
connection, none lost), HOT-4 (a disposition with one key per hit).
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alpr.patrol.v1 import patrol_service_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc
from gateway.cli import main
from gateway.config import NodeConfig
from gateway.node_dir import open_node
from gateway.services import Services
from node.hotlists.entry import HotlistEntry, ListType
from node.identity import PrincipalKind
from node.reads import NewRead
from tests.support.bombs import small_png
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation
from tests.support.streams import TIMEOUT, Stream

CROP = small_png(b"plate crop")


@dataclass
class Car:
    """The patrol client's arguments, its state file, and its run in a thread."""

    args: list[str]
    state: Path
    exit_code: int | None = None

    def start(self, keys: str, monkeypatch: pytest.MonkeyPatch) -> threading.Thread:
        monkeypatch.setattr(sys, "stdin", io.StringIO(keys))

        def run() -> None:
            self.exit_code = main(self.args)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def config(federation: Federation, tmp_path: Path) -> NodeConfig:
    return replace(make_node(federation, tmp_path / "lapd", LAPD), heartbeat_seconds=0.2)


@pytest.fixture
def node(config: NodeConfig, clock: ManualClock) -> Iterator[RunningNode]:
    with serving(config, clock=clock) as running:
        running.services.hotlists.create_list("stolen")
        running.services.hotlists.add(
            "stolen",
            [HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="armed")],
        )
        yield running


def car_for(federation: Federation, port: int, tmp_path: Path, cursor: int) -> Car:
    """A car whose state file resumes after `cursor`."""
    cert, key = federation.client_files(LAPD, PrincipalKind.DEVICE, "car-1")
    state = tmp_path / "patrol.json"
    state.write_text(json.dumps({"cursor": cursor}))
    args = [
        "patrol", "--target", f"localhost:{port}", "--ca", str(federation.ca_file),
        "--cert", str(cert), "--key", str(key), "--state", str(state),
        "--retry-seconds", "0.05", "--max-retry-seconds", "0.5",
    ]  # fmt: skip
    return Car(args, state)


def commit(services: Services, *plates: str) -> list[int]:
    reads = [NewRead(plate=p, confidence=0.9, captured_at=START, plate_image=CROP) for p in plates]
    return services.reads.commit("cam-7", reads).hit_cursors


def test_hot4_each_hit_is_shown_with_a_bell_and_settled_by_one_key(
    federation: Federation,
    node: RunningNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [before] = commit(node.services, "7ABC123")
    car = car_for(federation, node.port, tmp_path, before)
    thread = car.start("v\nm\n", monkeypatch)
    commit(node.services, "7ABC123", "7A8C123")
    thread.join(timeout=TIMEOUT * 3)
    assert not thread.is_alive()
    assert car.exit_code == 0
    out = capsys.readouterr().out
    assert out.count("\aHIT ") == 2
    assert "HIT 7ABC123  list stolen (CA0194200)  stolen_vehicle" in out
    assert "reason   armed" in out
    assert "camera cam-7" in out
    assert "crop     sha256 " in out
    assert "~ confusable characters (confidence 0.80): listed 7ABC123; 3: read 8, listed B" in out
    hits = [e.message for e in node.services.hits.after(before) if isinstance(e.message, pb.Hit)]
    assert [node.services.hits.hit(h.hit_id).disposition for h in hits] == [
        "DISPOSITION_VISUALLY_VERIFIED", "DISPOSITION_MISREAD",
    ]  # fmt: skip
    assert json.loads(car.state.read_text())["cursor"] >= before + 2


def test_hot3_a_dropped_connection_resumes_from_the_saved_cursor_and_loses_no_hit(
    federation: Federation,
    config: NodeConfig,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ExitStack() as first:
        node = first.enter_context(serving(config, clock=clock))
        node.services.hotlists.create_list("stolen")
        node.services.hotlists.add(
            "stolen", [HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE)]
        )
        port = node.port
        [before] = commit(node.services, "7ABC123")
        car = car_for(federation, port, tmp_path, before)
        watcher = first.enter_context(
            node.channel(federation.client(LAPD, PrincipalKind.DEVICE, "dispatch"))
        )
        watch = Stream(
            pb_grpc.PatrolServiceStub(watcher).StreamHits(pb.StreamHitsRequest(after_cursor=before))
        )
        first.callback(watch.close)
        thread = car.start("v\nv\n", monkeypatch)
        [seen] = commit(node.services, "7ABC123")
        assert watch.next().cursor == seen
        assert watch.next().HasField("disposition")  # the car settled the first hit
    # The node is down: a hit committed now reaches the car when it is back.
    opened = open_node(config, now=datetime.now(UTC))
    [missed] = commit(Services.build(opened, clock=clock), "7ABC123")
    opened.engine.dispose()
    with serving(replace(config, listen=f"127.0.0.1:{port}"), clock=clock) as again:
        thread.join(timeout=TIMEOUT * 3)
        assert not thread.is_alive()
        assert car.exit_code == 0
        dispositions = [
            again.services.hits.hit(e.message.hit_id).disposition
            for e in again.services.hits.after(before)
            if isinstance(e.message, pb.Hit)
        ]
    assert dispositions == ["DISPOSITION_VISUALLY_VERIFIED"] * 2
    out = capsys.readouterr().out
    assert "connection lost" in out
    assert out.count("\aHIT 7ABC123") == 2
    assert json.loads(car.state.read_text())["cursor"] >= missed
