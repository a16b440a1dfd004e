"""Frames with plates whose text and place are known, drawn by scripts/synth_plates.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import synth_plates
from numpy.typing import NDArray


@dataclass(frozen=True)
class KnownFrame:
    """A BGR frame, the text of its one plate and the plate's box."""

    frame: NDArray[np.uint8]
    text: str
    box: tuple[int, int, int, int]


def clear_frame(seed: int, *, width: float = 220.0) -> KnownFrame:
    """A 480 x 640 frame holding one clear plate `width` pixels wide (no blur, no glare).

    The plate has a standard serial of its state: the shipped model's accuracy on
    specialty, vanity and degraded plates is what scripts/bench/capture.py measures.
    """
    rng = np.random.default_rng([seed, 7])
    frame = synth_plates.background(rng, 480, 640)
    plate = synth_plates.render_plate(rng, special=None)
    quad = synth_plates.corners(rng, (480, 640), width)
    synth_plates.paint(frame, plate.image[..., ::-1], quad)
    return KnownFrame(frame, plate.text, synth_plates.box_of(quad, frame))
