"""The Exchange and Capture benchmarks at a tiny size, so that they cannot rot.

Only that each runs and prints every row its issue asks for: timings are never checked in
tests (scripts/bench/ prints them, with a baseline measured in the same run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


def bench(script: str, *args: str) -> str:
    """What `script` printed, run with `args` in a process of its own."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_cap2_the_capture_bench_prints_every_row() -> None:
    pytest.importorskip("onnxruntime", reason="the capture extra is not installed")
    printed = bench("capture.py", "--frames", "3", "--crops", "10")
    for row in (
        "PlateReader.read, one frame a call",
        "baseline: bare ONNX",
        "OCR alone on held-out crops",
        "reads matching no plate",
        "batch 1 ",
        "batch 32 ",
        "pipeline / baseline per frame",
    ):
        assert row in printed, row


def test_hot7_the_hotlist_sync_bench_prints_every_row() -> None:
    printed = bench("hotlist_sync.py", "--sizes", "2000", "--delta", "10", "--repeat", "2")
    for row in (
        "full pull 2,000 ",
        "delta 10 on 2,000",
        "delta 0 on 2,000 (the exchange alone)",
        "full pull 2,000, 1 more a chunk ended",
        "full pull 2,000, the same pulled again",
        "floor 2,000",
        "baseline 2,000 (plain protobuf)",
        "baseline 2,000 (plain protobuf + entry checks)",
        "baseline 10 (plain protobuf)",
        "then match s",
        'targets (issue "Exchange")',
        "delta 10 on 2,000 under 200 ms",
        "full pull 2,000: at most 3x the checked baseline",
    ):
        assert row in printed, row
    assert "failed:" not in printed
