"""Operators keep their agency's hotlists through AdminService on a real node, over mTLS."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlmodel import Session, col, select

from alpr.admin.v1 import admin_service_pb2_grpc
from alpr.admin.v1 import hotlists_pb2 as pb
from gateway.servicers import admin_hotlists
from gateway.servicers.times import timestamp
from node.hotlists.entry import FORBIDDEN_REASON
from node.identity import PrincipalKind
from node.store import create_engine
from node.store.models import AuditEvent
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation

TIMEOUT = 10
DATA = Path(__file__).parent.parent / "data" / "hotlists"
OPERATOR = f"spiffe://test.alpr/agency/{LAPD}/user/operator"
CSV, NCIC, CLEW = pb.HOTLIST_FORMAT_CSV, pb.HOTLIST_FORMAT_NCIC, pb.HOTLIST_FORMAT_CLEW
MIB = 1024 * 1024
EXTRACT_A = (DATA / "sample_ncic.txt").read_bytes()


@dataclass
class Operator:
    """LAPD's operator, calling LAPD's node."""

    node: RunningNode
    admin: admin_service_pb2_grpc.AdminServiceStub

    def create(self, name: str = "stolen") -> pb.Hotlist:
        request = pb.CreateHotlistRequest(name=name, description=f"{name} vehicles")
        return self.admin.CreateHotlist(request, timeout=TIMEOUT).hotlist

    def add(self, list_name: str, *entries: pb.HotlistEntry) -> list[pb.HotlistEntry]:
        request = pb.AddHotlistEntriesRequest(list_name=list_name, entries=entries)
        return list(self.admin.AddHotlistEntries(request, timeout=TIMEOUT).entries)

    def entries(self, list_name: str = "", page_size: int = 0) -> list[list[pb.HotlistEntry]]:
        """Every page of ListHotlistEntries."""
        pages, token = [], ""
        while True:
            request = pb.ListHotlistEntriesRequest(
                list_name=list_name, page_size=page_size, page_token=token
            )
            answer = self.admin.ListHotlistEntries(request, timeout=TIMEOUT)
            pages.append(list(answer.entries))
            token = answer.next_page_token
            if not token:
                return pages

    def import_file(self, list_name: str, **fields: Any) -> pb.ImportHotlistResponse:
        request = pb.ImportHotlistRequest(list_name=list_name, **fields)
        return self.admin.ImportHotlist(request, timeout=TIMEOUT)

    def audited(self, kind: str) -> list[AuditEvent]:
        engine = create_engine(self.node.config.store_url)
        with Session(engine) as session:
            query = select(AuditEvent).where(col(AuditEvent.kind) == kind)
            events = list(session.exec(query.order_by(col(AuditEvent.seq))).all())
        engine.dispose()
        return events

    def audited_details(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(event.details) for event in self.audited(kind)]


def entry(**changes: Any) -> pb.HotlistEntry:
    return pb.HotlistEntry(**{"plate": "7ABC123", "list_type": "stolen_vehicle", **changes})


def refused(method: Callable[..., object], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The error that calling `method` fails with."""
    with pytest.raises(grpc.RpcError) as raised:
        method(*args, **kwargs)
    return raised.value


def invalid_field(error: grpc.RpcError) -> str:
    """The field an INVALID_ARGUMENT names in its ErrorInfo."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return str(info.metadata["field"])


@pytest.fixture
def lapd(federation: Federation, tmp_path: Path, database_url: str) -> Iterator[Operator]:
    """LAPD's node (on each database engine) and its operator."""
    config = make_node(federation, tmp_path / "lapd", LAPD, store_url=database_url)
    with serving(config, clock=ManualClock()) as node, node.channel(federation.client()) as channel:
        yield Operator(node, admin_service_pb2_grpc.AdminServiceStub(channel))


class TestHotlists:
    def test_succeeds_creating_and_listing_with_counts_and_version(self, lapd: Operator) -> None:
        created = lapd.create("stolen")
        assert (created.name, created.description, created.active_entry_count) == (
            "stolen",
            "stolen vehicles",
            0,
        )
        lapd.create("amber")
        lapd.add("stolen", entry(), entry(plate="5KLM789"))
        listed = lapd.admin.ListHotlists(pb.ListHotlistsRequest(), timeout=TIMEOUT)
        assert [(h.name, h.active_entry_count) for h in listed.hotlists] == [
            ("amber", 0),
            ("stolen", 2),
        ]
        assert listed.version == 1
        assert lapd.audited_details("hotlist.created") == [
            {"description": "stolen vehicles", "list": "stolen"},
            {"description": "amber vehicles", "list": "amber"},
        ]
        assert lapd.audited("hotlist.created")[0].actor == OPERATOR

    def test_succeeds_paging_through_lists(self, lapd: Operator) -> None:
        for name in ("e", "d", "c", "b", "a"):
            lapd.create(name)
        names, token = [], ""
        for _ in range(3):
            request = pb.ListHotlistsRequest(page_size=2, page_token=token)
            answer = lapd.admin.ListHotlists(request, timeout=TIMEOUT)
            names.append([h.name for h in answer.hotlists])
            token = answer.next_page_token
        assert names == [["a", "b"], ["c", "d"], ["e"]]
        assert token == ""

    def test_fails_already_exists_for_a_taken_name(self, lapd: Operator) -> None:
        lapd.create("stolen")
        assert refused(lapd.create, "stolen").code() == grpc.StatusCode.ALREADY_EXISTS

    @pytest.mark.parametrize(
        ("request_fields", "field"),
        [
            pytest.param({"name": ""}, "name", id="no-name"),
            pytest.param({"name": " padded "}, "name", id="untrimmed-name"),
            pytest.param({"name": "x", "description": "d" * 501}, "description", id="long"),
            pytest.param({"name": "stolen\nfake row"}, "name", id="name-spanning-lines"),
            pytest.param({"name": "x", "description": "a\rb"}, "description", id="control"),
        ],
    )
    def test_fails_invalid_argument_naming_the_field(
        self, lapd: Operator, request_fields: dict[str, str], field: str
    ) -> None:
        request = pb.CreateHotlistRequest(**request_fields)
        error = refused(lapd.admin.CreateHotlist, request, timeout=TIMEOUT)
        assert invalid_field(error) == field


class TestAddHotlistEntries:
    def test_succeeds_normalizing_and_auditing_the_plates(self, lapd: Operator) -> None:
        lapd.create()
        sent = entry(plate="7abc-123", state="ca", ncic_number="v123456789", list_type="Stolen")
        [added] = lapd.add("stolen", sent)
        assert (added.plate, added.state, added.list_type, added.ncic_number) == (
            "7ABC123",
            "CA",
            "stolen_vehicle",
            "V123456789",
        )
        assert (added.list_name, added.version, added.partial) == ("stolen", 1, False)
        [audited] = lapd.audited_details("hotlist.entries_added")
        assert audited == {
            "entries": [{"entry_id": added.entry_id, "plate": "7ABC123"}],
            "list": "stolen",
            "version": 1,
        }

    def test_cap5_succeeds_adding_and_listing_a_partial_plate(self, lapd: Operator) -> None:
        lapd.create()
        [added] = lapd.add("stolen", entry(plate="7ab?12**", reason="witness saw"))
        [[listed]] = lapd.entries("stolen")
        assert (listed.entry_id, listed.plate, listed.partial, listed.reason) == (
            added.entry_id,
            "7AB?12*",
            True,
            "witness saw",
        )

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            pytest.param({"plate": "7AB#123"}, "plate", id="plate-with-a-symbol"),
            pytest.param({"plate": "?*1"}, "plate", id="partial-with-one-character"),
            pytest.param({"plate": ""}, "plate", id="no-plate"),
            pytest.param({"list_type": "parking"}, "list_type", id="unknown-list-type"),
            pytest.param({"list_type": ""}, "list_type", id="no-list-type"),
            pytest.param({"state": "ZZ"}, "state", id="unknown-state"),
            pytest.param({"ncic_number": "123"}, "ncic_number", id="malformed-ncic-number"),
            pytest.param({"reason": "x" * 501}, "reason", id="reason-too-long"),
            pytest.param({"contact": "a\nb"}, "contact", id="contact-spanning-lines"),
        ],
    )
    def test_fails_invalid_argument_naming_the_entry_and_field(
        self, lapd: Operator, changes: dict[str, str], field: str
    ) -> None:
        lapd.create()
        error = refused(lapd.add, "stolen", entry(), entry(**changes))
        assert invalid_field(error) == f"entries[1].{field}"
        assert lapd.entries() == [[]]

    @pytest.mark.parametrize("expires", [START - timedelta(days=1), START], ids=["past", "now"])
    def test_fails_invalid_argument_for_an_expiry_not_after_now(
        self, lapd: Operator, expires: datetime
    ) -> None:
        lapd.create()
        error = refused(lapd.add, "stolen", entry(), entry(expires_at=timestamp(expires)))
        assert invalid_field(error) == "entries[1].expires_at"
        assert "has passed" in str(error.details())
        assert lapd.entries() == [[]]

    @pytest.mark.parametrize("count", [0, 10_001])
    def test_fails_invalid_argument_outside_1_to_10000_entries(
        self, lapd: Operator, count: int
    ) -> None:
        lapd.create()
        assert invalid_field(refused(lapd.add, "stolen", *[entry()] * count)) == "entries"

    def test_fails_not_found_for_a_missing_list(self, lapd: Operator) -> None:
        assert refused(lapd.add, "nope", entry()).code() == grpc.StatusCode.NOT_FOUND

    @pytest.mark.parametrize("list_type", ["civil_immigration", "ICE", "Immigration Violator"])
    def test_acc7_refuses_civil_immigration_and_audits_the_refusal(
        self, lapd: Operator, list_type: str
    ) -> None:
        lapd.create()
        error = refused(lapd.add, "stolen", entry(), entry(plate="5IMM100", list_type=list_type))
        assert invalid_field(error) == "entries[1].list_type"
        assert FORBIDDEN_REASON in str(error.details())
        assert lapd.entries() == [[]]
        [audited] = lapd.audited("hotlist.refused")
        assert audited.actor == OPERATOR
        assert json.loads(audited.details) == {
            "entries": [{"index": 1, "plate": "5IMM100"}],
            "list": "stolen",
            "reason": FORBIDDEN_REASON,
        }

    def test_acc1_fails_permission_denied_for_a_patrol_device(
        self, lapd: Operator, federation: Federation
    ) -> None:
        lapd.create()
        device = federation.client(LAPD, PrincipalKind.DEVICE, "car-17")
        request = pb.AddHotlistEntriesRequest(list_name="stolen", entries=[entry()])
        with lapd.node.channel(device) as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            error = refused(admin.AddHotlistEntries, request, timeout=TIMEOUT)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


class TestListHotlistEntries:
    def test_succeeds_paging_oldest_first_on_one_list_or_all(self, lapd: Operator) -> None:
        lapd.create("stolen")
        lapd.create("amber")
        plates = ["1AAA111", "2BBB222", "3CCC333", "4DDD444", "5EEE555"]
        for plate in plates:
            lapd.add("stolen", entry(plate=plate))
        lapd.add("amber", entry(plate="9AMB000", list_type="amber_alert"))
        pages = lapd.entries("stolen", page_size=2)
        assert [[e.plate for e in page] for page in pages] == [plates[:2], plates[2:4], plates[4:]]
        [everything] = lapd.entries()
        assert [(e.list_name, e.plate) for e in everything][-2:] == [
            ("stolen", "5EEE555"),
            ("amber", "9AMB000"),
        ]

    @pytest.mark.parametrize(
        ("request_fields", "field"),
        [
            pytest.param({"page_size": -1}, "page_size", id="negative-page-size"),
            pytest.param({"page_token": "bm90IG91cnM="}, "page_token", id="foreign-token"),
            pytest.param({"page_token": "aG90bGlzdHM6Mg=="}, "page_token", id="lists-token"),
            # "hotlist-entries:500", as an offset was: a place is a chunk and a slot.
            pytest.param({"page_token": "aG90bGlzdC1lbnRyaWVzOjUwMA=="}, "page_token", id="offset"),
            # "hotlist-entries:1:-2"
            pytest.param({"page_token": "aG90bGlzdC1lbnRyaWVzOjE6LTI="}, "page_token", id="sign"),
            pytest.param({"page_token": "%%%"}, "page_token", id="not-base64"),
        ],
    )
    def test_fails_invalid_argument_naming_the_field(
        self, lapd: Operator, request_fields: dict[str, Any], field: str
    ) -> None:
        request = pb.ListHotlistEntriesRequest(**request_fields)
        error = refused(lapd.admin.ListHotlistEntries, request, timeout=TIMEOUT)
        assert invalid_field(error) == field

    def test_fails_not_found_for_a_missing_list(self, lapd: Operator) -> None:
        assert refused(lapd.entries, "nope").code() == grpc.StatusCode.NOT_FOUND


class TestEndingEntries:
    def test_succeeds_removing_an_entry_entered_by_mistake(self, lapd: Operator) -> None:
        lapd.create()
        [added] = lapd.add("stolen", entry())
        request = pb.RemoveHotlistEntryRequest(entry_id=added.entry_id)
        removed = lapd.admin.RemoveHotlistEntry(request, timeout=TIMEOUT).entry
        assert (removed.entry_id, removed.plate, removed.version) == (added.entry_id, "7ABC123", 2)
        assert lapd.entries() == [[]]
        assert lapd.audited_details("hotlist.entry_removed") == [
            {
                "entries": [{"entry_id": added.entry_id, "plate": "7ABC123"}],
                "list": "stolen",
                "version": 2,
            }
        ]

    def test_hot5_succeeds_cancelling_an_entry_with_its_reason_audited(
        self, lapd: Operator
    ) -> None:
        lapd.create()
        [added, kept] = lapd.add("stolen", entry(), entry(plate="5KLM789"))
        request = pb.CancelHotlistEntryRequest(
            entry_id=added.entry_id, reason="recovered 2026-11-24, NCIC record cleared"
        )
        cancelled = lapd.admin.CancelHotlistEntry(request, timeout=TIMEOUT).entry
        assert cancelled.version == 2
        assert [[e.entry_id for e in page] for page in lapd.entries()] == [[kept.entry_id]]
        listed = lapd.admin.ListHotlists(pb.ListHotlistsRequest(), timeout=TIMEOUT)
        assert (listed.version, listed.hotlists[0].active_entry_count) == (2, 1)
        [audited] = lapd.audited_details("hotlist.entry_cancelled")
        assert audited["reason"] == "recovered 2026-11-24, NCIC record cleared"
        assert audited["entries"] == [{"entry_id": added.entry_id, "plate": "7ABC123"}]

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
    def test_hot5_fails_invalid_argument_without_a_fit_reason(
        self, lapd: Operator, reason: str
    ) -> None:
        lapd.create()
        [added] = lapd.add("stolen", entry())
        request = pb.CancelHotlistEntryRequest(entry_id=added.entry_id, reason=reason)
        error = refused(lapd.admin.CancelHotlistEntry, request, timeout=TIMEOUT)
        assert invalid_field(error) == "reason"

    def test_fails_failed_precondition_for_an_entry_already_ended(self, lapd: Operator) -> None:
        lapd.create()
        [added] = lapd.add("stolen", entry())
        remove = pb.RemoveHotlistEntryRequest(entry_id=added.entry_id)
        lapd.admin.RemoveHotlistEntry(remove, timeout=TIMEOUT)
        cancel = pb.CancelHotlistEntryRequest(entry_id=added.entry_id, reason="in error")
        error = refused(lapd.admin.CancelHotlistEntry, cancel, timeout=TIMEOUT)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already removed" in str(error.details())

    def test_fails_not_found_for_an_unknown_entry(self, lapd: Operator) -> None:
        request = pb.RemoveHotlistEntryRequest(entry_id="no-such-entry")
        error = refused(lapd.admin.RemoveHotlistEntry, request, timeout=TIMEOUT)
        assert error.code() == grpc.StatusCode.NOT_FOUND


class TestImportHotlist:
    @pytest.mark.parametrize(
        ("fmt", "file", "list_type", "imported", "rejected_lines", "forbidden_line"),
        [
            pytest.param(CSV, "sample.csv", "", 10, [12, 13], 12, id="csv"),
            pytest.param(NCIC, "sample_ncic.txt", "", 9, [6, 10, 13], 6, id="ncic"),
            pytest.param(CLEW, "sample_clew.txt", "", 7, [9, 10, 11, 12, 13], 9, id="clew"),
            pytest.param(
                CLEW, "sample_clew.txt", "stolen_vehicle", 8, [9, 10, 11, 12], 9, id="clew-svs"
            ),
        ],
    )
    def test_acc7_succeeds_importing_a_sample_file_refusing_civil_immigration_lines(
        self,
        lapd: Operator,
        fmt: pb.HotlistFormat.ValueType,
        file: str,
        list_type: str,
        imported: int,
        rejected_lines: list[int],
        forbidden_line: int,
    ) -> None:
        lapd.create()
        content = (DATA / file).read_bytes()
        answer = lapd.import_file("stolen", format=fmt, content=content, list_type=list_type)
        assert (answer.imported, answer.version) == (imported, 1)
        assert [r.line for r in answer.rejected] == rejected_lines
        lines = content.decode().splitlines()
        for rejected in answer.rejected:
            assert (rejected.raw, bool(rejected.field)) == (lines[rejected.line - 1], True)
        [forbidden] = [r for r in answer.rejected if r.reason == FORBIDDEN_REASON]
        assert (forbidden.line, forbidden.field) == (forbidden_line, "list_type")
        [listed] = lapd.entries("stolen")
        assert len(listed) == imported
        assert "5IMM100" not in {e.plate for e in listed}
        [refused] = lapd.audited_details("hotlist.refused")
        assert refused["lines"] == [{"line": forbidden_line, "raw": forbidden.raw}]
        assert "5IMM100" in forbidden.raw
        [audited] = lapd.audited_details("hotlist.imported")
        assert (audited["format"], audited["rejected"]) == (
            pb.HotlistFormat.Name(fmt),
            len(rejected_lines),
        )
        assert [e["plate"] for e in audited["entries"]] == [e.plate for e in listed]

    def test_succeeds_counting_every_rejected_line_and_showing_the_first_cut_short(
        self, lapd: Operator
    ) -> None:
        lapd.create()
        long_line = "7ABC123," + "x" * 5000  # its reason quotes the list type whole
        lines = ["plate,list_type", "GOOD1,stolen", long_line]
        lines += [f"R{i:05d},nonsense" for i in range(150)]
        content = "\n".join(lines).encode()
        answer = lapd.import_file("stolen", format=CSV, content=content)
        assert (answer.imported, answer.rejected_count) == (1, 151)
        shown, width = admin_hotlists.MAX_REJECTED_SHOWN, admin_hotlists.MAX_SHOWN_CHARS
        assert [r.line for r in answer.rejected] == list(range(3, 3 + shown))
        first, second = answer.rejected[:2]
        assert first.raw == long_line[: width - 1] + "\N{HORIZONTAL ELLIPSIS}"
        assert len(first.reason) == width
        assert first.reason.endswith("\N{HORIZONTAL ELLIPSIS}")
        assert (second.raw, second.field) == ("R00000,nonsense", "list_type")
        assert lapd.audited_details("hotlist.imported")[0]["rejected"] == 151

    def test_cap5_succeeds_importing_a_partial_plate_from_csv(self, lapd: Operator) -> None:
        lapd.create()
        lapd.import_file("stolen", format=CSV, content=(DATA / "sample.csv").read_bytes())
        [listed] = lapd.entries("stolen")
        assert [e.plate for e in listed if e.partial] == ["7AB?12*"]

    def test_succeeds_reading_a_csv_through_a_column_mapping(self, lapd: Operator) -> None:
        lapd.create()
        answer = lapd.import_file(
            "stolen",
            format=CSV,
            content=b"Plate Number,Category,Notes\n7abc 123,Stolen,red sedan\n",
            column_mapping={"Plate Number": "plate", "category": "list_type", "Notes": "reason"},
        )
        assert (answer.imported, list(answer.rejected)) == (1, [])
        [[listed]] = lapd.entries()
        assert (listed.plate, listed.list_type, listed.reason) == (
            "7ABC123",
            "stolen_vehicle",
            "red sedan",
        )

    def test_succeeds_rejecting_a_line_whose_expiry_is_not_after_now(self, lapd: Operator) -> None:
        lapd.create()
        content = (
            "plate,list_type,expires_at\n"
            "7ABC123,stolen,2026-11-25T12:00:00Z\n"  # the node's clock: START
            "7ABC124,stolen,2026-11-25T12:00:01Z\n"
        )
        answer = lapd.import_file("stolen", format=CSV, content=content.encode())
        assert answer.imported == 1
        [rejected] = answer.rejected
        assert (rejected.line, rejected.field) == (2, "expires_at")
        assert "has passed" in rejected.reason
        [[listed]] = lapd.entries()
        assert listed.plate == "7ABC124"

    def test_succeeds_reporting_a_file_with_nothing_to_import(self, lapd: Operator) -> None:
        lapd.create()
        content = b"plate,list_type\n5IMM100,civil_immigration\n"
        answer = lapd.import_file("stolen", format=CSV, content=content)
        assert (answer.imported, answer.version, len(answer.rejected)) == (0, 0, 1)
        assert len(lapd.audited("hotlist.refused")) == 1

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            pytest.param({"list_name": ""}, "list_name", id="no-list-name"),
            pytest.param({"format": 0}, "format", id="unspecified-format"),
            pytest.param({"content": b""}, "content", id="no-content"),
            pytest.param({"content": b"plate,list_type\n\xff\n"}, "content", id="not-utf8"),
            pytest.param({"content": b"tag,kind\nA,B\n"}, "content", id="no-plate-column"),
            pytest.param(
                {"column_mapping": {"Tag": "vin"}}, "column_mapping", id="mapping-to-no-field"
            ),
            pytest.param(
                {"column_mapping": {"Tag": "reason"}}, "column_mapping", id="mapping-no-column"
            ),
            pytest.param(
                {"format": NCIC, "column_mapping": {"Tag": "plate"}},
                "column_mapping",
                id="mapping-for-ncic",
            ),
            pytest.param({"list_type": "stolen"}, "list_type", id="list-type-for-csv"),
            pytest.param({"format": CLEW, "list_type": "parking"}, "list_type", id="bad-type"),
        ],
    )
    def test_fails_invalid_argument_naming_the_field(
        self, lapd: Operator, fields: dict[str, Any], field: str
    ) -> None:
        lapd.create()
        defaults = {"list_name": "stolen", "format": CSV, "content": b"plate,list_type\n"}
        request = pb.ImportHotlistRequest(**{**defaults, **fields})
        error = refused(lapd.admin.ImportHotlist, request, timeout=TIMEOUT)
        assert invalid_field(error) == field

    def test_fails_invalid_argument_for_more_entries_than_one_batch(
        self, lapd: Operator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(admin_hotlists, "MAX_BATCH", 2)
        lapd.create()
        content = (DATA / "sample.csv").read_bytes()
        error = refused(lapd.import_file, "stolen", format=CSV, content=content)
        assert invalid_field(error) == "content"
        assert lapd.entries() == [[]]

    def test_fails_not_found_for_a_missing_list(self, lapd: Operator) -> None:
        content = (DATA / "sample_ncic.txt").read_bytes()
        error = refused(lapd.import_file, "nope", format=NCIC, content=content)
        assert error.code() == grpc.StatusCode.NOT_FOUND


def extract_b() -> bytes:
    """The sample NCIC extract reissued: 7ABC123 cleared, 5KLM789 repainted, 8NEW001 entered."""
    lines = (DATA / "sample_ncic.txt").read_text().splitlines(keepends=True)
    gone = [line for line in lines if "7ABC123" in line]
    changed = [line.replace("4D WHI", "4D BLK") if "5KLM789" in line else line for line in lines]
    new = "V423456789CA0194200202506028NEW001   CA      2022 TESL M3  4D RED\n"
    return "".join(line for line in changed if line not in gone).encode() + new.encode()


class TestReplaceHotlist:
    def test_hot5_succeeds_leaving_exactly_the_reissued_extracts_entries(
        self, lapd: Operator
    ) -> None:
        lapd.create()
        first = lapd.import_file("stolen", format=NCIC, content=EXTRACT_A, replace=True)
        assert (first.imported, first.kept, first.removed, first.version) == (9, 0, 0, 1)
        [before] = lapd.entries("stolen")
        answer = lapd.import_file("stolen", format=NCIC, content=extract_b(), replace=True)
        assert (answer.imported, answer.kept, answer.removed) == (2, 7, 2)
        assert (answer.version, answer.rejected_count) == (2, 3)
        [after] = lapd.entries("stolen")
        plates = sorted(e.plate for e in after)
        assert plates == sorted({e.plate for e in before} - {"7ABC123"} | {"8NEW001"})
        [repainted] = [e for e in after if e.plate == "5KLM789"]
        assert repainted.reason.endswith("BLK")
        unchanged = {e.plate: e.entry_id for e in before if e.plate not in ("7ABC123", "5KLM789")}
        assert {e.plate: e.entry_id for e in after if e.plate in unchanged} == unchanged
        audited = lapd.audited_details("hotlist.imported")[-1]
        assert (audited["replace"], audited["added"], audited["kept"], audited["removed"]) == (
            True,
            2,
            7,
            2,
        )
        assert sorted(e["plate"] for e in audited["removed_entries"]) == ["5KLM789", "7ABC123"]
        assert sorted(e["plate"] for e in audited["entries"]) == ["5KLM789", "8NEW001"]

    def test_succeeds_changing_nothing_for_the_same_extract_twice(self, lapd: Operator) -> None:
        """No change raises no version: partners find nothing new to pull."""
        lapd.create()
        lapd.import_file("stolen", format=NCIC, content=EXTRACT_A, replace=True)
        [before] = lapd.entries("stolen")
        again = lapd.import_file("stolen", format=NCIC, content=EXTRACT_A, replace=True)
        assert (again.imported, again.kept, again.removed, again.version) == (0, 9, 0, 1)
        assert lapd.entries("stolen") == [before]

    def test_acc7_succeeds_keeping_nothing_for_a_refused_line(self, lapd: Operator) -> None:
        """A forbidden line is refused and audited again, and keeps no entry it matched."""
        lapd.create()
        lapd.import_file("stolen", format=CSV, content=b"plate,list_type\n7ABC123,stolen\n")
        content = b"plate,list_type\n7ABC123,civil_immigration\n5KLM789,stolen\n"
        answer = lapd.import_file("stolen", format=CSV, content=content, replace=True)
        assert (answer.imported, answer.kept, answer.removed, answer.rejected_count) == (1, 0, 1, 1)
        assert [e.plate for e in lapd.entries("stolen")[0]] == ["5KLM789"]
        assert len(lapd.audited("hotlist.refused")) == 1

    def test_fails_invalid_argument_for_a_file_with_nothing_to_keep(self, lapd: Operator) -> None:
        """A wrong format or a truncated extract must not empty the list at once."""
        lapd.create()
        lapd.import_file("stolen", format=NCIC, content=EXTRACT_A)
        content = b"plate,list_type\n5IMM100,civil_immigration\n"
        error = refused(lapd.import_file, "stolen", format=CSV, content=content, replace=True)
        assert invalid_field(error) == "content"
        assert len(lapd.entries("stolen")[0]) == 9
        [*_, refusal] = lapd.audited_details("hotlist.refused")
        assert refusal["lines"] == [{"line": 2, "raw": "5IMM100,civil_immigration"}]

    def test_fails_not_found_naming_a_missing_list(self, lapd: Operator) -> None:
        error = refused(lapd.import_file, "nope", format=NCIC, content=EXTRACT_A, replace=True)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "'nope'" in str(error.details())


class TestImportSizeLimits:
    def import_content(self, node: RunningNode, federation: Federation, size: int) -> grpc.RpcError:
        request = pb.ImportHotlistRequest(list_name="stolen", format=CSV, content=b"x" * size)
        with node.channel(federation.client()) as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            return refused(admin.ImportHotlist, request, timeout=TIMEOUT)

    def test_fails_invalid_argument_above_4_mib_whatever_the_message_limit(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        config = make_node(federation, tmp_path / "lapd", LAPD)
        with serving(dataclasses.replace(config, max_message_bytes=8 * MIB)) as node:
            error = self.import_content(node, federation, 4 * MIB + 1)
        assert invalid_field(error) == "content"
        assert "at most 4194304 (4 MiB)" in str(error.details())

    def test_fails_resource_exhausted_above_the_message_limit(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        with serving(make_node(federation, tmp_path / "lapd", LAPD)) as node:
            error = self.import_content(node, federation, 5 * MIB)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
