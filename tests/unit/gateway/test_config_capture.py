"""`[capture]` model paths in node.toml: empty means the shipped models (CAP-2)."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config

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
