"""Operators register their partners' nodes with `alpr peers`, through their own node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import FEDERATION, LAPD, LASD, SPD, Federation

KEY = "11" * 32  # any 32 bytes: the node only checks a key's length when it is registered
LASD_NODE = f"spiffe://{FEDERATION}/agency/{LASD}"
NOT_LASD_NODE = {
    "other-trust-domain": f"spiffe://other.fed/agency/{LASD}",
    "another-agency": f"spiffe://{FEDERATION}/agency/{SPD}",
    "a-user": f"{LASD_NODE}/user/admin",
    "trailing-slash": f"{LASD_NODE}/",
    "not-spiffe": "https://lasd.test/",
}


@pytest.fixture
def node(federation: Federation, tmp_path: Path) -> Iterator[RunningNode]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD)) as running:
        yield running


@pytest.fixture
def alpr(node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(node, federation, capsys, prefix=("peers",))


def add(alpr: Operator, ori: str, *options: str, expect: int = 0) -> str:
    return alpr("add", "--ori", ori, "--name", f"Agency {ori}", "--endpoint", "lasd.test:8443",
                "--public-key", KEY, *options, expect=expect)  # fmt: skip


class TestAddPeerByCli:
    def test_fails_in_one_line_for_our_own_ori(self, alpr: Operator) -> None:
        err = add(alpr, LAPD, expect=1)
        assert err.count("\n") == 1
        assert f"INVALID_ARGUMENT peer.ori: {LAPD} is this node's own agency" in err
        assert LAPD not in alpr("list")

    @pytest.mark.parametrize("san", NOT_LASD_NODE.values(), ids=NOT_LASD_NODE.keys())
    def test_fails_in_one_line_for_a_san_not_its_node_in_our_federation(
        self, alpr: Operator, node: RunningNode, san: str
    ) -> None:
        err = add(alpr, LASD, "--spiffe-id", san, expect=1)
        assert err.count("\n") == 1
        assert (
            f"INVALID_ARGUMENT peer.spiffe_id: {san!r} is not the node of {LASD} "
            f"in federation {FEDERATION}: it is {LASD_NODE!r}"
        ) in err
        assert node.services.peers.get(LASD) is None

    @pytest.mark.parametrize("options", [[], ["--spiffe-id", LASD_NODE]], ids=["default", "given"])
    def test_succeeds_with_its_node_san(
        self, alpr: Operator, node: RunningNode, options: list[str]
    ) -> None:
        add(alpr, LASD, *options)
        assert node.services.peers.require(LASD).spiffe_id == LASD_NODE


class TestUpdatePeerByCli:
    @pytest.mark.parametrize("san", NOT_LASD_NODE.values(), ids=NOT_LASD_NODE.keys())
    def test_fails_in_one_line_for_a_san_not_its_node_in_our_federation(
        self, alpr: Operator, node: RunningNode, san: str
    ) -> None:
        add(alpr, LASD)
        err = alpr("update", LASD, "--spiffe-id", san, expect=1)
        assert err.count("\n") == 1
        assert f"INVALID_ARGUMENT peer.spiffe_id: {san!r} is not the node of {LASD}" in err
        assert node.services.peers.require(LASD).spiffe_id == LASD_NODE


class TestListPeersByCli:
    def test_succeeds_showing_each_peers_san(self, alpr: Operator, node: RunningNode) -> None:
        add(alpr, LASD)
        fingerprint = node.services.peers.require(LASD).fingerprint
        header, row = alpr("list").splitlines()
        assert header.split() == ["ORI", "NAME", "ENDPOINT", "SAN", "KEY", "FINGERPRINT"]
        assert row.startswith(f"{LASD}  Agency {LASD}  lasd.test:8443  {LASD_NODE}  ")
        assert row.endswith(fingerprint)
