"""`alpr capture watch DIR`: send the frames a camera drops in a folder to the node.

Each new complete frame (``*.jpg``, ``*.jpeg``, ``*.png``) is sent with
`CaptureService.SubmitFrames`, several to a call, and only once the node has acknowledged
it (its reads committed) is it moved to ``DIR/done/``. A frame the node refuses as invalid
input goes to ``DIR/failed/`` with a ``.why`` text file beside it; the others of its call
are sent again. A node that cannot take the call now (unavailable, over the camera's rate
limit, busy) is tried again with backoff, the frames staying where they are: none is lost,
and none is moved before it is acknowledged. A call whose acknowledgement is lost (the
connection drops after the node committed) is sent again, and each frame carries an id
the node keeps (`frame_id`: the SHA-256 of the file's name, modification time and bytes,
the same however often, and by whichever watcher, the file is sent), so the node answers
the repeat as it did the first time and stores its reads once.

Complete files: the folder is polled, not watched through inotify, which needs a new
dependency and does not see files written over network shares (NFS, SMB), where cameras
often drop their frames; a poll every second costs one directory listing. A file is taken
once its size and modification time are the same at two looks one `interval` apart, and
it is not empty. Names starting with a dot are never taken, so a camera that can write to
``.name.jpg`` (or any other suffix) and rename into place has no half-written file seen
at all; for the others, a write that stalls longer than the interval mid-file is the risk.
One watcher per folder.

Batches: at most `MAX_FRAMES` frames and `batch_bytes` bytes to a call (by default the
node's default message limit), so a node's limit is never passed and at most one call's
frames are in memory. A frame larger than the node takes (`MAX_FRAME_BYTES`) goes to
failed/ unsent. Should the node still refuse a call as too large (its limit set lower),
the batch is halved.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from alpr.capture.v1 import capture_service_pb2 as pb
from node.capture.frames import MAX_FRAME_BYTES, MAX_FRAMES
from node.errors import NodeError

FRAME_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
DONE = "done"
FAILED = "failed"
WHY_SUFFIX = ".why"
# Codes after which sending again later can succeed; the frames wait in the folder.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.FAILED_PRECONDITION,  # the node cannot read frames until fixed
    }
)
RATE_LIMITED = "RATE_LIMITED"

Submit = Callable[[pb.SubmitFramesRequest], pb.SubmitFramesResponse]


class WatchRefusedError(NodeError):
    """The node refuses this watcher (its certificate, its camera id): retrying cannot help."""


class GaveUpError(NodeError):
    """With --once, the node stayed unreachable or busy through the whole backoff."""


@dataclass(frozen=True)
class Refusal:
    """A refused call, as the watcher decides on it."""

    code: grpc.StatusCode | None
    details: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: grpc.RpcError) -> Refusal:
        """The code, message and ErrorInfo of a failed call."""
        if not isinstance(error, grpc.Call):
            return cls(None, str(error))
        refusal = cls(error.code(), error.details() or "")
        status = rpc_status.from_call(error)
        for detail in status.details if status else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return cls(refusal.code, refusal.details, info.reason, dict(info.metadata))
        return refusal

    def frame(self) -> int | None:
        """The frame of the call named as invalid input, if one is."""
        name = self.metadata.get("field", "")
        if self.code is grpc.StatusCode.INVALID_ARGUMENT and name.startswith("frames["):
            number = name.removeprefix("frames[").partition("]")[0]
            return int(number) if number.isdigit() else None
        return None

    def too_large(self) -> bool:
        """Whether the node's message limit refused the call (gRPC's own refusal)."""
        return self.code is grpc.StatusCode.RESOURCE_EXHAUSTED and self.reason != RATE_LIMITED


class DropFolder:
    """The folder a camera drops frames in, with its done/ and failed/ beside them."""

    def __init__(self, directory: Path) -> None:
        """Watch `directory` (it must exist)."""
        if not directory.is_dir():
            raise WatchRefusedError(f"{directory}: not a directory")
        self.directory = directory
        self._last: dict[str, tuple[int, int]] = {}

    def settled(self) -> list[Path]:
        """The frames unchanged since the previous look and not empty, oldest first."""
        looked: dict[str, tuple[int, int]] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                suffix = Path(entry.name).suffix.lower()
                if entry.name.startswith(".") or suffix not in FRAME_SUFFIXES:
                    continue
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    looked[entry.name] = (stat.st_size, stat.st_mtime_ns)
        settled = [
            name for name, seen in looked.items() if seen[0] > 0 and self._last.get(name) == seen
        ]
        self._last = looked
        settled.sort(key=lambda name: (looked[name][1], name))
        return [self.directory / name for name in settled]

    def done(self, frame: Path) -> Path:
        """Move an acknowledged frame into done/; where it went."""
        return _move(frame, self.directory / DONE)

    def failed(self, frame: Path, why: str) -> Path:
        """Move a refused frame into failed/ with a ``.why`` file beside it; where it went."""
        moved = _move(frame, self.directory / FAILED)
        moved.with_name(moved.name + WHY_SUFFIX).write_text(why + "\n")
        return moved


def _move(frame: Path, folder: Path) -> Path:
    """Move `frame` into `folder`, never over a frame already there (cameras reuse names)."""
    folder.mkdir(exist_ok=True)
    target, copy = folder / frame.name, 0
    while target.exists():
        copy += 1
        target = folder / f"{frame.stem}-{copy}{frame.suffix}"
    return frame.rename(target)


class Backoff:
    """Waits that double from `first` to `most`; back to `first` after a success."""

    def __init__(self, first: float, most: float) -> None:
        """Wait `first` seconds after the first failure in a row, doubling up to `most`."""
        self.first, self.most = first, max(first, most)
        self.delay = first
        self._gave_most = False

    def next(self, hint: float = 0.0) -> float:
        """The wait before the next try (at least `hint`, the node's own estimate)."""
        delay = max(self.delay, min(hint, self.most))
        self.delay = min(self.delay * 2, self.most)
        self._gave_most = delay >= self.most
        return delay

    def spent(self) -> bool:
        """Whether the last wait given was the longest: the next failure ends a --once run."""
        return self._gave_most

    def reset(self) -> None:
        """After a success."""
        self.delay = self.first
        self._gave_most = False


@dataclass(frozen=True, kw_only=True)
class Camera:
    """What the watcher tells the node about each frame besides its image."""

    camera_id: str
    latitude: float | None = None
    longitude: float | None = None

    def frame(self, path: Path, image: bytes) -> pb.CameraFrame:
        """The frame of `path`: taken when the camera last wrote it (its mtime).

        Its id is the SHA-256 of the file's name, time and bytes: the same each time it is
        sent, and different for two files of the same bytes.
        """
        written = path.stat().st_mtime_ns
        named = os.fsencode(path.name) + f"\0{written}\0".encode()
        frame_id = hashlib.sha256(named + image).hexdigest()
        frame = pb.CameraFrame(image=image, frame_id=frame_id)
        frame.captured_at.FromNanoseconds(written)
        if self.latitude is not None and self.longitude is not None:
            frame.latitude, frame.longitude = self.latitude, self.longitude
        return frame


class FrameWatcher:
    """Sends a drop folder's frames to the node and files them once acknowledged."""

    def __init__(
        self,
        folder: DropFolder,
        submit: Submit,
        camera: Camera,
        *,
        batch_bytes: int,
        backoff: Backoff,
        say: Callable[[str], None],
        report: Callable[[dict[str, object]], None],
    ) -> None:
        """Send `folder`'s frames by `submit`; `say` status lines, `report` each frame."""
        self._folder = folder
        self._submit = submit
        self._camera = camera
        self._batch_bytes = batch_bytes
        self._backoff = backoff
        self._say = say
        self._report = report
        self._stopped = threading.Event()
        self.failed = 0

    def stop(self) -> None:
        """Stop after the call in flight, its frames filed (safe from a signal handler)."""
        self._stopped.set()

    def run(self, *, interval: float, once: bool) -> None:
        """Look at the folder every `interval` seconds until stopped, or once with `once`.

        Raises:
            WatchRefusedError: The node refuses this watcher's calls.
            GaveUpError: With `once`, the node stayed unavailable through the backoff.
        """
        self._folder.settled()  # the first look: what is there now
        while not self._stopped.wait(interval):
            self.send(self._folder.settled(), once=once)
            if once:
                return

    def send(self, frames: list[Path], *, once: bool = False) -> None:
        """Send `frames` in batches, filing each; waits and retries on transient refusals.

        Raises:
            WatchRefusedError: The node refuses this watcher's calls.
            GaveUpError: With `once`, the node stayed unavailable through the backoff.
        """
        pending = [frame for frame in frames if self._sendable(frame)]
        while pending and not self._stopped.is_set():
            batch = self._batch(pending)
            try:
                response = self._submit(
                    pb.SubmitFramesRequest(camera_id=self._camera.camera_id, frames=batch.frames)
                )
            except grpc.RpcError as error:
                self._refused(Refusal.of(error), batch, pending, once=once)
                continue
            self._backoff.reset()
            for path, reads in zip(batch.paths, response.frames, strict=True):
                moved = self._folder.done(path)
                plates = [{"text": p.plate, "read_id": p.read_id} for p in reads.plates]
                self._report({"file": str(path), "moved": str(moved), "plates": plates})
            del pending[: len(batch.paths)]

    def _sendable(self, frame: Path) -> bool:
        try:
            size = frame.stat().st_size
        except FileNotFoundError:  # taken away since the folder was looked at
            return False
        if size <= MAX_FRAME_BYTES:
            return True
        self._fail(frame, f"{size} bytes: the node takes frames of at most {MAX_FRAME_BYTES}")
        return False

    def _batch(self, pending: list[Path]) -> _Batch:
        """The next call's frames: at most MAX_FRAMES and `batch_bytes`, at least one."""
        batch = _Batch()
        request = pb.SubmitFramesRequest(camera_id=self._camera.camera_id)
        for path in pending[:MAX_FRAMES]:
            frame = self._camera.frame(path, path.read_bytes())
            request.frames.append(frame)
            if batch.paths and request.ByteSize() > self._batch_bytes:
                break
            batch.paths.append(path)
            batch.frames.append(frame)
        return batch

    def _refused(self, refusal: Refusal, batch: _Batch, pending: list[Path], *, once: bool) -> None:
        number = refusal.frame()
        if number is not None and number < len(batch.paths):
            self._fail(batch.paths[number], refusal.details)
            pending.remove(batch.paths[number])
            return
        if refusal.too_large():
            if len(batch.paths) == 1:
                self._fail(batch.paths[0], f"the node refused it: {refusal.details}")
                pending.remove(batch.paths[0])
                return
            self._batch_bytes = max(1, sum(len(f.image) for f in batch.frames) // 2)
            self._say(
                f"the node refused {len(batch.paths)} frames as too large ({refusal.details});"
                f" sending at most {self._batch_bytes} bytes a call (see --batch-bytes)"
            )
            return
        code = refusal.code.name if refusal.code else "NO_STATUS"
        if refusal.code is not None and refusal.code not in TRANSIENT:
            raise WatchRefusedError(f"the node refuses the frames: {code} {refusal.details}")
        if once and self._backoff.spent():
            raise GaveUpError(
                f"the node did not take the frames ({code} {refusal.details}); "
                f"{len(pending)} left in {self._folder.directory}"
            )
        hint = float(refusal.metadata.get("retryAfterSeconds", "0") or 0)
        delay = self._backoff.next(hint)
        self._say(f"not taken ({code} {refusal.details}); sending again in {delay:g} s")
        self._stopped.wait(delay)

    def _fail(self, frame: Path, why: str) -> None:
        moved = self._folder.failed(frame, why)
        self.failed += 1
        self._report({"file": str(frame), "moved": str(moved), "error": why})


@dataclass
class _Batch:
    paths: list[Path] = field(default_factory=list)
    frames: list[pb.CameraFrame] = field(default_factory=list)
