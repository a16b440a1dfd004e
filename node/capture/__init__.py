"""Reading plates in frames: detect with a YOLO model, read with fast-plate-ocr (CAP-2).

`reader` (the `PlateReader`) needs the ``capture`` extra: onnxruntime, fast-plate-ocr,
OpenCV and NumPy, no torch. `files` and `frames` import none of it, so a node without the
extra starts and refuses frames with one clear error. The node ships small models trained
on synthetic plates (``models/``, see its model card); stronger models are taken by path.
Nothing here reaches for the network.
"""

from node.capture.files import ModelError, ModelFiles, ReadThresholds

__all__ = ["ModelError", "ModelFiles", "ReadThresholds"]
