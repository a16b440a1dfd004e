"""`alpr demo` end to end: three real `alpr serve` processes federated on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main


def test_shr5_shr7_aud6_the_demo_federates_three_nodes_and_every_check_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", str(tmp_path / "demo")])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "3 nodes, 3 agreements, 6 hotlist pulls, 4 hits streamed to a patrol car" in output
    # The frames are read by the shipped models (CAP-2); one shows a partner's stolen car.
    assert "the node read UGM3943 (0.94), 3LBY007 (0.93), BUN9260 (0.95)" in output
    assert "3LBY007 on CA0190000's wanted: stolen_vehicle" in output
    # LASD's and South Pasadena's profiles approve each partner request (SHR-5): the query is
    # held, each approver (enrolled, trained and acknowledged, ACC-2) sees who asked, for what
    # purpose and case (ACC-6), and approves; the detective collects where the plate was seen.
    for held in ("CA0190000: pending approval (reference", "CA0193300: pending approval"):
        assert held in output
    for approver in ("records (custodian of records)", "commander (system administrator)"):
        assert f"{approver} enrolled, training and policy acknowledgement recorded" in output
    assert output.count("CA0194200's request by detective: 7ABC123 from") == 2
    assert output.count("for criminal investigations or proceedings, case DR 26-0117734") == 2
    assert "LASD: approved by records (need to know shown" in output
    assert "SPD: approved by commander (need to know shown" in output
    assert "the detective's 7ABC123 query at CA0190000 (case DR 26-0117734): held" in output
    for partner in ("CA0190000", "CA0193300"):
        assert f"  {partner}: answered\n    seen by its cam-1 at " in output
    assert output.count(", 34.0522, -118.2437") == 2
    assert (
        "0 partners answered the query at once and 2 held it for their approver; 2 approved, "
        "2 partners answered after approval" in output
    )
    # Every receipt, the held answers' and the collections' too, holds on all three (AUD-6).
    assert output.count("0 failing") == 3
    assert output.count("partners' cosignatures hold") == 3
    for agency in ("lapd", "lasd", "spd"):
        assert (tmp_path / "demo" / agency / "node.db").exists()
