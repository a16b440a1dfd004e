"""`alpr demo` end to end: three real `alpr serve` processes federated on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main


def test_the_demo_federates_three_nodes_and_every_check_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", str(tmp_path / "demo")])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "3 nodes, 3 agreements, 6 hotlist pulls, 4 hits streamed to a patrol car" in output
    # The frames are read by the shipped models (CAP-2); one shows a partner's stolen car.
    assert "the node read UGM3943 (0.91), 3LBY007 (0.92), BUN9260 (0.93)" in output
    assert "3LBY007 on CA0190000's wanted: stolen_vehicle" in output
    # LASD's and South Pasadena's profiles approve each partner request (SHR-5).
    assert "0 partners answered the query and 2 held it for their approver" in output
    assert output.count("0 failing") == 3
    assert output.count("partners' cosignatures hold") == 3
    for agency in ("lapd", "lasd", "spd"):
        assert (tmp_path / "demo" / agency / "node.db").exists()
