#!/usr/bin/env bash
# Set up and run every test: README command (b). Arguments go to pytest.
# Installs the project with its dev and capture extras into .venv; the test session starts its
# own throwaway PostgreSQL (or uses ALPR_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "test.sh: installing the PostgreSQL server binaries (Debian's postgresql)" >&2
    apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null
fi
# The synthetic plates (test frames, training sets) are drawn in DejaVu faces.
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSerifCondensed-BoldItalic.ttf ]; then
    echo "$(basename "$0"): installing the DejaVu fonts (Debian's fonts-dejavu-core, -extra)" >&2
    apt-get update -q >/dev/null && apt-get install -y -q fonts-dejavu-core fonts-dejavu-extra >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# The capture extra (onnxruntime, fast-plate-ocr, OpenCV headless: seconds, no torch) runs
# the reader tests against the shipped models.
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev,capture]"
exec .venv/bin/pytest "$@"
