"""Frames read off the event loop, in a pool of worker processes each holding a PlateReader.

Importing this module needs nothing of the ``capture`` extra: the workers import it, so a
node without it starts, serves everything else, and refuses frames with one clear error.
The pool is started on first use (``spawn``: a forked gRPC process is unsafe), sized to the
cores, and `check` loads both models once in the calling process so that a missing or
malformed model is reported at start-up.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from node.capture.files import ModelFiles, ReadThresholds
from node.capture.headers import MAX_FRAME_PIXELS, check_frame_size
from node.errors import PreconditionError, ValidationError

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAMES = 16
_worker_reader: object = None


class CaptureUnavailableError(PreconditionError):
    """Frames cannot be read here: the capture extra is not installed."""


@dataclass(frozen=True, kw_only=True)
class FramePlate:
    """A plate read in a frame, with its crop encoded as JPEG."""

    text: str
    confidence: float
    detection_confidence: float
    box: tuple[int, int, int, int]
    crop: bytes


@dataclass(frozen=True)
class FrameResult:
    """What a worker made of one frame: its plates, or why it could not be decoded."""

    plates: list[FramePlate] = field(default_factory=list)
    problem: str = ""


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may keep busy: its CPU affinity, within its cgroup's quota.

    Not the machine's count: a `taskset` limits affinity, and a container's CPU limit
    (Docker's ``--cpus``, a Kubernetes limit) is a cgroup v2 quota in `cpu_max`
    (``"<quota> <period>"`` or ``"max <period>"``), which affinity does not show. A
    fractional quota counts as the whole cores below it, and at least one.
    """
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU controller here: affinity alone
    return max(1, cores)


def check_frames(frames: Sequence[bytes]) -> None:
    """Check the count and sizes of a call's frames (encoded images), before any is decoded.

    Each frame's size in pixels is read from its header (`check_frame_size`), so that a
    small image announcing a huge bitmap is refused before a decoder allocates it.

    Raises:
        ValidationError: There are no frames, too many, or one is too large, in bytes or
            pixels, or is not a JPEG or PNG.
    """
    if not 0 < len(frames) <= MAX_FRAMES:
        raise ValidationError("frames", f"send 1 to {MAX_FRAMES} frames at a time")
    for number, data in enumerate(frames):
        if len(data) > MAX_FRAME_BYTES:
            raise ValidationError(f"frames[{number}].image", f"at most {MAX_FRAME_BYTES} bytes")
        check_frame_size(data, f"frames[{number}].image")


def _start_worker(files: ModelFiles, thresholds: ReadThresholds) -> None:
    global _worker_reader  # noqa: PLW0603 (one reader per worker process)
    # OpenCV's own bound on a decoded image, read once as it loads; the headers were
    # checked already, so this only backs that check up.
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_FRAME_PIXELS)
    from node.capture.reader import PlateReader  # noqa: PLC0415 (in the worker only)

    _worker_reader = PlateReader(files, thresholds=thresholds)


def _read_in_worker(frames: Sequence[bytes]) -> list[FrameResult]:
    import cv2  # noqa: PLC0415 (in the worker only)

    from node.capture.reader import ImageError, PlateReader, decode_image  # noqa: PLC0415

    reader = _worker_reader
    assert isinstance(reader, PlateReader)  # noqa: S101 (set by the initializer)
    decoded, problems = [], {}
    for number, data in enumerate(frames):
        try:
            decoded.append(decode_image(data, f"frames[{number}].image"))
        except ImageError as error:
            problems[number] = error.problem
    reads = iter(zip(decoded, reader.read(decoded), strict=True))
    results = []
    for number in range(len(frames)):
        if number in problems:
            results.append(FrameResult(problem=problems[number]))
            continue
        frame, found = next(reads)
        plates = []
        for plate in found:
            x0, y0, x1, y1 = plate.box
            ok, crop = cv2.imencode(".jpg", frame[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            plates.append(
                FramePlate(
                    text=plate.text,
                    confidence=plate.confidence,
                    detection_confidence=plate.detection_confidence,
                    box=plate.box,
                    crop=crop.tobytes() if ok else b"",
                )
            )
        results.append(FrameResult(plates))
    return results


class FrameReader:
    """Reads plates in encoded frames in worker processes; safe to share between calls."""

    def __init__(
        self,
        files: ModelFiles,
        *,
        thresholds: ReadThresholds = ReadThresholds(),  # noqa: B008 (frozen: never changed)
        workers: int | None = None,
    ) -> None:
        """Read with the models in `files` in `workers` processes (default: `usable_cores()`)."""
        self.files = files
        self.thresholds = thresholds
        self.workers = workers or usable_cores()
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Load both models here once, so that a bad one is reported now.

        Raises:
            CaptureUnavailableError: The capture extra is not installed.
            ModelError: A model file is missing or of the wrong shape.
        """
        try:
            from node.capture.reader import PlateReader  # noqa: PLC0415
        except ImportError as error:
            raise CaptureUnavailableError(
                f"reading frames needs the capture extra: pip install 'alpr-federation[capture]'"
                f" ({error})"
            ) from error
        PlateReader(self.files)

    async def read(self, frames: Sequence[bytes]) -> list[FrameResult]:
        """Read `frames` (encoded images) in a worker, off the event loop.

        Raises:
            ValidationError: There are no frames, too many, or one is too large.
            CaptureUnavailableError: The capture extra is not installed.
            ModelError: A model cannot be loaded (first call only).
        """
        check_frames(frames)
        pool = self._started()
        return await asyncio.get_running_loop().run_in_executor(pool, _read_in_worker, frames)

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self.check()
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self.files, self.thresholds),
                )
            return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
