"""Operators run the whole agreement lifecycle with `alpr`, through their own nodes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, LASD, Federation


@pytest.fixture
def nodes(federation: Federation, tmp_path: Path) -> Iterator[dict[str, RunningNode]]:
    with ExitStack() as stack:
        yield {
            ori: stack.enter_context(serving(make_node(federation, tmp_path / ori, ori)))
            for ori in (LAPD, LASD)
        }


def public_key(operator: Operator) -> str:
    match = re.search(r"public key  ([0-9a-f]{64})", operator("admin", "info"))
    assert match is not None
    return match.group(1)


class TestAgreementLifecycleByCli:
    def test_succeeds_from_peering_to_revocation(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        lapd = Operator(nodes[LAPD], federation, capsys)
        lasd = Operator(nodes[LASD], federation, capsys)
        for us, them, ori in ((lapd, lasd, LASD), (lasd, lapd, LAPD)):
            out = us("peers", "add", "--ori", ori, "--name", f"Agency {ori}",
                     "--endpoint", nodes[ori].target, "--public-key", public_key(them))  # fmt: skip
            assert "key fingerprint" in out
        assert LASD in lapd("peers", "list")

        created = lapd("agreements", "create", "--partner", LASD,
                       "--starts", "2026-11-25", "--sunsets", "2027-05-25",
                       "--we-grant", "hotlists", "--they-grant", "hotlists",
                       "--they-grant", "queries",
                       "--purpose", "stolen vehicle recovery")  # fmt: skip
        agreement_id = created.split()[1]
        assert "draft" in created
        assert "1 of 2 signatures" in created
        assert "proposed" in lapd("agreements", "propose", agreement_id)
        accepted = lasd("agreements", "accept", agreement_id)
        assert "active" in accepted
        assert "2 of 2 signatures" in accepted
        assert "we grant: hotlists, queries" in accepted
        assert f"agreement {agreement_id}  active" in lapd("agreements", "list")

        sb34 = tmp_path / "sb34.csv"
        sb34.write_text(f"name,ori\nAgency {LASD},\n")
        assert "holds 1 agencies" in lapd("sb34", "import", str(sb34))
        refused = lapd("agreements", "renew", agreement_id, "--starts", "2027-05-25",
                       "--sunsets", "2028-05-25", "--reviewer", "Lt. Ortiz",
                       "--summary", "reviewed", expect=1)  # fmt: skip
        assert "FAILED_PRECONDITION" in refused
        assert "SB 34" in refused

        revoked = lasd("agreements", "revoke", agreement_id, "--reason", "policy review")
        assert "revoked" in revoked
        assert "not told" not in revoked
        assert "revoked by CA0190000: policy review" in lapd("agreements", "list")

    def test_succeeds_listing_what_an_operator_countersigns_and_whose_move_it_is(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        lapd = Operator(nodes[LAPD], federation, capsys)
        lasd = Operator(nodes[LASD], federation, capsys)
        for us, them, ori in ((lapd, lasd, LASD), (lasd, lapd, LAPD)):
            us("peers", "add", "--ori", ori, "--name", f"Agency {ori}",
               "--endpoint", nodes[ori].target, "--public-key", public_key(them))  # fmt: skip
        created = lapd("agreements", "create", "--partner", LASD,
                       "--starts", "2026-11-25", "--sunsets", "2027-05-25",
                       "--we-grant", "hotlists", "--purpose", "stolen vehicle recovery",
                       "--purpose", "AMBER alerts",
                       "--clause", "Hits are confirmed by phone before a stop.")  # fmt: skip
        agreement_id = created.split()[1]
        lapd("agreements", "propose", agreement_id)

        ours, theirs = lapd("agreements", "list"), lasd("agreements", "list")
        assert (
            f"{agreement_id}  proposed, awaiting the partner  with {LASD} (drafted by us)" in ours
        )
        assert (
            f"{agreement_id}  proposed, awaiting you  with {LAPD} (drafted by the partner)"
            in theirs
        )
        assert "    purposes: stolen vehicle recovery; AMBER alerts\n" in theirs
        assert theirs.endswith(
            "    clauses: the 3 SHR-2 requires, and:\n"
            "      - Hits are confirmed by phone before a stop.\n"
        )

        lasd("agreements", "accept", agreement_id)
        renewal = lapd("agreements", "renew", agreement_id, "--starts", "2027-05-25",
                       "--sunsets", "2028-05-25", "--reviewer", "Lt. Ortiz",
                       "--summary", "audit logs sampled, no misuse")  # fmt: skip
        assert f"    renews {agreement_id}\n" in renewal
        assert re.search(
            r"^    compliance review by Lt\. Ortiz, \d{4}-\d\d-\d\d \d\d:\d\d UTC: "
            r"audit logs sampled, no misuse$",
            lapd("agreements", "list"),
            re.M,
        )

    def test_fails_in_one_line_for_a_sunset_past_a_year(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        lapd = Operator(nodes[LAPD], federation, capsys)
        lasd = Operator(nodes[LASD], federation, capsys)
        lapd("peers", "add", "--ori", LASD, "--name", "LASD", "--endpoint", nodes[LASD].target,
             "--public-key", public_key(lasd))  # fmt: skip
        err = lapd("agreements", "create", "--partner", LASD, "--starts", "2026-11-25",
                   "--sunsets", "2027-11-26", "--we-grant", "hotlists", "--purpose", "x",
                   expect=1)  # fmt: skip
        assert err.count("\n") == 1
        assert "INVALID_ARGUMENT sunsets_at: must be at most one year after starts_at" in err

    @pytest.mark.parametrize("option", ["--starts", "--sunsets"])
    def test_fails_with_usage_for_a_time_past_the_calendar_in_utc(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        option: str,
    ) -> None:
        lapd = Operator(nodes[LAPD], federation, capsys)
        late = "9999-12-31T23:59:59-05:00"  # in the year 10000 in UTC
        times = {"--starts": "2026-11-25", "--sunsets": "2027-05-25", option: late}
        err = lapd("agreements", "create", "--partner", LASD, "--starts", times["--starts"],
                   "--sunsets", times["--sunsets"], "--purpose", "x", expect=2)  # fmt: skip
        assert err == f"alpr: error: {option}: {late!r} is outside years 1 to 9999 in UTC\n"


class TestSb34ImportByCli:
    @pytest.mark.parametrize(
        "header",
        ["name,ori", "name,ORI", "Name,ORI", " NAME , Ori ", "\ufeffname,ori"],
        ids=["lower", "upper-ori", "capitalized", "spaced", "excel-bom"],
    )
    def test_shr4_succeeds_listing_a_partner_by_its_ori_whatever_the_header_case(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        header: str,
    ) -> None:
        lapd = Operator(nodes[LAPD], federation, capsys)
        lasd = Operator(nodes[LASD], federation, capsys)
        lapd("peers", "add", "--ori", LASD, "--name", "LASD", "--endpoint", nodes[LASD].target,
             "--public-key", public_key(lasd))  # fmt: skip
        sb34 = tmp_path / "sb34.csv"
        sb34.write_text(f"{header}\nLos Angeles County Sheriff,{LASD.lower()}\n")
        assert "holds 1 agencies" in lapd("sb34", "import", str(sb34))
        services = nodes[LAPD].services
        listed = services.agreements.noncompliance_listing(services.peers.require(LASD))
        assert listed == "as Los Angeles County Sheriff, imported from sb34.csv"

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            (None, "cannot be read: No such file or directory"),
            (b"name,ori\nCity of \xe9\n", "is not UTF-8 text (invalid continuation byte)"),
            (b"agency,ori\nX,\n", "needs a header row with a 'name' column"),
            (b'name\n"' + b"x" * 200_000 + b'"\n', "line 2: field larger than field limit"),
        ],
        ids=["missing", "latin-1", "no-name-column", "not-csv"],
    )
    def test_fails_with_usage_in_one_line_for_a_file_it_cannot_use(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        content: bytes | None,
        problem: str,
    ) -> None:
        sb34 = tmp_path / "sb34.csv"
        if content is not None:
            sb34.write_bytes(content)
        err = Operator(nodes[LAPD], federation, capsys)("sb34", "import", str(sb34), expect=2)
        assert err.startswith(f"alpr: error: {sb34}: {problem}")
        assert err.count("\n") == 1

    def test_fails_with_usage_for_a_directory(
        self,
        nodes: dict[str, RunningNode],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        err = Operator(nodes[LAPD], federation, capsys)("sb34", "import", str(tmp_path), expect=2)
        assert err == f"alpr: error: {tmp_path}: cannot be read: Is a directory\n"
