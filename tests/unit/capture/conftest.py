"""Capture tests need the ``capture`` extra (scripts/test.sh installs it); without it they skip."""

from __future__ import annotations

import pytest

for module in ("onnxruntime", "cv2", "fast_plate_ocr", "PIL"):
    pytest.importorskip(
        module, reason="the capture extra is not installed: pip install -e '.[capture]'"
    )

from node.capture import ModelFiles  # noqa: E402 (after the skip above)
from node.capture.reader import PlateReader  # noqa: E402


@pytest.fixture(scope="session")
def reader() -> PlateReader:
    """The reader over the models the node ships (loaded once: it holds ONNX sessions)."""
    return PlateReader(ModelFiles.shipped())
