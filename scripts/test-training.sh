#!/usr/bin/env bash
# The training scripts on a tiny run (tests/unit/capture/test_training.py), so they cannot rot.
# Installs the project with its dev and train extras (torch, Ultralytics: several GB, from the
# machine's local wheels) into .venv-train, kept apart from .venv so that the node's runtime
# never holds torch. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The synthetic plates (test frames, training sets) are drawn in DejaVu faces.
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSerifCondensed-BoldItalic.ttf ]; then
    echo "$(basename "$0"): installing the DejaVu fonts (Debian's fonts-dejavu-core, -extra)" >&2
    apt-get update -q >/dev/null && apt-get install -y -q fonts-dejavu-core fonts-dejavu-extra >/dev/null
fi
[ -x .venv-train/bin/python ] || python3 -m venv .venv-train
.venv-train/bin/pip install -q --disable-pip-version-check -e ".[dev,train]"
# Fails rather than letting the tests skip themselves when the extra is missing.
.venv-train/bin/python -c "import torch, ultralytics, onnx"
exec .venv-train/bin/pytest tests/unit/capture/test_training.py "$@"
