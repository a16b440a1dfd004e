#!/usr/bin/env bash
# README command (a): install the node, then run `alpr demo`: three agency nodes federated
# on loopback (SQLite, no server needed), hotlists shared, hits streamed to a patrol car,
# a federated plate query held by two partners for their approvers, approved and collected,
# and every receipt and audit log verified. Exits by itself.
# Arguments go to `alpr demo` (default directory: var/demo, replaced on each run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# The capture extra (onnxruntime, fast-plate-ocr, OpenCV headless: no torch) reads the frames.
.venv/bin/pip install -q --disable-pip-version-check -e ".[capture]"
exec .venv/bin/alpr demo "$@"
