"""`alpr capture read` and `alpr capture watch`: plates in image files, frames to a node.

`read IMAGE...` prints the plates in image files, one JSON line per file. Operators use it
to check a camera's view. It needs no running node: the models are the ones the node
ships, those a node's configuration names (``--node DIR``), or files given on the command
line, in that order of precedence from last to first. It needs the ``capture`` extra.

`watch DIR --camera ID` sends the frames a camera drops in DIR to a running node with the
camera's device certificate (see `gateway.capture_watch`), one JSON line per frame filed.
The first Ctrl-C (or SIGTERM) stops it once the call in flight is answered and its frames
filed; a second one stops it at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from alpr.capture.v1 import capture_service_pb2_grpc as pb_grpc
from gateway.capture_watch import Backoff, Camera, DropFolder, FrameWatcher
from gateway.cli_admin import _connection, _connection_options
from gateway.config import NodeConfig, fraction, load_config, score
from gateway.errors import ConfigError
from node.capture.files import ModelFiles, ReadThresholds
from node.errors import ValidationError

EXIT_FAILED = 1


def _argument(check: Callable[[object], float]) -> Callable[[str], float]:
    """`check` as an argparse type: its ValueError becomes a usage error."""

    def parse(text: str) -> float:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return parse


def _models(args: argparse.Namespace) -> tuple[ModelFiles, ReadThresholds]:
    """The shipped models and thresholds, then the node's (--node), then the flags'."""
    files, thresholds = ModelFiles.shipped(), ReadThresholds()
    if args.node:
        config = load_config(args.node, os.environ)
        files, thresholds = config.model_files, config.read_thresholds
    files = files.replace(
        detector=args.detector, ocr_model=args.ocr_model, ocr_config=args.ocr_config
    )
    flags = {
        name: value
        for name in ("min_score", "min_confidence")
        if (value := getattr(args, name)) is not None
    }
    return files, dataclasses.replace(thresholds, **flags)


def _read(args: argparse.Namespace) -> int:
    try:
        from node.capture import reader as capture  # noqa: PLC0415 (an optional extra)
    except ImportError as error:
        raise ConfigError(
            "reading plates needs the capture extra: pip install 'alpr-federation[capture]'"
            f" ({error})"
        ) from error
    files, thresholds = _models(args)
    reader = capture.PlateReader(files, thresholds=thresholds)
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


def _watch(args: argparse.Namespace) -> int:
    if (args.latitude is None) != (args.longitude is None):
        raise ValidationError("--latitude", "give both --latitude and --longitude, or neither")
    folder = DropFolder(args.directory)
    tls = _connection(args)
    backoff = [  # the channel's own reconnection waits no longer than ours
        ("grpc.initial_reconnect_backoff_ms", int(args.retry_seconds * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(args.retry_seconds * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(args.max_retry_seconds * 1000)),
    ]
    with grpc.secure_channel(args.target, tls.channel_credentials(), backoff) as channel:
        stub = pb_grpc.CaptureServiceStub(channel)
        watcher = FrameWatcher(
            folder,
            lambda request: stub.SubmitFrames(request, timeout=args.timeout),
            Camera(camera_id=args.camera, latitude=args.latitude, longitude=args.longitude),
            batch_bytes=args.batch_bytes,
            backoff=Backoff(args.retry_seconds, args.max_retry_seconds),
            say=lambda line: print(f"alpr capture watch: {line}", file=sys.stderr, flush=True),
            report=lambda line: print(json.dumps(line), flush=True),
        )
        with _stopping_on_signals(watcher):
            watcher.run(interval=args.interval, once=args.once)
    return EXIT_FAILED if watcher.failed else 0


@contextmanager
def _stopping_on_signals(watcher: FrameWatcher) -> Iterator[None]:
    """SIGINT and SIGTERM stop `watcher` cleanly; a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (tests run the command in threads)
        return

    def stop(_signum: int, _frame: object) -> None:
        watcher.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def add_capture_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `capture` and its `read` and `watch`."""
    capture = commands.add_parser("capture", help="read plates in frames")
    actions = capture.add_subparsers(dest="action", required=True)
    read = actions.add_parser(
        "read", help="print the plates in image files, one JSON object per line and file"
    )
    read.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    read.add_argument(
        "--node", type=Path, help="take the models and thresholds from this node's config"
    )
    read.add_argument("--detector", type=Path, help="a YOLO plate detector exported to ONNX")
    read.add_argument("--ocr-model", type=Path, help="a fast-plate-ocr ONNX model")
    read.add_argument("--ocr-config", type=Path, help="the OCR model's plate config (YAML)")
    read.add_argument(
        "--min-score",
        type=_argument(score),
        help=f"least detector score kept (default: the node's, or {ReadThresholds().min_score})",
    )
    read.add_argument(
        "--min-confidence",
        type=_argument(fraction),
        help=(
            "least text confidence (its least sure character) reported"
            f" (default: the node's, or {ReadThresholds().min_confidence})"
        ),
    )
    read.set_defaults(run=_read)

    watch = actions.add_parser(
        "watch",
        help="send the frames a camera drops in a folder to the node, filing each once taken",
        description=(
            "Send each new complete frame (.jpg, .jpeg, .png) in DIR to the node with the "
            "camera's device certificate; once the node has acknowledged it, move it to "
            "DIR/done/, or, refused as invalid, to DIR/failed/ with a .why file. A file is "
            "complete once its size and time are unchanged over --interval; names starting "
            "with a dot are never taken (write there and rename). One JSON line per frame."
        ),
    )
    watch.add_argument("directory", type=Path, metavar="DIR")
    watch.add_argument("--camera", required=True, help="the camera's id, as the agency names it")
    watch.add_argument("--latitude", type=float, help="where the camera is, WGS 84 degrees")
    watch.add_argument("--longitude", type=float, help="where the camera is, WGS 84 degrees")
    watch.add_argument("--once", action="store_true", help="send what is there, then exit")
    watch.add_argument(
        "--interval", type=float, default=1.0, help="seconds between looks at DIR (default 1)"
    )
    watch.add_argument(
        "--batch-bytes",
        type=int,
        default=NodeConfig.max_message_bytes,
        help="most bytes sent in one call: the node's [server] max_message_bytes"
        " (default %(default)s, the node's default)",
    )
    watch.add_argument(
        "--retry-seconds", type=float, default=1.0, help="first wait before sending again"
    )
    watch.add_argument(
        "--max-retry-seconds",
        type=float,
        default=30.0,
        help="longest wait before sending again; with --once, give up after it",
    )
    _connection_options(watch)
    watch.set_defaults(run=_watch)
