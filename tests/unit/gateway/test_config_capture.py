"""`[capture]` in node.toml: model paths (empty: the shipped models, CAP-2), frame limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import MIN_MESSAGE_BYTES, load_config
from gateway.errors import ConfigError
from node.capture.frames import MAX_FRAME_BYTES
from node.capture.limits import FRAMES_PER_SECOND

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


class TestCaptureLimits:
    def test_frames_per_second_has_a_default_and_is_overridable(self, tmp_path: Path) -> None:
        (tmp_path / "node.toml").write_text(HEAD)
        assert load_config(tmp_path, {}).frames_per_second == FRAMES_PER_SECOND
        config = load_config(tmp_path, {"ALPR_CAPTURE_FRAMES_PER_SECOND": "2.5"})
        assert config.frames_per_second == 2.5

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
