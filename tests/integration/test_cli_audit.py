"""`alpr audit` in process on a real node directory: verify, prove, and check without the node."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gateway.cli import main
from node.audit import AuditLog
from node.audit_checkpoints import CheckpointStore
from node.checkpoint import log_origin
from node.ed25519 import Ed25519Signer
from node.merkle import inclusion_proof, leaf_hash, root_from_leaves
from node.profile import Role
from node.store import create_engine
from node.users import UserDirectory
from tests.support.clock import ManualClock
from tests.support.nodes import make_node
from tests.support.pki import LAPD, Federation
from tests.support.users import PASSWORD, ready_user

USER = f"spiffe://test.alpr/agency/{LAPD}/user/x"
EVENTS = 6


@dataclass
class Site:
    """A node directory whose audit log holds `EVENTS` events, and its database."""

    directory: Path
    engine: Engine
    log: AuditLog


@pytest.fixture
def site(federation: Federation, tmp_path: Path, clock: ManualClock) -> Iterator[Site]:
    config = make_node(federation, tmp_path / "lapd", LAPD)
    engine = create_engine(config.store_url)
    log = AuditLog(engine, clock=clock)
    for number in range(EVENTS):
        log.append("login", actor=USER, agency=LAPD, details={"attempt": number})
    yield Site(tmp_path / "lapd", engine, log)
    engine.dispose()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `alpr` with `argv`: its exit code and its output, stdout then stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


def prove(
    capsys: pytest.CaptureFixture[str], site: Site, out: Path, *extra: str
) -> dict[str, object]:
    code, output = run(capsys, "audit", "prove", str(site.directory), "--out", str(out), *extra)
    assert code == 0, output
    proof: dict[str, object] = json.loads(out.read_text())
    return proof


class TestVerify:
    def test_succeeds_printing_the_size_and_root(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, output = run(capsys, "audit", "verify", str(site.directory))
        assert code == 0
        assert output == (
            f"tree size {EVENTS}, root {site.log.head().root.hex()}: ok\n"
            "0 signed checkpoints and partners' cosignatures hold\n"
        )

    def test_aud5_checks_the_checkpoints_the_node_signed_and_prints_the_latest(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, output = run(capsys, "audit", "checkpoint", str(site.directory))
        assert (code, output.startswith("the node has signed no checkpoint yet")) == (1, True)
        signer = Ed25519Signer.load(site.directory / "keys" / "signing.key")
        origin = log_origin("test.alpr", LAPD)
        note = CheckpointStore(site.engine, signer=signer, origin=origin, clock=ManualClock()).sign(
            site.log.head()
        )
        code, output = run(capsys, "audit", "verify", str(site.directory))
        assert (
            code,
            output.endswith("1 signed checkpoints and partners' cosignatures hold\n"),
        ) == (0, True)
        code, output = run(capsys, "audit", "checkpoint", str(site.directory))
        assert (code, output) == (0, note.decode())
        assert output.startswith(f"{origin}\n{EVENTS}\n")

    def test_aud5_fails_naming_the_event_whose_row_was_updated(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with site.engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET actor = 'system' WHERE seq = 4"))
        code, output = run(capsys, "audit", "verify", str(site.directory))
        assert code == 1
        assert output.startswith("audit log fails (first bad event: 4): audit event 4 was altered")

    def test_aud5_fails_naming_a_deleted_event(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with site.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_event WHERE seq = 2"))
        code, output = run(capsys, "audit", "verify", str(site.directory))
        assert code == 1
        assert "(first bad event: 2): audit event 2 is missing" in output


class TestProve:
    def test_succeeds_and_the_proof_holds_without_the_node(
        self, site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "proof.json"
        proof = prove(capsys, site, out, "--seq", "3")
        assert json.loads(base64.b64decode(str(proof["event"])))["seq"] == 3
        assert (proof["leaf_index"], proof["tree_size"]) == (2, EVENTS)
        assert proof["root"] == site.log.head().root.hex()
        assert len(proof["hashes"]) == 3  # type: ignore[arg-type]
        root = site.log.head().root.hex()
        site.engine.dispose()
        shutil.rmtree(site.directory)

        code, output = run(capsys, "audit", "check-proof", str(out))
        assert (code, output) == (
            0,
            f"proof holds: event 3 is in the tree of size {EVENTS} with root {root} "
            "(the root in the file)\n",
        )
        code, output = run(capsys, "audit", "check-proof", str(out), "--root", root)
        assert (code, output.endswith("(the root given)\n")) == (0, True)

    def test_succeeds_in_an_earlier_tree_printing_to_stdout(
        self, site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, output = run(
            capsys, "audit", "prove", str(site.directory), "--seq", "2", "--size", "3"
        )
        assert code == 0
        assert json.loads(output)["tree_size"] == 3
        (tmp_path / "proof.json").write_text(output)
        earlier = site.log.recompute_root(3).hex()
        code, output = run(
            capsys, "audit", "check-proof", str(tmp_path / "proof.json"), "--root", earlier
        )
        assert code == 0, output

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (("--seq", "0"), "seq: must be 1 to 6, not 0"),
            (("--seq", "7"), "seq: must be 1 to 6, not 7"),
            (("--seq", "2", "--size", "7"), "size: must be 1 to 6, not 7"),
        ],
    )
    def test_fails_in_one_line_outside_the_log(
        self, site: Site, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
    ) -> None:
        code, output = run(capsys, "audit", "prove", str(site.directory), *argv)
        assert code == 2
        assert output == f"alpr: error: {expected}\n"

    def test_aud5_fails_for_an_altered_event(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with site.engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET details = '{}' WHERE seq = 5"))
        code, output = run(capsys, "audit", "prove", str(site.directory), "--seq", "5")
        assert (code, output) == (
            2,
            "alpr: error: audit event 5 was altered: its fields do not match its leaf hash\n",
        )


class TestCheckProof:
    @pytest.fixture
    def proof_file(self, site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
        out = tmp_path / "proof.json"
        prove(capsys, site, out, "--seq", "5")
        return out

    def rewrite(self, path: Path, **changes: object) -> None:
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    def test_fails_for_a_tampered_event(
        self, proof_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        event = base64.b64decode(json.loads(proof_file.read_text())["event"])
        forged = event.replace(b'"actor":"spiffe', b'"actor":"spoofed')
        assert forged != event
        self.rewrite(proof_file, event=base64.b64encode(forged).decode())
        code, output = run(capsys, "audit", "check-proof", str(proof_file))
        assert code == 1
        assert output.startswith("proof does not hold: the inclusion proof leads to root ")

    def test_fails_for_a_tampered_proof_hash(
        self, proof_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        hashes = json.loads(proof_file.read_text())["hashes"]
        hashes[1] = ("0" if hashes[1][0] != "0" else "1") + hashes[1][1:]
        self.rewrite(proof_file, hashes=hashes)
        code, output = run(capsys, "audit", "check-proof", str(proof_file))
        assert code == 1
        assert output.startswith("proof does not hold: the inclusion proof leads to root ")

    def test_fails_for_a_wrong_root(
        self, site: Site, proof_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        other = site.log.recompute_root(EVENTS - 1).hex()
        code, output = run(capsys, "audit", "check-proof", str(proof_file), "--root", other)
        assert code == 1
        assert output.startswith("proof does not hold: the inclusion proof leads to root ")
        assert output.endswith(f"not {other}\n")

    def test_fails_for_an_event_moved_to_another_index(
        self, site: Site, tmp_path: Path, proof_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        other = tmp_path / "other.json"
        prove(capsys, site, other, "--seq", "6")
        self.rewrite(proof_file, event=json.loads(other.read_text())["event"])
        code, output = run(capsys, "audit", "check-proof", str(proof_file))
        assert code == 1
        assert output.startswith("proof does not hold: ")

    def test_fails_for_an_event_whose_number_is_not_its_place(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # A log that hashed event 9 as its third leaf: the proof holds, the event is misplaced.
        events = [json.dumps({"seq": seq}).encode() for seq in (1, 2, 9, 4)]
        leaves = [leaf_hash(event) for event in events]
        document = {
            "format": "alpr-audit-inclusion-proof/v1",
            "event": base64.b64encode(events[2]).decode(),
            "leaf_index": 2,
            "tree_size": 4,
            "hashes": [value.hex() for value in inclusion_proof(leaves, 2, 4)],
            "root": root_from_leaves(leaves).hex(),
        }
        (tmp_path / "proof.json").write_text(json.dumps(document))
        code, output = run(capsys, "audit", "check-proof", str(tmp_path / "proof.json"))
        assert (code, output) == (
            1,
            "proof does not hold: the event is number 9, not 3 as its index says\n",
        )

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            (
                {"format": "x"},
                "the file is not a JSON object of format alpr-audit-inclusion-proof/v1",
            ),
            ({"leaf_index": "4"}, "leaf_index: not an integer"),
            ({"tree_size": True}, "tree_size: not an integer"),
            ({"hashes": "ab"}, "hashes: not a list"),
            ({"hashes": ["zz"]}, "hashes: 'zz' is not hex"),
            ({"root": 7}, "root: 7 is not a hex string"),
            ({"event": "not base64!"}, "event: not base64"),
            ({"leaf_index": 9}, "leaf index 9 is not in a tree of size 6"),
            ({"root": "00"}, "a hash is 32 bytes, not 1"),
        ],
    )
    def test_fails_for_a_malformed_file(
        self,
        proof_file: Path,
        capsys: pytest.CaptureFixture[str],
        changes: dict[str, object],
        expected: str,
    ) -> None:
        self.rewrite(proof_file, **changes)
        code, output = run(capsys, "audit", "check-proof", str(proof_file))
        assert (code, output.startswith(f"proof does not hold: {expected}")) == (1, True), output

    def test_fails_for_a_file_that_is_not_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "proof.json").write_text("{")
        code, output = run(capsys, "audit", "check-proof", str(tmp_path / "proof.json"))
        assert (code, output.startswith("proof does not hold: the file is not JSON")) == (1, True)

    @pytest.mark.parametrize(
        ("root", "expected"), [("xyz", "--root: is not hex"), ("00" * 31, "--root: is 31 bytes")]
    )
    def test_fails_in_one_line_for_a_malformed_root(
        self, proof_file: Path, capsys: pytest.CaptureFixture[str], root: str, expected: str
    ) -> None:
        code, output = run(capsys, "audit", "check-proof", str(proof_file), "--root", root)
        assert (code, output.startswith(f"alpr: error: {expected}")) == (2, True)

    def test_fails_in_one_line_for_a_missing_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, output = run(capsys, "audit", "check-proof", str(tmp_path / "none.json"))
        assert (code, output.startswith("alpr: error: FILE: cannot read")) == (2, True)


class TestSummary:
    def test_aud4_prints_the_document_and_writes_csv_and_json_pinned_to_a_checkpoint(
        self, site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        site.log.append("search.plate", actor=USER, agency=LAPD, purpose="homicide investigation")
        out_csv, out_json = tmp_path / "summary.csv", tmp_path / "summary.json"
        code, output = run(
            capsys, "audit", "summary", str(site.directory), "--since", "2026-01-01",
            "--until", "2027-01-01", "--csv", str(out_csv), "--json", str(out_json),
        )  # fmt: skip
        assert code == 0, output
        assert "  homicide investigation: 1" in output
        assert f"Computed at audit log size {EVENTS + 1}," in output
        assert out_csv.read_text().splitlines() == [
            "measure,key,count",
            "searches_by_purpose,homicide investigation,1",
        ]
        published = json.loads(out_json.read_text())
        assert published["checkpoint"].startswith(f"{log_origin('test.alpr', LAPD)}\n")
        # The checkpoint it was pinned to is one the node keeps, so audit verify checks it.
        code, output = run(capsys, "audit", "verify", str(site.directory))
        assert output.endswith("1 signed checkpoints and partners' cosignatures hold\n")

    def test_fails_in_one_line_for_a_bad_date(
        self, site: Site, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, output = run(
            capsys, "audit", "summary", str(site.directory), "--since", "soon", "--until", "x"
        )
        assert code == 2
        assert output.count("\n") == 1
        assert "--since" in output


class TestReports:
    def test_aud3_aud4_access_summary_and_review_sample_as_documents_and_csv(
        self, site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        for _ in range(3):
            site.log.append("search.plate", actor=USER, agency=LAPD, purpose="homicide")
        period = ("--since", "2026-01-01", "--until", "2027-01-01")
        code, output = run(capsys, "audit", "access", str(site.directory), *period,
                           "--csv", str(tmp_path / "access.csv"))  # fmt: skip
        assert code == 0, output
        assert f"{USER}: 3 searches (homicide: 3), 0 refused; 6 logins, 0 refused" in output
        assert (tmp_path / "access.csv").read_text().splitlines()[1].startswith(f"{USER},3,0,")
        code, output = run(capsys, "audit", "sample", str(site.directory), *period, "--size", "2",
                           "--seed", "s1")  # fmt: skip
        assert code == 0, output
        assert output.startswith("Random sample of 2 queries for review (AUD-3), seed s1:")
        assert run(capsys, "audit", "sample", str(site.directory), *period, "--size", "2",
                   "--seed", "s1") == (0, output)  # fmt: skip

    def test_aud4_training_report_lists_each_user_and_who_is_current(
        self, site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        users = UserDirectory(site.engine, clock=ManualClock())
        ready_user(users, "ortiz")
        users.create(name="ruiz", display_name="Ruiz", roles={Role.DATA_USER}, password=PASSWORD)
        code, output = run(capsys, "audit", "training", str(site.directory), "--year", "2026",
                           "--csv", str(tmp_path / "training.csv"))  # fmt: skip
        assert code == 0, output
        assert "1 of 2 users current" in output
        lines = (tmp_path / "training.csv").read_text().splitlines()
        assert [line.split(",")[0] for line in lines] == ["user", "ortiz", "ruiz"]
