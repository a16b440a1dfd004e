"""`alpr capture read IMAGE...`: one JSON line per file, no node running (CAP-2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the capture extra is not installed")
pytest.importorskip("PIL", reason="the capture extra is not installed")

import cv2  # after the skips above

from gateway.cli import main
from node.capture.files import ReadThresholds
from tests.support.frames import clear_frame


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


class TestCaptureRead:
    def test_cap2_prints_each_files_plates(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        paths, known = [], [clear_frame(seed) for seed in (11, 12)]
        for n, frame in enumerate(known):
            paths.append(tmp_path / f"camera-{n}.jpg")
            cv2.imwrite(str(paths[-1]), frame.frame)
        assert main(["capture", "read", *map(str, paths)]) == 0
        lines = _lines(capsys)
        assert [line["file"] for line in lines] == [str(p) for p in paths]
        for line, frame in zip(lines, known, strict=True):
            plates = line["plates"]
            assert isinstance(plates, list)
            assert [p["text"] for p in plates] == [frame.text]
            assert set(plates[0]) == {"text", "confidence", "detection_confidence", "box"}
            assert len(plates[0]["box"]) == 4

    @pytest.mark.parametrize(
        ("setting", "field"),
        [("min_confidence", "confidence"), ("min_score", "detection_confidence")],
    )
    def test_cap2_takes_thresholds_from_the_nodes_config_unless_flags_say_otherwise(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, field: str
    ) -> None:
        image = tmp_path / "camera.jpg"
        cv2.imwrite(str(image), clear_frame(11).frame)
        assert main(["capture", "read", str(image)]) == 0
        (line,) = _lines(capsys)
        plates = line["plates"]
        assert isinstance(plates, list)
        (plate,) = plates
        above = plate[field] + 0.001  # printed to three places
        assert above <= 1
        (tmp_path / "node").mkdir()
        (tmp_path / "node" / "node.toml").write_text(
            '[node]\nori = "CA0194200"\nname = "LAPD"\nfederation = "test.alpr"\n'
            f"[capture]\n{setting} = {above}\n"
        )
        node = ["capture", "read", "--node", str(tmp_path / "node")]
        assert main([*node, str(image)]) == 0
        assert _lines(capsys) == [{"file": str(image), "plates": []}]
        flag = "--" + setting.replace("_", "-")
        shipped = str(getattr(ReadThresholds(), setting))
        assert main([*node, flag, shipped, str(image)]) == 0
        assert [line["plates"] for line in _lines(capsys)] == [[plate]]
        assert main(["capture", "read", flag, str(above), str(image)]) == 0
        assert _lines(capsys) == [{"file": str(image), "plates": []}]

    @pytest.mark.parametrize(
        ("flag", "value", "why"),
        [
            ("--min-score", "1.5", "is not a number above 0 and at most 1"),
            ("--min-score", "0", "is not a number above 0 and at most 1"),
            ("--min-confidence", "1.5", "is not a number from 0 to 1"),
        ],
    )
    def test_fails_for_a_threshold_out_of_range(
        self, flag: str, value: str, why: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exited:
            main(["capture", "read", flag, value, "frame.jpg"])
        assert exited.value.code == 2
        assert f"argument {flag}: '{value}' {why}" in capsys.readouterr().err

    def test_fails_for_a_corrupt_file_but_reads_the_others(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
        cv2.imwrite(str(good), clear_frame(13).frame)
        bad.write_bytes(b"\xff\xd8 truncated")
        assert main(["capture", "read", str(bad), str(good)]) == 1
        first, second = _lines(capsys)
        assert first == {"file": str(bad), "error": f"{bad}: is not a decodable image"}
        assert "plates" in second

    def test_fails_in_one_line_when_a_model_is_missing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        image = tmp_path / "frame.jpg"
        cv2.imwrite(str(image), clear_frame(14).frame)
        gone = tmp_path / "detector.onnx"
        assert main(["capture", "read", "--detector", str(gone), str(image)]) == 2
        error = capsys.readouterr().err
        assert error == f"alpr: error: detector {gone}: no such file\n"

    def test_takes_model_paths_from_the_nodes_config(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "node").mkdir()
        (tmp_path / "node" / "node.toml").write_text(
            '[node]\nori = "CA0194200"\nname = "LAPD"\nfederation = "test.alpr"\n'
            '[capture]\nocr_model = "ocr.onnx"\n'
        )
        image = tmp_path / "frame.jpg"
        cv2.imwrite(str(image), clear_frame(15).frame)
        capsys.readouterr()
        assert main(["capture", "read", "--node", str(tmp_path / "node"), str(image)]) == 2
        expected = f"OCR model {tmp_path / 'node' / 'ocr.onnx'}: no such file"
        assert expected in capsys.readouterr().err
