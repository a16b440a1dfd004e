#!/usr/bin/env bash
# Set up and run every test: README command (b). Arguments go to pytest.
# Installs the project with its dev extra into .venv; the test session starts its
# own throwaway PostgreSQL (or uses ALPR_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "test.sh: installing the PostgreSQL server binaries (Debian's postgresql)" >&2
    apt-get install -y -q postgresql >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
exec .venv/bin/pytest "$@"
