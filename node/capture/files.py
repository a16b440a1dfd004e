"""Where the capture models are, what they are read with, and the error a bad one raises.

No ML imports here, so the CLI and a node without the capture extra can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from node.errors import PreconditionError

MODELS = Path(__file__).parent / "models"
# The least detector score a box needs to be read.
MIN_DETECTOR_SCORE = 0.4
# The least text confidence (its least sure character) a read needs to be reported. Chosen on
# the capture bench's seeds 3000 to 6000 (1,367 plates, the shipped models): every exact read
# there was at least 0.35 sure, and 26 of the 29 reads on no plate, boxes on clutter read as a
# stray "NS" or "5T", less than 0.2.
MIN_TEXT_CONFIDENCE = 0.2


@dataclass(frozen=True, kw_only=True)
class ReadThresholds:
    """How sure the reader must be of a plate to report it.

    Each model's scores are its own: a stronger model given by path may want others, so an
    operator sets them beside its paths (node.toml's ``[capture] min_score`` and
    ``min_confidence``).

    Attributes:
        min_score: The least detector score a box needs to be read.
        min_confidence: The least text confidence (its least sure character) a read needs to
            be reported.
    """

    min_score: float = MIN_DETECTOR_SCORE
    min_confidence: float = MIN_TEXT_CONFIDENCE


class ModelError(PreconditionError):
    """A model file is missing, unreadable or not of the shape the reader drives."""


@dataclass(frozen=True, kw_only=True)
class ModelFiles:
    """Where the reader's models are.

    Attributes:
        detector: The plate detector: a YOLO ONNX export, input ``[1, 3, S, S]``, output
            ``[1, 5, N]``.
        ocr_model: The OCR model in fast-plate-ocr's format (uint8 NHWC ``input``, ``plate``
            reshapeable to slots x alphabet).
        ocr_config: The OCR model's plate config (YAML).
    """

    detector: Path
    ocr_model: Path
    ocr_config: Path

    @classmethod
    def shipped(cls) -> ModelFiles:
        """The small models the node ships, trained on synthetic plates."""
        return cls(
            detector=MODELS / "plate_detector.onnx",
            ocr_model=MODELS / "plate_ocr.onnx",
            ocr_config=MODELS / "plate_ocr_config.yaml",
        )

    def replace(
        self, *, detector: Path | None, ocr_model: Path | None, ocr_config: Path | None
    ) -> ModelFiles:
        """These files, with each one given instead of its own."""
        return ModelFiles(
            detector=detector or self.detector,
            ocr_model=ocr_model or self.ocr_model,
            ocr_config=ocr_config or self.ocr_config,
        )
