"""PlateReader: frames in, normalized plates with confidences and boxes out (CAP-2)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np
import pytest

from node.capture import ModelError, ModelFiles, ReadThresholds
from node.capture.frames import FrameReader, usable_cores
from node.capture.reader import (
    CROP_VARIANTS,
    MAX_PLATES_A_FRAME,
    ImageError,
    PlateReader,
    _cut,
    _text,
    decode_image,
)
from tests.support.frames import clear_frame
from tests.support.offline import ATTEMPT, UNREACHABLE, UNREACHABLE_CHECK, run_offline

SEEDS = range(8)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter_w * inter_h
    return inter_w * inter_h / union


class TestRead:
    def test_cap2_reads_at_most_max_plates_a_frame_however_low_min_score_is(self) -> None:
        """At a floor of 1e-6 a blank frame has some 150 boxes: only the best 50 are read."""
        lowest = PlateReader(
            ModelFiles.shipped(), thresholds=ReadThresholds(min_score=1e-6, min_confidence=0)
        )
        blank = np.full((540, 960, 3), 128, np.uint8)
        found = lowest.detect(blank)
        assert len(found) == MAX_PLATES_A_FRAME
        assert [score for _, score in found] == sorted((s for _, s in found), reverse=True)
        assert len(lowest.read([blank])[0]) <= MAX_PLATES_A_FRAME

    def test_cap2_reads_clear_plates_with_their_box_and_confidences(
        self, reader: PlateReader
    ) -> None:
        known = [clear_frame(seed) for seed in SEEDS]
        results = reader.read([k.frame for k in known])
        for frame, plates in zip(known, results, strict=True):
            assert [p.text for p in plates] == [frame.text]
            (plate,) = plates
            assert _overlap(plate.box, frame.box) > 0.6
            assert 0 < plate.confidence <= 1
            assert reader.thresholds.min_score <= plate.detection_confidence <= 1

    def test_cap2_frame_without_plates_reads_nothing(self, reader: PlateReader) -> None:
        assert reader.read([np.full((480, 640, 3), 90, np.uint8)]) == [[]]

    def test_cap2_a_read_less_sure_than_min_confidence_is_not_reported(
        self, reader: PlateReader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        known = clear_frame(5)
        ((plate,),) = reader.read([known.frame])
        assert plate.confidence >= reader.thresholds.min_confidence
        at = ReadThresholds(min_confidence=plate.confidence)
        monkeypatch.setattr(reader, "thresholds", at)
        assert [p.text for p in reader.read([known.frame])[0]] == [known.text]
        above = ReadThresholds(min_confidence=plate.confidence + 0.0001)
        monkeypatch.setattr(reader, "thresholds", above)
        assert reader.read([known.frame]) == [[]]

    def test_cap2_crops_are_read_in_batches_of_any_size(self, reader: PlateReader) -> None:
        known = clear_frame(0, width=300)
        x0, y0, x1, y1 = known.box
        crops = [known.frame[y0:y1, x0:x1]] * 70  # three OCR batches of 32
        texts = reader.read_crops(crops)
        assert len(texts) == 70
        assert len(set(texts)) == 1

    def test_cap2_each_plate_is_read_from_every_crop_variant_in_one_ocr_call(
        self, reader: PlateReader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        batches: list[int] = []
        session = reader._ocr.model  # the OCR's onnxruntime session, watched
        run = session.run

        def watched(names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            batches.append(len(feeds["input"]))
            outputs: list[np.ndarray] = run(names, feeds)
            return outputs

        monkeypatch.setattr(session, "run", watched)
        known = [clear_frame(seed) for seed in (1, 2)]
        results = reader.read([k.frame for k in known])
        assert [[p.text for p in plates] for plates in results] == [[k.text] for k in known]
        assert batches == [2 * len(CROP_VARIANTS)]

    def test_cap2_a_single_crop_is_read_as_fast_plate_ocr_reads_it(
        self, reader: PlateReader
    ) -> None:
        for seed in SEEDS:
            known = clear_frame(seed, width=120)
            x0, y0, x1, y1 = known.box
            crop = known.frame[y0:y1, x0:x1]
            (ours,) = reader.read_crops([crop])
            (theirs,) = reader._ocr.run(  # the library's own read of it
                cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), return_confidence=True
            )
            assert ours == _text(theirs.plate, theirs.char_probs)

    def test_cap2_crop_variants_move_the_box_edges_and_stay_in_the_frame(self) -> None:
        frame = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200).astype(np.uint8)
        assert CROP_VARIANTS[0] == (0, 0, 0, 0)
        assert (_cut(frame, (50, 20, 150, 70), CROP_VARIANTS[0]) == frame[20:70, 50:150]).all()
        moved = _cut(frame, (50, 20, 150, 70), (0.1, 0.2, -0.3, 0.4))
        assert (moved == frame[10:90, 40:120]).all()
        assert _cut(frame, (0, 0, 200, 100), (0.06, 0.06, 0.06, 0.06)).shape == (100, 200)

    def test_cap2_reads_a_jpeg_frame_from_bytes(self, reader: PlateReader) -> None:
        known = clear_frame(3)
        ok, jpeg = cv2.imencode(".jpg", known.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (plates,) = reader.read([decode_image(jpeg.tobytes(), "frame 1")])
        assert [p.text for p in plates] == [known.text]

    def test_cap2_nothing_reaches_the_network(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(*_: object, **__: object) -> NoReturn:
            raise AssertionError("the reader reached for the network")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket.socket, "connect_ex", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        monkeypatch.setattr(socket, "getaddrinfo", refuse)
        fresh = PlateReader(ModelFiles.shipped())  # loading the models, too
        known = clear_frame(5)
        assert [p.text for p in fresh.read([known.frame])[0]] == [known.text]

    def test_cap2_the_nodes_worker_processes_read_with_no_network_at_all(
        self, tmp_path: Path
    ) -> None:
        """The pool the node reads frames in: loading, reading, in processes of their own."""
        known = clear_frame(5)
        ok, jpeg = cv2.imencode(".jpg", known.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (tmp_path / "frame.jpg").write_bytes(jpeg.tobytes())
        script = tmp_path / "read_frames.py"
        script.write_text(
            UNREACHABLE_CHECK
            + f"""
import asyncio
from pathlib import Path
from node.capture import ModelFiles
from node.capture.frames import FrameReader

if __name__ == "__main__":  # the workers are spawned: they import this file
    check_unreachable()
    forbid_network()
    reader = FrameReader(ModelFiles.shipped(), workers=2)
    (result,) = asyncio.run(reader.read([Path({str(tmp_path / "frame.jpg")!r}).read_bytes()]))
    reader.close()
    print(*[plate.text for plate in result.plates])
"""
        )
        done = run_offline([str(script)])
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [UNREACHABLE, known.text]
        assert ATTEMPT not in done.stderr  # none tried, even one caught


class TestWorkers:
    def test_default_to_one_per_core_this_process_may_run_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A container or taskset limit, not the machine's count: no more workers than cores."""
        monkeypatch.setattr(os, "cpu_count", lambda: 64)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
        assert FrameReader(ModelFiles.shipped()).workers == 1
        assert FrameReader(ModelFiles.shipped(), workers=3).workers == 3

    @pytest.mark.parametrize(
        ("cpu_max", "cores"),
        [
            (None, 8),  # no cgroup v2 CPU controller: affinity alone
            ("max 100000\n", 8),  # no quota
            ("200000 100000\n", 2),  # docker --cpus 2
            ("150000 100000\n", 1),  # 1.5 cores: the whole one below
            ("50000 100000\n", 1),  # half a core: still one
            ("1600000 100000\n", 8),  # a quota past the cores affinity allows
        ],
    )
    def test_usable_cores_are_affinity_within_the_cgroups_quota(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpu_max: str | None, cores: int
    ) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
        path = tmp_path / "cpu.max"
        if cpu_max is not None:
            path.write_text(cpu_max)
        assert usable_cores(path) == cores

    def test_cap2_read_frames_in_processes_of_their_own_not_on_the_event_loop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The reader is disabled in this process; the spawned workers import their own."""

        def refuse(*_: object, **__: object) -> NoReturn:
            raise AssertionError("a frame was read in the event loop's process")

        monkeypatch.setattr(PlateReader, "read", refuse)
        known = clear_frame(6)
        ok, jpeg = cv2.imencode(".jpg", known.frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        reader = FrameReader(ModelFiles.shipped(), workers=1)
        try:
            (result,) = asyncio.run(reader.read([jpeg.tobytes()]))
        finally:
            reader.close()
        assert [plate.text for plate in result.plates] == [known.text]


class TestDecode:
    @pytest.mark.parametrize("data", [b"", b"not a jpeg", b"\xff\xd8\xff\xe0" + b"\0" * 40])
    def test_fails_on_a_corrupt_image_naming_it(self, data: bytes) -> None:
        with pytest.raises(ImageError, match="frames\\[2\\]") as caught:
            decode_image(data, "frames[2]")
        assert caught.value.field == "frames[2]"


class TestModels:
    def test_fails_when_a_model_file_is_missing(self, tmp_path: Path) -> None:
        shipped = ModelFiles.shipped()
        for missing in ("detector", "ocr_model", "ocr_config"):
            files = shipped.replace(**{missing: tmp_path / "gone.onnx"} | _none_but(missing))
            with pytest.raises(ModelError, match=f"{tmp_path / 'gone.onnx'}.*no such file"):
                PlateReader(files)

    def test_fails_when_the_detector_is_not_a_detector(self) -> None:
        shipped = ModelFiles.shipped()
        files = shipped.replace(detector=shipped.ocr_model, ocr_model=None, ocr_config=None)
        with pytest.raises(ModelError, match=r"detector .*expected input \[1, 3, S, S\]"):
            PlateReader(files)

    def test_fails_when_the_ocr_model_is_not_an_ocr_model(self) -> None:
        shipped = ModelFiles.shipped()
        files = shipped.replace(detector=None, ocr_model=shipped.detector, ocr_config=None)
        with pytest.raises(ModelError, match=r"OCR model .*expected an input named 'input'"):
            PlateReader(files)

    def test_fails_when_the_plate_config_does_not_fit_the_model(self, tmp_path: Path) -> None:
        shipped = ModelFiles.shipped()
        config = tmp_path / "config.yaml"
        text = shipped.ocr_config.read_text()
        config.write_text(text.replace("max_plate_slots: 8", "max_plate_slots: 9"))
        files = shipped.replace(detector=None, ocr_model=None, ocr_config=config)
        with pytest.raises(ModelError, match="not slots x alphabet = 9 x 37"):
            PlateReader(files)

    def test_fails_when_a_file_is_not_onnx(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.onnx"
        junk.write_bytes(b"not a model")
        files = ModelFiles.shipped().replace(detector=junk, ocr_model=None, ocr_config=None)
        with pytest.raises(ModelError, match="not an ONNX model"):
            PlateReader(files)


def _none_but(name: str) -> dict[str, None]:
    return {other: None for other in ("detector", "ocr_model", "ocr_config") if other != name}
