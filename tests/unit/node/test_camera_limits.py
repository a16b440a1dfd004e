"""The per-camera rate limits of frames and reads: a token bucket per camera, bounded.

Time is the ManualClock's: nothing here sleeps.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from node.capture.limits import CameraRateLimit
from node.errors import RateLimitedError
from tests.support.clock import ManualClock


def limit(clock: ManualClock, **kwargs: int) -> CameraRateLimit:
    return CameraRateLimit(unit="frames", per_second=2.0, clock=clock, burst=16, **kwargs)


class TestCameraRateLimit:
    def test_succeeds_for_a_full_batch_then_at_the_rate(self, clock: ManualClock) -> None:
        limiter = limit(clock)
        limiter.admit("cam-1", 16)  # a burst of one full call
        clock.advance(timedelta(seconds=1))
        limiter.admit("cam-1", 2)
        limiter.admit("cam-2", 16)  # every camera has its own bucket

    def test_fails_past_the_rate_saying_when_to_try_again(self, clock: ManualClock) -> None:
        limiter = limit(clock)
        limiter.admit("cam-1", 16)
        clock.advance(timedelta(seconds=1))
        with pytest.raises(RateLimitedError) as raised:
            limiter.admit("cam-1", 3)
        assert raised.value.retry_after == pytest.approx(0.5)
        assert "'cam-1' sent more than 2 frames a second (bursts of up to 16)" in str(raised.value)
        assert raised.value.metadata() == {
            "cameraId": "cam-1",
            "framesPerSecond": "2",
            "burstFrames": "16",
            "frames": "3",
            "retryAfterSeconds": "0.500",
        }

    def test_fails_counting_nothing_of_a_refused_call(self, clock: ManualClock) -> None:
        limiter = limit(clock)
        limiter.admit("cam-1", 16)
        for _ in range(3):
            with pytest.raises(RateLimitedError):
                limiter.admit("cam-1", 4)
        clock.advance(timedelta(seconds=2))
        limiter.admit("cam-1", 4)  # the refused calls took none of the 4 frames refilled

    def test_forgets_cameras_whose_bucket_is_full_again(self, clock: ManualClock) -> None:
        limiter = limit(clock)
        for number in range(100):
            limiter.admit(f"cam-{number}", 1)
        assert limiter.cameras() == 100
        clock.advance(timedelta(seconds=8))  # 16 frames at 2 a second: every bucket refilled
        limiter.admit("cam-new", 1)
        assert limiter.cameras() == 1

    def test_holds_at_most_max_cameras(self, clock: ManualClock) -> None:
        limiter = limit(clock, max_cameras=10)
        for number in range(1000):
            limiter.admit(f"cam-{number}", 16)
        assert limiter.cameras() == 10
        with pytest.raises(RateLimitedError):  # the most recent are still counted
            limiter.admit("cam-999", 1)

    def test_fails_for_a_rate_that_is_not_positive(self, clock: ManualClock) -> None:
        with pytest.raises(ValueError, match="positive"):
            CameraRateLimit(unit="frames", per_second=0, clock=clock, burst=16)

    def test_fails_naming_what_it_counts_for_reads(self, clock: ManualClock) -> None:
        limiter = CameraRateLimit(unit="reads", per_second=20.0, clock=clock, burst=100)
        limiter.admit("cam-1", 100)  # one full call of reads
        with pytest.raises(RateLimitedError) as raised:
            limiter.admit("cam-1", 10)
        assert "sent more than 20 reads a second (bursts of up to 100); 10 more reads" in str(
            raised.value
        )
        assert raised.value.metadata() == {
            "cameraId": "cam-1",
            "readsPerSecond": "20",
            "burstReads": "100",
            "reads": "10",
            "retryAfterSeconds": "0.500",
        }
