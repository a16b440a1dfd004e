"""Run a command where no network exists at all: a fresh network namespace, loopback down.

`unshare --user --map-root-user --net` needs no privileges where the kernel allows user
namespaces, as on the machines the project tests on; elsewhere the tests that need it skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_NETWORK = ("unshare", "--user", "--map-root-user", "--net")
# Printed by `check_unreachable()`, which `UNREACHABLE_CHECK` defines for a script to call,
# when the script indeed cannot reach the outside; and by `forbid_network()`'s hook, on
# standard error, for each attempt to reach a host all the same, even one caught.
UNREACHABLE = "no network"
ATTEMPT = "network attempt"
UNREACHABLE_CHECK = f'''
import socket
import sys


def check_unreachable() -> None:
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=2)
    except OSError:
        print({UNREACHABLE!r}, flush=True)


def forbid_network() -> None:
    """From now on, in this process: report and refuse every attempt to reach a host."""

    def hook(event: str, args: tuple[object, ...]) -> None:
        internet = (socket.AF_INET, socket.AF_INET6)
        if (event == "socket.connect" and getattr(args[0], "family", None) in internet) or (
            event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.sendto")
        ):
            print({ATTEMPT!r}, event, args[1:], file=sys.stderr, flush=True)
            raise OSError(f"no network here ({{event}})")

    sys.addaudithook(hook)


if __name__ != "__main__":  # a spawned worker importing the script: it may not either
    forbid_network()
'''


def run_offline(argv: Sequence[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `argv` (a Python script and its arguments) with this interpreter and no network.

    The repository and its scripts/ folder are on its import path, as under pytest.
    """
    usable = (
        shutil.which("unshare")
        and not subprocess.run([*NO_NETWORK, "true"], check=False).returncode
    )
    if not usable:
        pytest.skip("this machine cannot make a network namespace (unshare)")
    path = os.pathsep.join([str(ROOT), str(ROOT / "scripts"), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [*NO_NETWORK, sys.executable, *argv],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
