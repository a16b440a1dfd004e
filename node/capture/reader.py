"""`PlateReader`: frames in, plates out (text, confidence, box), with no network (CAP-2).

Detection runs the YOLO model's ONNX export with onnxruntime alone: the frame is letterboxed
to the model's square input, its ``[1, 5, N]`` output (centre, size, score) is mapped back to
the frame and thinned with ``cv2.dnn.NMSBoxes``. Each box is cut from the full-resolution
frame several times (`CROP_VARIANTS`) and all the crops of a call are read together by the
OCR model of fast-plate-ocr's ``LicensePlateRecognizer`` in batches; a plate's text is read
from its crops' per-slot probabilities averaged. The text is normalized as a hotlist's plates
are, and both confidences are kept: the detector's score and the text's (its least sure
character). A read whose text is less sure than its `ReadThresholds` allow (by default
`MIN_TEXT_CONFIDENCE`) is not reported: on the
held-out synthetic scenes such reads were boxes on clutter, which would reach matching as
reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from fast_plate_ocr import LicensePlateRecognizer
from fast_plate_ocr.core.process import postprocess_output, resize_image
from numpy.typing import NDArray

from node.capture.files import (
    ModelError,
    ModelFiles,
    ReadThresholds,
)
from node.errors import ValidationError
from node.hotlists.entry import normalize_plate

Frame = NDArray[np.uint8]
Box = tuple[int, int, int, int]
LETTERBOX_FILL = 114
MIN_PLATE_PIXELS = 4
# The most boxes of one frame handed to the OCR, best first: more plates than any camera's
# view holds, and a bound on a frame's cost however low an operator sets `min_score`
# (at 1e-6, a blank frame has some 150 boxes).
MAX_PLATES_A_FRAME = 50
EdgeMoves = tuple[float, float, float, float]
CROP_VARIANTS: tuple[EdgeMoves, ...] = (
    (0, 0, 0, 0),
    (0.03, 0.03, 0.03, 0.03),
    (0.06, 0.06, 0.06, 0.06),
    (0.04, 0, -0.04, 0),
    (-0.04, 0, 0.04, 0),
    (0, 0.06, 0, -0.06),
    (0, -0.06, 0, 0.06),
)
"""The crops each detected plate is read from: how far each edge of its box moves outwards
(left, top, right, bottom), as a share of the box's width or height: the box itself, grown
3 % and 6 %, shifted 4 % left and right and 6 % up and down.

A detector's box is a few percent off the plate, and the OCR misreads some cuts of a plate
that it reads right from others. Averaging the seven cuts' per-slot probabilities read 18
more of 2,023 plates exactly over six bench seeds, and fewer on none (MODEL_CARD.md). Seven
OCR crops a plate cost a frame a few milliseconds."""


class ImageError(ValidationError):
    """An image cannot be decoded."""


@dataclass(frozen=True, kw_only=True)
class PlateFound:
    """One plate read in a frame.

    Attributes:
        text: The plate, normalized: 1 to 8 letters and digits.
        confidence: How sure the OCR is of the text: its least sure character, 0 to 1.
        detection_confidence: How sure the detector is that a plate is there, 0 to 1.
        box: Where, in the frame's pixels: x0, y0, x1, y1.
    """

    text: str
    confidence: float
    detection_confidence: float
    box: Box


def decode_image(data: bytes, name: str) -> Frame:
    """The BGR frame encoded in `data` (JPEG, PNG...).

    Raises:
        ImageError: `data` is not an image OpenCV can decode; names `name`.
    """
    try:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:  # past OpenCV's own bound on pixels, among others
        frame = None
    if frame is None:
        raise ImageError(name, "is not a decodable image")
    return np.asarray(frame, dtype=np.uint8)


def _session(path: Path, threads: int, what: str) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"{what} {path}: no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ModelError(
            f"{what} {path}: not an ONNX model onnxruntime can load ({error})"
        ) from error


class PlateReader:
    """Finds and reads plates; one instance per process (it holds onnxruntime sessions).

    Attributes:
        size: The detector's square input side, in pixels (the size it serves at).
        ocr_input_size: The OCR model's input height and width.
        thresholds: How sure it must be of a plate to report it.
    """

    def __init__(
        self,
        files: ModelFiles,
        *,
        thresholds: ReadThresholds = ReadThresholds(),  # noqa: B008 (frozen: never changed)
        iou_threshold: float = 0.5,
        batch_size: int = 32,
        threads: int = 1,
    ) -> None:
        """Load and check both models.

        Args:
            files: The model files.
            thresholds: How sure it must be of a plate to report it.
            iou_threshold: Boxes overlapping more than this are one plate.
            batch_size: Plates read per OCR call (each from all its crops).
            threads: onnxruntime threads per model.

        Raises:
            ModelError: A file is missing, or a model is not of the expected shape.
        """
        self.thresholds = thresholds
        self._iou = iou_threshold
        self._batch = batch_size
        self._detector = _session(files.detector, threads, "detector")
        self.size = self._check_detector(files.detector)
        if not files.ocr_config.is_file():
            raise ModelError(f"OCR config {files.ocr_config}: no such file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self._ocr = LicensePlateRecognizer(
                onnx_model_path=files.ocr_model,
                plate_config_path=files.ocr_config,
                device="cpu",
                sess_options=options,
            )
        except FileNotFoundError as error:
            raise ModelError(f"OCR model {files.ocr_model}: no such file") from error
        except Exception as error:  # a bad YAML or model: onnxruntime and PyYAML errors
            raise ModelError(
                f"OCR model {files.ocr_model} or config {files.ocr_config}: cannot load ({error})"
            ) from error
        self._check_ocr(files.ocr_model)
        self.ocr_input_size = (self._ocr.config.img_height, self._ocr.config.img_width)

    def _check_detector(self, path: Path) -> int:
        (source,) = self._detector.get_inputs() or [None]
        shape = list(source.shape) if source is not None else []
        outputs = self._detector.get_outputs()
        if (
            len(shape) != 4
            or shape[1] != 3
            or not isinstance(shape[2], int)
            or shape[2] != shape[3]
            or len(outputs) != 1
            or list(outputs[0].shape)[1:2] != [5]
        ):
            raise ModelError(
                f"detector {path}: expected input [1, 3, S, S] and output [1, 5, N] (one class),"
                f" got input {shape} and outputs {[o.shape for o in outputs]}"
            )
        return int(shape[2])

    def _check_ocr(self, path: Path) -> None:
        config = self._ocr.config
        inputs = {i.name: list(i.shape) for i in self._ocr.model.get_inputs()}
        expected = [config.img_height, config.img_width, config.num_channels]
        if "input" not in inputs or inputs["input"][1:] != expected:
            raise ModelError(
                f"OCR model {path}: expected an input named 'input' of shape [N, {expected[0]},"
                f" {expected[1]}, {expected[2]}] as its config says, got {inputs}"
            )
        probe = np.zeros((1, *expected), np.uint8)
        (plate,) = self._ocr.model.run([self._ocr.plate_output_name], {"input": probe})
        if plate.size != config.max_plate_slots * config.vocabulary_size:
            raise ModelError(
                f"OCR model {path}: its output has {plate.size} values, not slots x alphabet ="
                f" {config.max_plate_slots} x {config.vocabulary_size}"
            )

    def detect(self, frame: Frame) -> list[tuple[Box, float]]:
        """The best `MAX_PLATES_A_FRAME` plate boxes in `frame` (BGR) and their scores."""
        height, width = frame.shape[:2]
        scale = min(self.size / height, self.size / width)
        inner_w, inner_h = round(width * scale), round(height * scale)
        left, top = (self.size - inner_w) // 2, (self.size - inner_h) // 2
        canvas = np.full((self.size, self.size, 3), LETTERBOX_FILL, np.uint8)
        canvas[top : top + inner_h, left : left + inner_w] = cv2.resize(
            frame, (inner_w, inner_h), interpolation=cv2.INTER_LINEAR
        )
        blob = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        (output,) = self._detector.run(None, {self._detector.get_inputs()[0].name: blob})
        rows = np.asarray(output)[0].T  # N x (cx, cy, w, h, score)
        rows = rows[rows[:, 4] >= self.thresholds.min_score]
        if not len(rows):
            return []
        cx = (rows[:, 0] - left) / scale
        cy = (rows[:, 1] - top) / scale
        w, h = rows[:, 2] / scale, rows[:, 3] / scale
        boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
        scores = rows[:, 4].tolist()
        kept = cv2.dnn.NMSBoxes(boxes.tolist(), scores, self.thresholds.min_score, self._iou)
        found = []
        for i in np.asarray(kept, dtype=int).reshape(-1):
            x0, y0 = max(0, int(boxes[i, 0])), max(0, int(boxes[i, 1]))
            x1 = min(width, int(np.ceil(boxes[i, 0] + boxes[i, 2])))
            y1 = min(height, int(np.ceil(boxes[i, 1] + boxes[i, 3])))
            if x1 - x0 >= MIN_PLATE_PIXELS and y1 - y0 >= MIN_PLATE_PIXELS:
                found.append(((x0, y0, x1, y1), float(rows[i, 4])))
        return sorted(found, key=lambda item: -item[1])[:MAX_PLATES_A_FRAME]

    def read_crops(self, crops: Sequence[Frame]) -> list[tuple[str, float]]:
        """The text of each plate crop (BGR) and its confidence; "" where nothing is legible."""
        return self._read_plates([[crop] for crop in crops])

    def read(self, frames: Sequence[Frame]) -> list[list[PlateFound]]:
        """The plates in each of `frames` (BGR), each read from its `CROP_VARIANTS`, together."""
        detected = [self.detect(frame) for frame in frames]
        plates = [
            [_cut(frame, box, moves) for moves in CROP_VARIANTS]
            for frame, found in zip(frames, detected, strict=True)
            for box, _ in found
        ]
        texts = iter(self._read_plates(plates))
        results: list[list[PlateFound]] = []
        for found in detected:
            plates_found = []
            for box, score in found:
                text, confidence = next(texts)
                if text and confidence >= self.thresholds.min_confidence:
                    plates_found.append(
                        PlateFound(
                            text=text,
                            confidence=confidence,
                            detection_confidence=round(score, 4),
                            box=box,
                        )
                    )
            results.append(plates_found)
        return results

    def _read_plates(self, plates: Sequence[Sequence[Frame]]) -> list[tuple[str, float]]:
        """Each plate's text and confidence, read from its crops' per-slot probabilities averaged.

        The crops of up to `batch_size` plates go to the OCR model in one call, prepared as
        fast-plate-ocr prepares them (its config's colour, size and interpolation), and the
        averaged probabilities are decoded by fast-plate-ocr as its own reads are.
        """
        config = self._ocr.config
        code = cv2.COLOR_BGR2GRAY if config.image_color_mode == "grayscale" else cv2.COLOR_BGR2RGB
        results: list[tuple[str, float]] = []
        for start in range(0, len(plates), self._batch):
            batch = plates[start : start + self._batch]
            images = [
                resize_image(
                    cv2.cvtColor(crop, code),
                    config.img_height,
                    config.img_width,
                    config.image_color_mode,
                    config.keep_aspect_ratio,
                    config.interpolation,
                    config.padding_color,
                )
                for crops in batch
                for crop in crops
            ]
            (output,) = self._ocr.model.run(
                [self._ocr.plate_output_name], {"input": np.stack(images).astype(np.uint8)}
            )
            slots = np.asarray(output).reshape(
                len(images), config.max_plate_slots, config.vocabulary_size
            )
            ends = np.cumsum([len(crops) for crops in batch])[:-1]
            averaged = np.stack([part.mean(axis=0) for part in np.split(slots, ends)])
            predictions = postprocess_output(
                averaged,
                config.max_plate_slots,
                config.alphabet,
                config.pad_char,
                return_confidence=True,
            )
            results += [_text(p.plate, p.char_probs) for p in predictions]
        return results


def _cut(frame: Frame, box: Box, moves: EdgeMoves) -> Frame:
    """`box` of `frame` with each edge moved outwards by `moves` of the box's size, in the frame."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    left, top, right, bottom = moves
    box_w, box_h = x1 - x0, y1 - y0
    return frame[
        max(0, round(y0 - top * box_h)) : min(height, round(y1 + bottom * box_h)),
        max(0, round(x0 - left * box_w)) : min(width, round(x1 + right * box_w)),
    ]


def _text(raw: str, probabilities: Any) -> tuple[str, float]:  # noqa: ANN401 (numpy or None)
    """The normalized plate in `raw` and its least sure character's probability."""
    try:
        plate = normalize_plate(raw)
    except ValidationError:
        return "", 0.0
    sure = np.asarray(probabilities, dtype=np.float32).reshape(-1)[: len(raw)]
    return plate, round(float(sure.min()) if sure.size else 0.0, 4)
