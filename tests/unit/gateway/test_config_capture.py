"""`[capture]` in node.toml: model paths (empty: the shipped models, CAP-2), camera limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from alpr.capture.v1 import capture_service_pb2 as pb
from gateway.config import MIN_MESSAGE_BYTES, load_config, render_config
from gateway.errors import ConfigError
from node.capture.files import MIN_DETECTOR_SCORE, MIN_TEXT_CONFIDENCE, ReadThresholds
from node.capture.frames import MAX_FRAME_BYTES
from node.capture.limits import FRAMES_PER_SECOND, READS_PER_SECOND
from node.reads import MAX_CALL_IMAGE_BYTES, MAX_KEY, MAX_READS

HEAD = '[node]\nori = "CA0194200"\nname = "LAPD"\nfederation = "test.alpr"\n'


class TestCaptureModels:
    def test_cap2_empty_paths_mean_the_shipped_models(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD)
        config = load_config(tmp_path, {})
        assert (config.detector, config.ocr_model, config.ocr_config) == (None, None, None)

    def test_cap2_paths_are_relative_to_the_node_and_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD + '[capture]\ndetector = "models/det.onnx"\n')
        config = load_config(tmp_path, {"ALPR_CAPTURE_OCR_MODEL": "/srv/ocr.onnx"})
        assert config.detector == tmp_path.resolve() / "models" / "det.onnx"
        assert config.ocr_model == Path("/srv/ocr.onnx")
        assert config.ocr_config is None


class TestReadThresholds:
    def test_cap2_default_to_the_shipped_models_and_are_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD + "[capture]\nmin_score = 0.25\n")
        config = load_config(tmp_path, {"ALPR_CAPTURE_MIN_CONFIDENCE": "0.5"})
        assert config.read_thresholds == ReadThresholds(min_score=0.25, min_confidence=0.5)
        (tmp_path / "node.toml").write_text(HEAD)
        shipped = ReadThresholds(min_score=MIN_DETECTOR_SCORE, min_confidence=MIN_TEXT_CONFIDENCE)
        assert load_config(tmp_path, {}).read_thresholds == shipped

    def test_cap2_a_new_nodes_config_writes_the_shipped_models_values(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(
            render_config(
                ori="CA0194200", name="LAPD", federation="test.alpr",
                listen="127.0.0.1:7443", store_url="sqlite:///node.db",
            )
        )  # fmt: skip
        text = (tmp_path / "node.toml").read_text()
        assert f"min_score = {MIN_DETECTOR_SCORE}\n" in text
        assert f"min_confidence = {MIN_TEXT_CONFIDENCE}\n" in text
        assert "workers = 0\n" in text
        assert load_config(tmp_path, {}).read_thresholds == ReadThresholds()

    @pytest.mark.parametrize("toml", ["-0.1", "1.5", "nan", '"high"', "true"])
    def test_fails_for_a_confidence_outside_0_to_1(self, tmp_path: Path, toml: str) -> None:
        (tmp_path / "node.toml").write_text(HEAD + f"[capture]\nmin_confidence = {toml}\n")
        with pytest.raises(ConfigError, match=r"\[capture\] min_confidence: .* from 0 to 1"):
            load_config(tmp_path, {})

    @pytest.mark.parametrize("value", ["0", "-0.1", "1.5"])
    def test_fails_for_a_score_floor_not_above_0_or_above_1(
        self, tmp_path: Path, value: str
    ) -> None:
        """A floor of 0 would have the OCR model read every candidate box: seconds a frame."""
        (tmp_path / "node.toml").write_text(HEAD)
        with pytest.raises(ConfigError, match=r"ALPR_CAPTURE_MIN_SCORE: .* above 0 and at most 1"):
            load_config(tmp_path, {"ALPR_CAPTURE_MIN_SCORE": value})


class TestCaptureWorkers:
    def test_default_to_0_one_per_usable_core_and_are_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD)
        assert load_config(tmp_path, {}).capture_workers == 0
        (tmp_path / "node.toml").write_text(HEAD + "[capture]\nworkers = 3\n")
        assert load_config(tmp_path, {}).capture_workers == 3
        assert load_config(tmp_path, {"ALPR_CAPTURE_WORKERS": "1"}).capture_workers == 1

    @pytest.mark.parametrize("toml", ["-1", "65", "1.5", "true", '"two"'])
    def test_fails_for_workers_not_a_whole_number_from_0_to_64(
        self, tmp_path: Path, toml: str
    ) -> None:
        (tmp_path / "node.toml").write_text(HEAD + f"[capture]\nworkers = {toml}\n")
        with pytest.raises(ConfigError, match=r"\[capture\] workers: .* from 0 to 64"):
            load_config(tmp_path, {})


class TestCaptureLimits:
    def test_frames_per_second_has_a_default_and_is_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD)
        assert load_config(tmp_path, {}).frames_per_second == FRAMES_PER_SECOND
        config = load_config(tmp_path, {"ALPR_CAPTURE_FRAMES_PER_SECOND": "2.5"})
        assert config.frames_per_second == 2.5

    def test_reads_per_second_has_a_default_and_is_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD)
        assert load_config(tmp_path, {}).reads_per_second == READS_PER_SECOND
        config = load_config(tmp_path, {"ALPR_CAPTURE_READS_PER_SECOND": "50"})
        assert config.reads_per_second == 50

    def test_fails_for_a_rate_that_is_not_positive(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD + "[capture]\nframes_per_second = 0\n")
        with pytest.raises(
            ConfigError, match=r"\[capture\] frames_per_second: 0 is not a positive"
        ):
            load_config(tmp_path, {})

    def test_fails_for_a_message_limit_smaller_than_one_frame(self, tmp_path: Path) -> None:
        too_small = MAX_FRAME_BYTES
        (tmp_path / "node.toml").write_text(HEAD + f"[server]\nmax_message_bytes = {too_small}\n")
        with pytest.raises(ConfigError, match=f"from {MIN_MESSAGE_BYTES} to"):
            load_config(tmp_path, {})
        assert MIN_MESSAGE_BYTES > MAX_FRAME_BYTES  # one frame of the largest size always fits

    def test_a_full_call_of_reads_fits_the_least_message_limit(self) -> None:
        """100 reads with every field at its longest and the most images a call may hold."""
        read = pb.PlateRead(
            plate="7ABC1234", confidence=0.987654, latitude=-89.123456789, longitude=-179.98765,
            camera_read_id="r" * MAX_KEY,
        )  # fmt: skip
        read.captured_at.FromNanoseconds(2**62 + 999_999_999)
        request = pb.SubmitReadsRequest(camera_id="c" * 64, reads=[read] * MAX_READS)
        each = MAX_CALL_IMAGE_BYTES // (2 * MAX_READS)  # both images on every read: most tags
        for sent in request.reads:
            sent.plate_image = sent.vehicle_image = b"\xff" * each
        assert sum(len(r.plate_image) + len(r.vehicle_image) for r in request.reads) <= (
            MAX_CALL_IMAGE_BYTES
        )
        assert request.ByteSize() <= MIN_MESSAGE_BYTES
