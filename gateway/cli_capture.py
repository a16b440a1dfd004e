"""`alpr capture read IMAGE...`: read the plates in image files, one JSON line per file.

Operators use it to check a camera's view. It needs no running node: the models are the
ones the node ships, those a node's configuration names (``--node DIR``), or files given
on the command line, in that order of precedence from last to first. It needs the
``capture`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from gateway.config import load_config
from gateway.errors import ConfigError
from node.capture import ModelFiles


def _files(args: argparse.Namespace, shipped: ModelFiles) -> ModelFiles:
    files = shipped
    if args.node:
        config = load_config(args.node, os.environ)
        files = files.replace(
            detector=config.detector, ocr_model=config.ocr_model, ocr_config=config.ocr_config
        )
    return files.replace(
        detector=args.detector, ocr_model=args.ocr_model, ocr_config=args.ocr_config
    )


def _read(args: argparse.Namespace) -> int:
    try:
        from node.capture import reader as capture  # noqa: PLC0415 (an optional extra)
    except ImportError as error:
        raise ConfigError(
            "reading plates needs the capture extra: pip install 'alpr-federation[capture]'"
            f" ({error})"
        ) from error
    reader = capture.PlateReader(_files(args, ModelFiles.shipped()), score_threshold=args.min_score)
    failed = 0
    for path in args.images:
        line: dict[str, object] = {"file": str(path)}
        try:
            (plates,) = reader.read([capture.decode_image(path.read_bytes(), str(path))])
            line["plates"] = [
                {
                    "text": plate.text,
                    "confidence": plate.confidence,
                    "detection_confidence": plate.detection_confidence,
                    "box": list(plate.box),
                }
                for plate in plates
            ]
        except (OSError, capture.ImageError) as error:
            line["error"] = str(error)
            failed += 1
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def add_capture_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `capture` and its `read`."""
    capture = commands.add_parser("capture", help="read plates in frames")
    actions = capture.add_subparsers(dest="action", required=True)
    read = actions.add_parser(
        "read", help="print the plates in image files, one JSON object per line and file"
    )
    read.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    read.add_argument("--node", type=Path, help="take the model paths from this node's config")
    read.add_argument("--detector", type=Path, help="a YOLO plate detector exported to ONNX")
    read.add_argument("--ocr-model", type=Path, help="a fast-plate-ocr ONNX model")
    read.add_argument("--ocr-config", type=Path, help="the OCR model's plate config (YAML)")
    read.add_argument("--min-score", type=float, default=0.4, help="least detector score kept")
    read.set_defaults(run=_read)
