"""Frames in, reads out: rendered frames through CaptureService.SubmitFrames to stored reads.

CAP-1 (a read keeps text, confidence, box, crop, frame, time, place, camera), CAP-2 (found and
read by the node's own models), HOT-1 (matched as committed); acknowledged after commit; a
corrupt frame, or one whose header announces more pixels than the node decodes, is refused
by name; a camera past its rate limit and a call past the node's message limit are refused
with RESOURCE_EXHAUSTED naming the limit; a frame sent again under its id is answered as
the first time, its reads stored and its hits raised once (on both databases).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

pytest.importorskip("onnxruntime", reason="the capture extra is not installed")
pytest.importorskip("PIL", reason="the capture extra is not installed")

import cv2  # after the skips above

from alpr.capture.v1 import capture_service_pb2 as pb
from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from node.capture import ModelFiles
from node.capture.files import MIN_TEXT_CONFIDENCE
from node.capture.frames import MAX_FRAME_BYTES
from node.capture.headers import MAX_FRAME_PIXELS
from node.capture.reader import PlateReader, decode_image
from node.hotlists.entry import HotlistEntry, ListType
from node.identity import PrincipalKind
from node.reads import ImageStore
from node.store.models import utc
from tests.support.bombs import png_bomb
from tests.support.clock import START, ManualClock
from tests.support.frames import KnownFrame, clear_frame
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation

TIMEOUT = 60  # the first call starts the worker processes and loads the models


@dataclass
class Camera:
    node: RunningNode
    stub: pb_grpc.CaptureServiceStub

    def send(
        self, *images: bytes, camera_id: str = "cam-7", ids: Sequence[str] = ()
    ) -> pb.SubmitFramesResponse:
        stamp = Timestamp()
        stamp.FromDatetime(START)
        named = [*ids, *[""] * (len(images) - len(ids))]  # no id for the rest
        frames = [
            pb.CameraFrame(
                image=image, captured_at=stamp, latitude=34.05, longitude=-118.24, frame_id=id_
            )
            for image, id_ in zip(images, named, strict=True)
        ]
        request = pb.SubmitFramesRequest(camera_id=camera_id, frames=frames)
        return self.stub.SubmitFrames(request, timeout=TIMEOUT)


def jpeg(known: KnownFrame) -> bytes:
    ok, data = cv2.imencode(".jpg", known.frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return data.tobytes()


def blank_jpeg() -> bytes:
    """A small frame with no plate: read fast, acknowledged with none."""
    ok, blank = cv2.imencode(".jpg", clear_frame(24).frame[:60, :60])
    assert ok
    return bytes(blank.tobytes())


def overlap(a: Sequence[int | None], b: Sequence[int]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    assert None not in a
    ax0, ay0, ax1, ay1 = (int(v or 0) for v in a)
    bx0, by0, bx1, by1 = b
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return info


@contextmanager
def camera_on(
    federation: Federation,
    tmp_path: Path,
    clock: ManualClock,
    store_url: str = "",
    min_confidence: float = MIN_TEXT_CONFIDENCE,
) -> Iterator[Camera]:
    config = dataclasses.replace(
        make_node(federation, tmp_path / "lapd", LAPD, store_url=store_url),
        frames_per_second=4,
        min_confidence=min_confidence,
        capture_workers=1,
    )
    device = federation.client(LAPD, PrincipalKind.DEVICE, "cam-7")
    with serving(config, clock=clock) as node, node.channel(device) as channel:
        yield Camera(node, pb_grpc.CaptureServiceStub(channel))


@pytest.fixture
def camera(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[Camera]:
    with camera_on(federation, tmp_path, clock) as camera:
        yield camera


@pytest.fixture
def camera_on_each_database(
    federation: Federation, tmp_path: Path, clock: ManualClock, database_url: str
) -> Iterator[Camera]:
    with camera_on(federation, tmp_path, clock, database_url) as camera:
        yield camera


class TestSubmitFrames:
    def test_cap1_frames_become_committed_reads_before_the_acknowledgement(
        self, camera: Camera
    ) -> None:
        known = [clear_frame(seed) for seed in (21, 22)]
        images = [jpeg(k) for k in known]
        response = camera.send(*images)
        assert camera.node.services.frames.workers == 1  # [capture] workers
        assert [[p.plate for p in f.plates] for f in response.frames] == [[k.text] for k in known]
        # Every read acknowledged is already in the store, with what CAP-1 asks.
        stored = {record.id: record for record in camera.node.stored_reads()}
        store = ImageStore(camera.node.config.images)
        for frame, image, k in zip(response.frames, images, known, strict=True):
            (plate,) = frame.plates
            record = stored[plate.read_id]
            assert (record.plate, record.camera_id) == (k.text, "cam-7")
            assert record.confidence == pytest.approx(plate.confidence)
            assert utc(record.captured_at) == START  # SQLite gives it back naive
            assert (record.latitude, record.longitude) == (34.05, -118.24)
            assert record.vehicle_image_sha256 == hashlib.sha256(image).hexdigest()
            assert store.path(record.plate_image_sha256).is_file()
            box = (record.box_x0, record.box_y0, record.box_x1, record.box_y1)
            assert box == tuple(plate.box)
            assert overlap(box, k.box) > 0.5  # where the plate was drawn
            assert 0 < plate.detection_confidence <= 1

    def test_hot1_a_frame_whose_reads_fail_to_commit_is_not_acknowledged(
        self, camera: Camera, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The hits are written after the reads, in their transaction: if that fails, no read
        is kept or acknowledged (the images, written first by content hash, serve the resend).
        """

        def fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the store went away")

        monkeypatch.setattr(camera.node.services.hits, "record_hits", fail)
        known = clear_frame(28)
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(jpeg(known), ids=["frame-1"])
        assert raised.value.code() is grpc.StatusCode.INTERNAL
        assert camera.node.stored_reads() == []
        monkeypatch.undo()
        (frame,) = camera.send(jpeg(known), ids=["frame-1"]).frames  # sent again: read now
        assert [p.plate for p in frame.plates] == [known.text]
        assert [record.id for record in camera.node.stored_reads()] == [frame.plates[0].read_id]

    def test_hot1_a_plate_read_in_a_frame_is_matched_as_it_is_committed(
        self, camera: Camera
    ) -> None:
        known = clear_frame(23)
        hotlists = camera.node.services.hotlists
        hotlists.create_list("stolen")
        hotlists.add("stolen", [HotlistEntry(plate=known.text, list_type=ListType.STOLEN_VEHICLE)])
        response = camera.send(jpeg(known))
        assert response.hit_count == 1
        assert len(camera.node.services.hits.after(0)) == 1

    def test_cap2_a_read_less_sure_than_the_nodes_min_confidence_is_not_kept(
        self, federation: Federation, tmp_path: Path, clock: ManualClock
    ) -> None:
        """node.toml's ``[capture] min_confidence`` reaches the worker processes."""
        image = jpeg(clear_frame(21))
        ((plate,),) = PlateReader(ModelFiles.shipped()).read([decode_image(image, "frame")])
        above = plate.confidence + 0.0001  # the default (0.2) would keep it
        with camera_on(federation, tmp_path, clock, min_confidence=above) as camera:
            response = camera.send(image)
            assert [list(f.plates) for f in response.frames] == [[]]
            assert camera.node.stored_reads() == []

    def test_cap2_a_frame_without_plates_is_acknowledged_with_none(self, camera: Camera) -> None:
        response = camera.send(blank_jpeg())
        assert [list(f.plates) for f in response.frames] == [[]]
        assert camera.node.stored_reads() == []

    @pytest.mark.parametrize(
        ("corrupt", "problem"),
        [
            (b"\xff\xd8\xff not a jpeg", "is not a JPEG or PNG image"),  # refused by its header
            (png_bomb(64, 48)[:50], "is not a decodable image"),  # header fine, data cut short
        ],
    )
    def test_fails_for_a_corrupt_frame_naming_it_and_stores_nothing(
        self, camera: Camera, corrupt: bytes, problem: str
    ) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(jpeg(clear_frame(25)), corrupt)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert f"frames[1].image: {problem}" in (raised.value.details() or "")
        assert camera.node.stored_reads() == []

    def test_fails_for_a_frame_sent_without_its_time_before_reading_it(
        self, camera: Camera
    ) -> None:
        """A frame must say when it was taken: never stored as taken in 1970 (CAP-1)."""
        request = pb.SubmitFramesRequest(
            camera_id="cam-7", frames=[pb.CameraFrame(image=jpeg(clear_frame(27)))]
        )
        with pytest.raises(grpc.RpcError) as raised:
            camera.stub.SubmitFrames(request, timeout=TIMEOUT)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(raised.value).metadata["field"] == "frames[0].captured_at"
        assert camera.node.services.frame_limit.cameras() == 0  # refused before it was counted
        assert camera.node.stored_reads() == []

    def test_fails_for_a_decompression_bomb_before_decoding_it(self, camera: Camera) -> None:
        """12 KB of PNG announcing 10,000 x 10,000 pixels (300 MB decoded) is never decoded."""
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(blank_jpeg(), png_bomb(10_000, 10_000))
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {MAX_FRAME_PIXELS} pixels a frame" in (raised.value.details() or "")
        assert error_info(raised.value).metadata["field"] == "frames[1].image"
        assert camera.node.services.frame_limit.cameras() == 0  # refused before it was counted
        assert camera.node.stored_reads() == []

    def test_fails_for_too_many_frames(self, camera: Camera) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(*[b"x"] * 17)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "frames" in (raised.value.details() or "")


class TestLimits:
    def test_fails_for_a_camera_past_its_rate_until_time_passes(
        self, camera: Camera, clock: ManualClock
    ) -> None:
        """4 frames a second in bursts of 16: the 17th frame waits 1/4 s; others are not held."""
        known = jpeg(clear_frame(26))
        camera.send(*[blank_jpeg()] * 16)
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(known)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "'cam-7' sent more than 4 frames a second" in (raised.value.details() or "")
        info = error_info(raised.value)
        assert info.reason == "RATE_LIMITED"
        assert (info.metadata["cameraId"], info.metadata["retryAfterSeconds"]) == ("cam-7", "0.250")
        assert camera.node.stored_reads() == []
        camera.send(blank_jpeg(), camera_id="cam-8")  # another camera has its own share
        clock.advance(timedelta(seconds=0.25))
        (frame,) = camera.send(known).frames
        assert [record.id for record in camera.node.stored_reads()] == [frame.plates[0].read_id]

    def test_fails_for_a_camera_id_before_counting_it(self, camera: Camera) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(blank_jpeg(), camera_id="c" * 65)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(raised.value).metadata["field"] == "camera_id"
        assert camera.node.services.frame_limit.cameras() == 0

    def test_fails_for_a_call_past_the_message_limit_naming_it(self, camera: Camera) -> None:
        """16 frames of 2 MiB are 32 MiB: past the node's 4 MiB, refused before any is read."""
        largest = blank_jpeg().ljust(MAX_FRAME_BYTES, b"\0")  # still decodes: JPEG ends at EOI
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(*[largest] * 16)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        limit = camera.node.config.max_message_bytes
        assert f"vs. {limit}" in (raised.value.details() or "")
        assert camera.node.services.frame_limit.cameras() == 0
        (frame,) = camera.send(largest).frames  # one frame of the largest size fits
        assert list(frame.plates) == []


class TestRepeats:
    def test_a_frame_sent_again_is_answered_as_before_and_stored_once(
        self, camera_on_each_database: Camera
    ) -> None:
        """Its acknowledgement lost, a camera sends the call again: same ids, no new hit."""
        camera = camera_on_each_database
        known = [clear_frame(seed) for seed in (41, 42)]
        hotlists = camera.node.services.hotlists
        hotlists.create_list("stolen")
        hotlists.add(
            "stolen", [HotlistEntry(plate=known[0].text, list_type=ListType.STOLEN_VEHICLE)]
        )
        images = [jpeg(k) for k in known]
        first = camera.send(*images, blank_jpeg(), ids=["f-1", "f-2", "f-3"])
        assert first.hit_count == 1
        again = camera.send(*images, blank_jpeg(), ids=["f-1", "f-2", "f-3"])
        assert again == first  # the same read ids, plates, boxes and hit count
        assert len(camera.node.stored_reads()) == 2
        assert len(camera.node.services.hits.after(0)) == 1
        # A new frame beside a repeated one: only the new one is read and stored.
        third = camera.send(images[1], jpeg(clear_frame(43)), ids=["f-2", "f-4"])
        assert third.frames[0] == first.frames[1]
        assert third.hit_count == 0
        assert len(camera.node.stored_reads()) == 3

    def test_a_frame_without_an_id_is_stored_each_time_it_is_sent(self, camera: Camera) -> None:
        image = jpeg(clear_frame(44))
        first, again = camera.send(image), camera.send(image)
        assert first.frames[0].plates[0].read_id != again.frames[0].plates[0].read_id
        assert len(camera.node.stored_reads()) == 2

    def test_fails_for_an_id_sent_before_with_another_frame(self, camera: Camera) -> None:
        camera.send(jpeg(clear_frame(45)), ids=["f-1"])
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(blank_jpeg(), jpeg(clear_frame(46)), ids=["f-9", "f-1"])
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(raised.value).metadata["field"] == "frames[1].frame_id"
        assert "'f-1' was sent before with something else" in (raised.value.details() or "")
        assert len(camera.node.stored_reads()) == 1

    @pytest.mark.parametrize(
        ("ids", "field", "problem"),
        [
            (["f-1", "f-1"], "frames[1].frame_id", "is frames[0].frame_id's too"),
            (["x" * 65], "frames[0].frame_id", "at most 64 printable characters"),
            (["f\n1"], "frames[0].frame_id", "at most 64 printable characters"),
        ],
    )
    def test_fails_for_an_unusable_id_before_counting_the_call(
        self, camera: Camera, ids: list[str], field: str, problem: str
    ) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            camera.send(*[blank_jpeg()] * len(ids), ids=ids)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(raised.value).metadata["field"] == field
        assert problem in (raised.value.details() or "")
        assert camera.node.services.frame_limit.cameras() == 0
