"""`alpr capture watch DIR`: a camera's drop folder sent to a real node on loopback.

CAP-1 (each frame's reads keep the camera, its place and the frame's time), CAP-2 (read by
the node's own models); a frame moves to done/ only once acknowledged, to failed/ with a
.why when refused as invalid; a rate-limited or unreachable node loses and double-files
nothing; large batches are split to fit the node's message limit. Time on the node is the
ManualClock's; the watcher's waits are a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import cast

import grpc
import pytest

pytest.importorskip("onnxruntime", reason="the capture extra is not installed")
pytest.importorskip("PIL", reason="the capture extra is not installed")

import cv2  # after the skips above

from alpr.capture.v1 import capture_service_pb2 as pb
from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from gateway.capture_watch import Backoff, Camera, DropFolder, FrameWatcher
from gateway.cli import main
from gateway.config import NodeConfig
from node.identity import PrincipalKind
from node.store.models import utc
from tests.support.clock import START, ManualClock
from tests.support.frames import clear_frame
from tests.support.nodes import ROOT, RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation

TIMEOUT = "60"  # the first call starts the node's worker processes and loads the models
MIB = 1024 * 1024


@pytest.fixture
def config(federation: Federation, tmp_path: Path) -> NodeConfig:
    return make_node(federation, tmp_path / "lapd", LAPD)


@pytest.fixture
def node(config: NodeConfig, clock: ManualClock) -> Iterator[RunningNode]:
    with serving(config, clock=clock) as running:
        yield running


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    (tmp_path / "drop").mkdir()
    return tmp_path / "drop"


def jpeg(seed: int, *, size: int = 0) -> bytes:
    """A frame with one plate, padded to `size` bytes (a JPEG ends at its EOI marker)."""
    ok, data = cv2.imencode(".jpg", clear_frame(seed).frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(data.tobytes()).ljust(size, b"\0")


def blank() -> bytes:
    ok, data = cv2.imencode(".jpg", clear_frame(24).frame[:60, :60])
    assert ok
    return bytes(data.tobytes())


def drop_frame(drop: Path, name: str, image: bytes) -> Path:
    path = drop / name
    path.write_bytes(image)
    os.utime(path, (START.timestamp(), START.timestamp()))  # when the camera wrote it
    return path


def watch_args(federation: Federation, target: str, drop: Path, *more: str) -> list[str]:
    cert, key = federation.client_files(LAPD, PrincipalKind.DEVICE, "cam-7")
    return [
        "capture", "watch", str(drop), "--camera", "cam-7", "--once", "--interval", "0",
        "--target", target, "--ca", str(federation.ca_file), "--cert", str(cert),
        "--key", str(key), "--timeout", TIMEOUT, *more,
    ]  # fmt: skip


class Watcher:
    """A FrameWatcher on a real channel, recording the calls it makes and what it says."""

    def __init__(
        self, node: RunningNode, federation: Federation, drop: Path, *, batch_bytes: int
    ) -> None:
        self.node, self.drop = node, drop
        self.calls: list[pb.SubmitFramesRequest] = []
        self.said: list[str] = []
        self.reported: list[dict[str, object]] = []
        self.on_call: Callable[[], object] = lambda: None
        self.on_say: Callable[[], object] = lambda: None
        self.lost_acks = 0  # calls whose answer is lost after the node took them
        self._device = federation.client(LAPD, PrincipalKind.DEVICE, "cam-7")
        self._batch_bytes = batch_bytes
        self.watcher: FrameWatcher | None = None

    def run(self) -> FrameWatcher:
        with self.node.channel(self._device) as channel:
            stub = pb_grpc.CaptureServiceStub(channel)

            def submit(request: pb.SubmitFramesRequest) -> pb.SubmitFramesResponse:
                self.calls.append(request)
                self.on_call()
                answer = stub.SubmitFrames(request, timeout=int(TIMEOUT))
                if self.lost_acks:
                    self.lost_acks -= 1
                    raise grpc.RpcError("the connection dropped after the node committed")
                return answer

            def say(line: str) -> None:
                self.said.append(line)
                self.on_say()

            self.watcher = FrameWatcher(
                DropFolder(self.drop),
                submit,
                Camera(camera_id="cam-7"),
                batch_bytes=self._batch_bytes,
                backoff=Backoff(0.001, 0.004),
                say=say,
                report=self.reported.append,
            )
            self.watcher.run(interval=0, once=True)
            return self.watcher


def filed(drop: Path, folder: str) -> list[str]:
    return (
        sorted(path.name for path in (drop / folder).iterdir()) if (drop / folder).exists() else []
    )


def waiting(drop: Path) -> list[str]:
    return sorted(path.name for path in drop.iterdir() if path.is_file())


class TestCaptureWatch:
    def test_cap1_cap2_dropped_frames_become_reads_then_move_to_done(
        self,
        node: RunningNode,
        federation: Federation,
        drop: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        known = [clear_frame(seed) for seed in (31, 32)]
        for number, seed in enumerate((31, 32)):
            drop_frame(drop, f"frame-{number}.jpg", jpeg(seed))
        args = watch_args(
            federation, node.target, drop, "--latitude", "34.05", "--longitude", "-118.24"
        )
        assert main(args) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["moved"] for line in lines] == [
            str(drop / "done" / f"frame-{n}.jpg") for n in range(2)
        ]
        assert [[p["text"] for p in line["plates"]] for line in lines] == [[k.text] for k in known]
        assert (waiting(drop), filed(drop, "done")) == ([], ["frame-0.jpg", "frame-1.jpg"])
        records = {record.id: record for record in node.stored_reads()}
        for line, frame in zip(lines, known, strict=True):
            record = records[line["plates"][0]["read_id"]]
            assert (record.plate, record.camera_id) == (frame.text, "cam-7")
            assert utc(record.captured_at) == START  # the file's time: when the camera wrote it
            assert (record.latitude, record.longitude) == (34.05, -118.24)

    def test_a_call_whose_acknowledgement_was_lost_is_sent_again_and_stored_once(
        self, node: RunningNode, federation: Federation, drop: Path
    ) -> None:
        names = ["frame-0.jpg", "frame-1.jpg"]
        for name, seed in zip(names, (51, 52), strict=True):
            drop_frame(drop, name, jpeg(seed))
        watcher = Watcher(node, federation, drop, batch_bytes=NodeConfig.max_message_bytes)
        watcher.lost_acks = 1
        watcher.run()
        first, again = watcher.calls
        assert again == first  # the same frames, under the same ids
        assert all(len(frame.frame_id) == 64 for frame in first.frames)
        assert filed(drop, "done") == names
        reported = [
            plate["read_id"]
            for line in watcher.reported
            for plate in cast("list[dict[str, str]]", line["plates"])
        ]
        assert sorted(record.id for record in node.stored_reads()) == sorted(reported)
        assert len(reported) == 2

    def test_fails_a_corrupt_frame_into_failed_with_why_and_files_the_rest(
        self,
        node: RunningNode,
        federation: Federation,
        drop: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        drop_frame(drop, "a-good.jpg", jpeg(33))
        drop_frame(drop, "b-bad.jpg", b"\xff\xd8\xff not a jpeg")
        drop_frame(drop, "c-huge.png", b"\x89PNG".ljust(2 * MIB + 1, b"\0"))
        assert main(watch_args(federation, node.target, drop)) == 1
        assert filed(drop, "done") == ["a-good.jpg"]
        assert filed(drop, "failed") == [
            "b-bad.jpg",
            "b-bad.jpg.why",
            "c-huge.png",
            "c-huge.png.why",
        ]
        why = (drop / "failed" / "b-bad.jpg.why").read_text()
        assert why == "frames[1].image: is not a JPEG or PNG image (its header cannot be read)\n"
        assert (
            "the node takes frames of at most 2097152"
            in (drop / "failed" / "c-huge.png.why").read_text()
        )
        assert len(node.stored_reads()) == 1
        assert waiting(drop) == []
        capsys.readouterr()

    def test_gives_up_with_once_when_no_node_answers_leaving_every_frame(
        self, federation: Federation, drop: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        drop_frame(drop, "a.jpg", blank())
        more = ("--retry-seconds", "0.001", "--max-retry-seconds", "0.004")
        assert main(watch_args(federation, f"127.0.0.1:{port}", drop, *more)) == 2
        error = capsys.readouterr().err
        assert "not taken (UNAVAILABLE" in error
        assert "alpr: error: the node did not take the frames (UNAVAILABLE" in error
        assert (waiting(drop), filed(drop, "done")) == (["a.jpg"], [])

    def test_ctrl_c_stops_cleanly_after_filing_what_was_taken(
        self, node: RunningNode, federation: Federation, drop: Path
    ) -> None:
        """The watching process, interrupted once it filed a frame, exits 0 and loses none."""
        drop_frame(drop, "a.jpg", blank())
        args = watch_args(federation, node.target, drop)
        args.remove("--once")
        args[args.index("--interval") + 1] = "0.05"
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killer = threading.Timer(60, process.kill)  # a watcher that never files fails, not hangs
        killer.start()
        try:
            assert process.stdout is not None
            line = json.loads(process.stdout.readline())  # a.jpg acknowledged and filed
            assert line["moved"] == str(drop / "done" / "a.jpg")
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            killer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        assert (waiting(drop), filed(drop, "done")) == ([], ["a.jpg"])


class TestWatchLimits:
    def test_backs_off_on_the_rate_limit_losing_and_repeating_nothing(
        self, federation: Federation, tmp_path: Path, drop: Path, clock: ManualClock
    ) -> None:
        config = dataclasses.replace(
            make_node(federation, tmp_path / "lapd", LAPD), frames_per_second=1
        )
        names = [f"frame-{number:02}.jpg" for number in range(20)]
        for name in names:
            drop_frame(drop, name, blank())
        with serving(config, clock=clock) as node:
            watcher = Watcher(node, federation, drop, batch_bytes=NodeConfig.max_message_bytes)
            watcher.on_say = lambda: clock.advance(timedelta(seconds=4))  # time passes as it waits
            assert watcher.run().failed == 0
        assert [len(call.frames) for call in watcher.calls] == [16, 4, 4]
        assert (
            "not taken (RESOURCE_EXHAUSTED camera 'cam-7' sent more than 1 frames"
            in watcher.said[0]
        )
        assert (waiting(drop), filed(drop, "done")) == ([], names)

    def test_splits_a_large_batch_to_fit_the_message_limit(
        self, node: RunningNode, federation: Federation, drop: Path
    ) -> None:
        """Five frames of 1.5 MiB: 7.5 MiB, in calls of at most the node's 4 MiB."""
        for number in range(5):
            drop_frame(drop, f"frame-{number}.jpg", jpeg(40 + number, size=3 * MIB // 2))
        watcher = Watcher(node, federation, drop, batch_bytes=NodeConfig.max_message_bytes)
        watcher.run()
        assert [len(call.frames) for call in watcher.calls] == [2, 2, 1]
        assert all(call.ByteSize() <= node.config.max_message_bytes for call in watcher.calls)
        assert len(filed(drop, "done")) == 5
        assert len(node.stored_reads()) == 5
        assert watcher.said == []

    def test_halves_its_batches_when_the_node_refuses_one_as_too_large(
        self, node: RunningNode, federation: Federation, drop: Path
    ) -> None:
        for number in range(5):
            drop_frame(drop, f"frame-{number}.jpg", jpeg(40 + number, size=3 * MIB // 2))
        watcher = Watcher(node, federation, drop, batch_bytes=64 * MIB)
        watcher.run()
        assert [len(call.frames) for call in watcher.calls] == [5, 2, 2, 1]
        assert "refused 5 frames as too large" in watcher.said[0]
        assert len(filed(drop, "done")) == 5
        assert len(node.stored_reads()) == 5

    def test_stops_after_the_call_in_flight_is_filed(
        self, node: RunningNode, federation: Federation, drop: Path
    ) -> None:
        """Ctrl-C: the first call is answered and its frame filed; the others wait."""
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            drop_frame(drop, name, blank())
        watcher = Watcher(node, federation, drop, batch_bytes=1)  # one frame a call

        def interrupted() -> None:
            assert watcher.watcher is not None
            watcher.watcher.stop()

        watcher.on_call = interrupted
        watcher.run()
        assert len(watcher.calls) == 1
        assert (filed(drop, "done"), waiting(drop)) == (["a.jpg"], ["b.jpg", "c.jpg"])
