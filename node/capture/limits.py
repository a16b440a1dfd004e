"""How many frames or reads each camera may send: a token bucket per camera, bounded memory.

A camera may send `per_second` items (frames to `SubmitFrames`, reads to `SubmitReads`;
one limit each) a second on average and, after a pause, a burst of up to `burst` at
once (at least one full call, so that any valid call can be taken). A call that would
go past that is refused whole with `RateLimitedError`, saying when it would be taken;
nothing of it is counted.

The state is one entry per camera heard from recently. An entry idle long enough for its
bucket to be full again is the same as none, so it is dropped; past `max_cameras` busy
at once, the least recently heard is dropped (that camera starts again with a full
bucket: at worst one extra burst). Time comes from the node's clock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta

from node.clock import Clock
from node.errors import RateLimitedError

FRAMES_PER_SECOND = 10.0
READS_PER_SECOND = 20.0
MAX_CAMERAS = 10_000


class CameraRateLimit:
    """Items (frames, reads) per second for each camera; safe to share between calls."""

    def __init__(
        self,
        *,
        unit: str,
        per_second: float,
        clock: Clock,
        burst: int,
        max_cameras: int = MAX_CAMERAS,
    ) -> None:
        """Allow each camera `per_second` `unit` a second, in bursts of up to `burst`.

        Args:
            unit: What is counted, plural and lower case ("frames"): the refusal names it.
            per_second: The rate each camera may keep up.
            clock: The node's clock.
            burst: The most taken at once after a pause: at least one full call.
            max_cameras: The most cameras whose state is held at once.
        """
        if not per_second > 0 or burst < 1 or max_cameras < 1:
            raise ValueError("the rate, the burst and the camera count must be positive")
        self.unit = unit
        self.per_second = per_second
        self.burst = max(float(burst), per_second)
        self._clock = clock
        self._max_cameras = max_cameras
        self._refill = timedelta(seconds=self.burst / per_second)
        # camera -> (items it may still send, when that was counted); least recent first.
        self._buckets: OrderedDict[str, tuple[float, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, camera_id: str, count: int) -> None:
        """Count `count` items from `camera_id`, or refuse them all.

        Raises:
            RateLimitedError: The camera has sent its share; says when to try again.
        """
        now = self._clock()
        with self._lock:
            self._forget_idle(now)
            left, counted = self._buckets.pop(camera_id, (self.burst, now))
            elapsed = max((now - counted).total_seconds(), 0.0)
            left = min(self.burst, left + elapsed * self.per_second)
            taken = count <= left
            self._buckets[camera_id] = (left - count if taken else left, now)
            if len(self._buckets) > self._max_cameras:
                self._buckets.popitem(last=False)
        if not taken:
            unit = self.unit
            raise RateLimitedError(
                f"camera {camera_id!r} sent more than {self.per_second:g} {unit} a second"
                f" (bursts of up to {self.burst:g}); {count} more {unit} are taken in"
                f" {(count - left) / self.per_second:.3f} s",
                retry_after=(count - left) / self.per_second,
                **{
                    "cameraId": camera_id,
                    f"{unit}PerSecond": f"{self.per_second:g}",
                    f"burst{unit.capitalize()}": f"{self.burst:g}",
                    unit: str(count),
                },
            )

    def cameras(self) -> int:
        """How many cameras the limiter holds state for."""
        with self._lock:
            return len(self._buckets)

    def _forget_idle(self, now: datetime) -> None:
        # Least recently counted first: stop at the first bucket that may not be full yet.
        while self._buckets:
            counted = next(iter(self._buckets.values()))[1]
            if now - counted < self._refill:
                return
            self._buckets.popitem(last=False)
