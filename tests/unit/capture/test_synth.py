"""scripts/synth_plates.py: the detection and OCR sets it writes, from a seed (CAP-2)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import synth_plates

PLATE = re.compile(r"^[0-9A-Z]{2,8}$")


def _digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".yaml")
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert synth_plates.main(["--out", str(out), "--scenes", "4", "--crops", "10"]) == 0
    return out


class TestSynthPlates:
    def test_cap2_detection_set_has_yolo_labels_for_every_frame(self, written: Path) -> None:
        detect = written / "detect"
        images = sorted((detect / "images").rglob("*.jpg"))
        assert len(images) == 4
        for image in images:
            label = detect / "labels" / image.parent.name / f"{image.stem}.txt"
            rows = [line.split() for line in label.read_text().splitlines()]
            assert 1 <= len(rows) <= 3
            for cls, *box in rows:
                assert cls == "0"
                assert all(0 < float(v) <= 1 for v in box)
        assert "names:\n  0: plate" in (detect / "data.yaml").read_text()

    def test_cap2_ocr_set_pairs_crops_with_plain_plate_text(self, written: Path) -> None:
        ocr = written / "ocr"
        rows = [
            row
            for split in ("train", "val")
            for row in csv.DictReader((ocr / f"{split}.csv").open(newline=""))
        ]
        assert len(rows) == 10
        for row in rows:
            assert PLATE.match(row["plate_text"]), row
            assert (ocr / row["image_path"]).stat().st_size > 0

    def test_cap2_same_seed_same_sets(self, written: Path, tmp_path: Path) -> None:
        synth_plates.main(["--out", str(tmp_path), "--scenes", "4", "--crops", "10"])
        assert _digest(tmp_path) == _digest(written)

    def test_cap2_every_state_style_renders_its_serial(self) -> None:
        rng = np.random.default_rng(0)
        states = {style.state for style in synth_plates.STYLES}
        assert {"California", "TEXAS", "NEW YORK", "FLORIDA", "ARIZONA"} <= states
        for style in synth_plates.STYLES:
            plate = synth_plates.render_plate(rng, style)
            assert plate.image.shape == (synth_plates.PLATE_H, synth_plates.PLATE_W, 3)
            assert PLATE.match(plate.text)

    def test_cap2_every_face_the_plates_use_is_installed(self) -> None:
        faces = {*synth_plates.SERIAL_FONTS, *synth_plates.BANNER_FONTS, "DejaVuSans.ttf"}
        faces |= {face for style in synth_plates.STYLES for face in style.state_font}
        for face in faces:
            assert synth_plates.font_file(face).name == face

    def test_fails_for_a_missing_face_naming_what_to_install(self) -> None:
        """Never a silent stand-in: the shipped models learned these faces."""
        with pytest.raises(SystemExit, match=r"NoSuchFace\.ttf not found .* fonts-dejavu-extra"):
            synth_plates.font_file("NoSuchFace.ttf")

    def test_cap2_stacked_letters_are_read_first(self) -> None:
        rng = np.random.default_rng(1)
        stacked = [s for s in synth_plates.STYLES if s.stacked]
        plates = [synth_plates.render_plate(rng, stacked[n % len(stacked)]) for n in range(40)]
        with_pair = [plate for plate in plates if plate.stacked]
        assert with_pair
        # The two stacked letters, then a serial of four or five with a digit at its end.
        assert all(re.match(r"^[A-Z]{2}[0-9A-Z][0-9]{3,4}$", p.text) for p in with_pair)

    def test_cap2_specials_set_the_share_of_stacked_and_vanity_plates(self) -> None:
        rng = np.random.default_rng(2)
        stacked = [s for s in synth_plates.STYLES if s.stacked]
        plain = [s for s in synth_plates.STYLES if not s.stacked]
        always = synth_plates.Specials(stacked=1.0, vanity=0.0)
        assert all(synth_plates.render_plate(rng, s, special=always).stacked for s in stacked * 5)
        vanity = synth_plates.Specials(stacked=0.0, vanity=1.0)
        lengths = {len(synth_plates.render_plate(rng, s, special=vanity).text) for s in plain * 10}
        # Vanity plates carry two to seven characters; these states' serials six or seven.
        assert min(lengths) < 6
        never = synth_plates.Specials(stacked=0.0, vanity=0.0)
        plates = [synth_plates.render_plate(rng, s, special=never) for s in stacked * 5]
        assert not any(p.stacked for p in plates)
        assert {len(p.text) for p in plates} <= {6, 7}
