"""The training scripts on a tiny synthetic set, so that they cannot rot (CAP-2).

They need the ``train`` extra (torch, Ultralytics), which ``scripts/test.sh`` leaves out of
the node's venv: they skip there. ``scripts/test-training.sh`` installs it into its own venv
and runs them; CI runs both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import synth_plates

from node.capture import ModelFiles
from node.capture.reader import PlateReader
from tests.support.offline import ATTEMPT, UNREACHABLE, UNREACHABLE_CHECK, run_offline


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    synth_plates.main(["--out", str(out), "--scenes", "12", "--crops", "40", "--val-share", "0.25"])
    return out


class TestTraining:
    def test_cap2_train_ocr_exports_a_model_fast_plate_ocr_serves(
        self, tiny: Path, tmp_path: Path
    ) -> None:
        pytest.importorskip("torch", reason="the train extra is not installed")
        import train_ocr  # noqa: PLC0415 (imports torch)

        extra = tmp_path / "extra"  # training crops only, mostly special plates
        special = ["--stacked", "1", "--vanity", "1"]
        synth_plates.main(
            ["--out", str(extra), "--scenes", "0", "--crops", "8", "--val-share", "0", *special]
        )
        data = ["--data", str(tiny / "ocr"), str(extra / "ocr")]
        assert train_ocr.main([*data, "--out", str(tmp_path), "--epochs", "1"]) == 0
        metrics = json.loads((tmp_path / train_ocr.METRICS_FILE).read_text())
        assert (metrics["training_crops"], metrics["held_out_crops"]) == (38, 10)
        files = ModelFiles.shipped().replace(
            detector=None,
            ocr_model=tmp_path / train_ocr.MODEL_FILE,
            ocr_config=tmp_path / train_ocr.CONFIG_FILE,
        )
        PlateReader(files)  # loads, and passes the shape checks

    def test_cap2_train_ocr_resumes_a_checkpoint_of_an_export_with_its_norms_frozen(
        self, tmp_path: Path
    ) -> None:
        """Norms folded by an export must not train again from a checkpoint of that run."""
        torch = pytest.importorskip("torch", reason="the train extra is not installed")
        import train_ocr  # noqa: PLC0415 (imports torch)

        trained = train_ocr.PlateOcr()
        shifts = torch.Generator().manual_seed(0)
        with torch.no_grad():  # norms that differ, as training leaves them
            for norm in (m for m in trained.modules() if isinstance(m, torch.nn.BatchNorm2d)):
                norm.bias.uniform_(-1, 1, generator=shifts)
        train_ocr.export(trained, tmp_path)
        folded = train_ocr.PlateOcr()
        train_ocr.from_onnx(folded, tmp_path / train_ocr.MODEL_FILE)
        torch.save(folded.state_dict(), tmp_path / "folded.pt")
        torch.save(trained.state_dict(), tmp_path / "trained.pt")
        for name, frozen in (("folded.pt", True), ("trained.pt", False)):
            model = train_ocr.PlateOcr()
            train_ocr.start_from(model, tmp_path / name)
            assert model.frozen_norms is frozen, name

    def test_cap2_train_detector_exports_an_onnx_the_reader_drives(
        self, tiny: Path, tmp_path: Path
    ) -> None:
        pytest.importorskip("ultralytics", reason="the train extra is not installed")
        import train_detector  # noqa: PLC0415 (imports Ultralytics when run)

        args = [
            "--data",
            str(tiny / "detect"),
            "--out",
            str(tmp_path),
            "--runs",
            str(tmp_path / "runs"),
        ]
        assert train_detector.main([*args, "--epochs", "1", "--batch", "4"]) == 0
        files = ModelFiles.shipped().replace(
            detector=tmp_path / train_detector.MODEL_FILE, ocr_model=None, ocr_config=None
        )
        assert PlateReader(files).size == 320
        weights = tmp_path / "runs" / "detector" / "weights" / "best.pt"
        args += ["--weights", str(weights), "--epochs", "0", "--imgsz", "352"]
        assert train_detector.main(args) == 0  # the same weights, served at another size
        assert PlateReader(files).size == 352
        assert json.loads((tmp_path / train_detector.METRICS_FILE).read_text())["epochs"] == 0

    def test_cap2_train_detector_continues_from_weights_at_the_rate_it_is_given(
        self, tiny: Path, tmp_path: Path
    ) -> None:
        """--weights with training starts from those weights, not a fresh network (CAP-2).

        At ``--lr0 0`` with no warm-up nothing may move the convolutions, so a marked
        convolution of the checkpoint must come out of the run unchanged.
        """
        pytest.importorskip("ultralytics", reason="the train extra is not installed")
        import torch  # noqa: PLC0415 (the train extra)
        import train_detector  # noqa: PLC0415 (imports Ultralytics when run)

        train_detector.offline(tmp_path / "runs" / "settings")
        from ultralytics import YOLO  # noqa: PLC0415 (after the offline settings)

        start = YOLO("yolo11n.yaml")
        with torch.no_grad():
            start.model.model[0].conv.weight.fill_(0.5)
        start.save(tmp_path / "start.pt")
        args = ["--data", str(tiny / "detect"), "--out", str(tmp_path), "--epochs", "1"]
        args += ["--batch", "4", "--runs", str(tmp_path / "runs"), "--weights"]
        args += [str(tmp_path / "start.pt"), "--lr0", "0", "--warmup-epochs", "0"]
        assert train_detector.main(args) == 0
        trained = YOLO(str(tmp_path / "runs" / "detector" / "weights" / "last.pt"))
        assert bool((trained.model.model[0].conv.weight == 0.5).all())

    def test_cap2_train_detector_trains_on_every_set_and_measures_on_their_held_out_scenes(
        self, tiny: Path, tmp_path: Path
    ) -> None:
        """Fresh scenes written with ``--val-share 0`` add to a set's training scenes (CAP-2)."""
        pytest.importorskip("ultralytics", reason="the train extra is not installed")
        import train_detector  # noqa: PLC0415 (imports Ultralytics when run)

        fresh = tmp_path / "fresh #1: odd 'name'"  # YAML comment and mapping characters
        synth_plates.main(
            ["--out", str(fresh), "--scenes", "3", "--crops", "0", "--val-share", "0"]
        )
        runs = tmp_path / "runs"
        train_detector.offline(runs / "settings")
        from ultralytics.data.utils import check_det_dataset  # noqa: PLC0415 (after offline)

        sets = [tiny / "detect", fresh / "detect"]
        dataset = check_det_dataset(str(train_detector.dataset_file(sets, runs)))
        assert dataset["train"] == [str((s / "images" / "train").resolve()) for s in sets]
        assert dataset["val"] == [str((tiny / "detect" / "images" / "val").resolve())]
        assert dataset["names"] == {0: "plate"}
        with pytest.raises(SystemExit, match="holds out any scenes"):
            train_detector.dataset_file([fresh / "detect", fresh / "detect"], runs)
        args = ["--data", *map(str, sets), "--out", str(tmp_path), "--runs", str(runs)]
        assert train_detector.main([*args, "--epochs", "1", "--batch", "4"]) == 0
        for folder in sets:  # Ultralytics caches the labels of every set it trains on
            assert (folder / "labels" / "train.cache").is_file(), folder
        assert json.loads((tmp_path / train_detector.METRICS_FILE).read_text())["epochs"] == 1

    def test_cap2_both_scripts_train_with_no_network_at_all(
        self, tiny: Path, tmp_path: Path
    ) -> None:
        """Nothing fetched: no weights, no fonts, no settings sync (Ultralytics' offline mode)."""
        pytest.importorskip("ultralytics", reason="the train extra is not installed")
        import train_detector  # noqa: PLC0415 (imports Ultralytics when run)
        import train_ocr  # noqa: PLC0415 (imports torch)

        detect = ["--data", str(tiny / "detect"), "--out", str(tmp_path / "detector")]
        detect += ["--runs", str(tmp_path / "runs"), "--epochs", "1", "--batch", "4"]
        ocr = ["--data", str(tiny / "ocr"), "--out", str(tmp_path / "ocr"), "--epochs", "1"]
        script = tmp_path / "train.py"
        script.write_text(
            UNREACHABLE_CHECK
            + f"""
import train_detector
import train_ocr

if __name__ == "__main__":
    check_unreachable()
    forbid_network()
    assert train_detector.main({detect!r}) == 0
    assert train_ocr.main({ocr!r}) == 0
    print("trained")
"""
        )
        done = run_offline([str(script)])
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.splitlines()[0] == UNREACHABLE
        assert done.stdout.splitlines()[-1] == "trained"
        assert ATTEMPT not in done.stderr  # none tried, even one caught
        assert (tmp_path / "detector" / train_detector.MODEL_FILE).is_file()
        assert (tmp_path / "ocr" / train_ocr.MODEL_FILE).is_file()
