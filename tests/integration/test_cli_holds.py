"""`alpr holds` and `alpr evidence` against a real node (RET-4, RET-6)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from node.ed25519 import Ed25519Signer
from node.reads import NewRead
from tests.support.bombs import small_png
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, Federation


@pytest.fixture
def node(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[RunningNode]:
    with serving(make_node(federation, tmp_path / "lapd", LAPD), clock=clock) as running:
        yield running


@pytest.fixture
def alpr(node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(node, federation, capsys, user="custodian", prefix=["holds"])


PLACE = (
    "place", "--plate", "7ABC12?", "--since", "2026-11-25T00:00", "--until", "2026-11-26",
    "--case", "26-HOM-4", "--reason", "trial evidence", "--investigator", "Det. Ruiz x100",
    "--approved-by", "Lt. Ortiz",
)  # fmt: skip


class TestHolds:
    def test_ret4_a_hold_placed_keeps_reads_past_both_limits_until_released(
        self, node: RunningNode, alpr: Operator, clock: ManualClock
    ) -> None:
        services = node.services
        services.reads.commit(
            "cam-1", [NewRead(plate="7ABC123", confidence=0.9, captured_at=START)]
        )
        hold_id = alpr(*PLACE).split()[3]
        listed = alpr("list")
        assert hold_id in listed
        assert "26-HOM-4" in listed
        clock.advance(timedelta(days=7 * 366))  # past LAPD's two years and five years
        assert "DUE" in alpr("list")
        run = services.retention.run(actor="system", agency=LAPD)
        assert (run.deleted, run.held) == (0, 1)
        alpr("review", hold_id)
        assert "DUE" not in alpr("list")
        alpr("release", hold_id)
        assert hold_id not in alpr("list")
        assert services.retention.run(actor="system", agency=LAPD).deleted == 1
        kinds = [e.kind for e in services.audit.events() if e.kind.startswith("legal_hold.")]
        assert kinds == ["legal_hold.placed", "legal_hold.reviewed", "legal_hold.released"]

    def test_fails_in_one_line_without_an_approval_or_for_an_unknown_hold(
        self, alpr: Operator
    ) -> None:
        without = [*PLACE[:-1], " "]
        assert "supervisor_approval" in alpr(*without, expect=1)
        assert "NOT_FOUND" in alpr("release", "no-such-hold", expect=1)


class TestEvidence:
    def test_ret6_held_reads_export_as_a_signed_package_anyone_can_check(
        self, node: RunningNode, alpr: Operator, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        services = node.services
        services.reads.commit(
            "cam-1",
            [
                NewRead(
                    plate="7ABC123",
                    confidence=0.9,
                    captured_at=START,
                    plate_image=small_png(b"crop-1"),
                    box=(40, 300, 260, 360),
                ),
                NewRead(plate="9XYZ999", confidence=0.9, captured_at=START),
            ],
        )
        hold_id = alpr(*PLACE).split()[3]
        package = tmp_path / "evidence.zip"
        assert main(["evidence", "export", str(node.config.directory), "--hold", hold_id,
                     "--out", str(package)]) == 0  # fmt: skip
        key = services.identity.to_proto().signing_public_key.hex()
        capsys.readouterr()
        assert main(["evidence", "verify", str(package), "--public-key", key]) == 0
        assert "holds: 1 reads of CA0194200" in capsys.readouterr().out
        with zipfile.ZipFile(package) as original:
            contents = {name: original.read(name) for name in original.namelist()}
        assert b"9XYZ999" not in contents["reads.json"]  # only what the hold keeps
        (read,) = json.loads(contents["reads.json"])
        assert (read["plate"], read["box"]) == ("7ABC123", [40, 300, 260, 360])
        crop = f"images/{read['plate_image_sha256']}.png"  # named as what it is
        assert contents[crop] == small_png(b"crop-1")
        for name, change, why in (
            ("reads.json", b'"7ABC124"', "reads.json was altered"),
            ("images/extra.jpg", b"x", "files not in the manifest"),
        ):
            altered = dict(contents)
            altered[name] = contents.get(name, b"").replace(b'"7ABC123"', change) or change
            forged = tmp_path / f"forged-{len(name)}.zip"
            with zipfile.ZipFile(forged, "w") as out:
                for member, data in altered.items():
                    out.writestr(member, data)
            assert main(["evidence", "verify", str(forged), "--public-key", key]) == 1
            assert why in capsys.readouterr().out
        other = Ed25519Signer.generate().public_key.public_bytes.hex()
        assert main(["evidence", "verify", str(package), "--public-key", other]) == 1
        assert "signature does not hold" in capsys.readouterr().out
