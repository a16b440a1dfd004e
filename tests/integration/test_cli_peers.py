"""Operators register their partners' nodes with `alpr peers`, through their own node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import make_node, serving
from tests.support.operator import Operator
from tests.support.pki import FEDERATION, LAPD, LASD, Federation

KEY = "11" * 32  # any 32 bytes: the node only checks a key's length when it is registered
LASD_NODE = f"spiffe://{FEDERATION}/agency/{LASD}"


@pytest.fixture
def alpr(
    federation: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Operator]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD)) as node:
        yield Operator(node, federation, capsys, prefix=("peers",))


def add(alpr: Operator, ori: str, *options: str, expect: int = 0) -> str:
    return alpr("add", "--ori", ori, "--name", f"Agency {ori}", "--endpoint", "lasd.test:8443",
                "--public-key", KEY, *options, expect=expect)  # fmt: skip


class TestAddPeerByCli:
    def test_fails_in_one_line_for_our_own_ori(self, alpr: Operator) -> None:
        err = add(alpr, LAPD, expect=1)
        assert err.count("\n") == 1
        assert f"INVALID_ARGUMENT peer.ori: {LAPD} is this node's own agency" in err
        assert LAPD not in alpr("list")
