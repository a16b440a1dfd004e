"""Searching the agency's own reads, on SQLite and PostgreSQL (ACC-6, ACC-7, CAP-5, AUD-1)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from node.audit import AuditLog
from node.errors import PermissionDeniedError, ValidationError
from node.profile import Role, builtin_profiles, load_profile
from node.search import ArchivedBasis, ReadQuery, ReadSearch, prefix_range
from node.store.capture_models import ReadRecord
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD

PROFILE = load_profile(builtin_profiles()["lapd"])
PURPOSE = PROFILE.access.purposes[0]
USER = f"spiffe://test.alpr/agency/{LAPD}/user/detective"
ADMIN = frozenset({Role.SYSTEM_ADMINISTRATOR})
PLATES = ["7ABC123", "7ABC123", "7ABD123", "8XY947", "8XY9400", "9ZZZ999"]


@pytest.fixture
def audit(engine: Engine, clock: ManualClock) -> AuditLog:
    return AuditLog(engine, clock=clock)


@pytest.fixture
def search(engine: Engine, audit: AuditLog) -> ReadSearch:
    with Session(engine) as session:
        for hour, plate in enumerate(PLATES):
            session.add(
                ReadRecord(
                    id=str(uuid.uuid4()),
                    plate=plate,
                    confidence=0.9,
                    camera_id="cam-1",
                    captured_at=START + timedelta(hours=hour),
                    committed_at=START,
                )
            )
        session.commit()
    return ReadSearch(engine, profile=PROFILE, audit=audit, ori=LAPD)


def query(plate: str, **changes: object) -> ReadQuery:
    fields: dict[str, object] = {
        "plate": plate,
        "since": START,
        "until": START + timedelta(days=1),
        "purpose": PURPOSE,
        "case_number": "26-00123",
    }
    return ReadQuery(**(fields | changes))  # type: ignore[arg-type]


def plates(search: ReadSearch, q: ReadQuery) -> list[str]:
    return [read.plate for read in search.search(q, user=USER, peer_ip="10.0.0.9").reads]


class TestSearch:
    def test_succeeds_for_a_whole_plate_newest_first(self, search: ReadSearch) -> None:
        page = search.search(query("7abc-123"), user=USER, peer_ip="10.0.0.9")
        assert [r.plate for r in page.reads] == ["7ABC123", "7ABC123"]
        assert page.reads[0].captured_at > page.reads[1].captured_at
        assert page.next_page_token == ""

    def test_cap5_finds_reads_by_a_partial_plate(self, search: ReadSearch) -> None:
        assert sorted(plates(search, query("7AB?123"))) == ["7ABC123", "7ABC123", "7ABD123"]
        assert plates(search, query("8XY9*")) == ["8XY9400", "8XY947"]
        assert plates(search, query("*99?")) == ["9ZZZ999"]

    def test_succeeds_a_page_at_a_time_and_only_within_the_window(self, search: ReadSearch) -> None:
        first = search.search(query("7AB*", page_size=2), user=USER, peer_ip="")
        second = search.search(
            query("7AB*", page_size=2, page_token=first.next_page_token), user=USER, peer_ip=""
        )
        assert [len(first.reads), len(second.reads), second.next_page_token] == [2, 1, ""]
        assert {r.id for r in first.reads}.isdisjoint(r.id for r in second.reads)
        late = query("7ABC123", since=START + timedelta(hours=1), until=START + timedelta(hours=2))
        assert plates(search, late) == ["7ABC123"]

    def test_aud1_every_query_records_who_when_where_what_and_why(
        self, search: ReadSearch, audit: AuditLog
    ) -> None:
        plates(search, query("7ABC123"))
        [event] = [e for e in audit.events() if e.kind == "search.plate"]
        assert (event.actor, event.agency, event.peer_ip) == (USER, LAPD, "10.0.0.9")
        assert (event.purpose, event.case_number) == (PURPOSE, "26-00123")
        details = json.loads(event.details)
        assert (details["plate"], details["results"]) == ("7ABC123", 2)

    @pytest.mark.parametrize(
        "purpose",
        ["curiosity", "Civil immigration enforcement", "commercial repossession"],
    )
    def test_acc6_acc7_a_purpose_not_authorized_is_refused_and_audited(
        self, search: ReadSearch, audit: AuditLog, purpose: str
    ) -> None:
        with pytest.raises(PermissionDeniedError):
            plates(search, query("7ABC123", purpose=purpose))
        [refused] = [e for e in audit.events() if e.kind == "search.refused"]
        assert refused.purpose == purpose
        assert not [e for e in audit.events() if e.kind == "search.plate"]

    def test_acc7_civil_immigration_only_under_a_recorded_judicial_warrant(
        self, search: ReadSearch, audit: AuditLog
    ) -> None:
        with pytest.raises(PermissionDeniedError):
            plates(search, query("7ABC123", purpose="Civil immigration enforcement"))
        with pytest.raises(PermissionDeniedError):
            plates(search, query("7ABC123", purpose="commercial", judicial_warrant="W-1"))
        found = plates(
            search,
            query("7ABC123", purpose="Civil immigration enforcement", judicial_warrant="W-7"),
        )
        assert len(found) == 2
        [event] = [e for e in audit.events() if e.kind == "search.plate"]
        assert json.loads(event.details)["judicial_warrant"] == "W-7"

    def test_fails_for_a_malformed_plate(self, search: ReadSearch) -> None:
        with pytest.raises(ValidationError) as raised:
            plates(search, query("7AB#123"))
        assert raised.value.field == "plate"

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"case_number": " "}, "case_number"),
            ({"purpose": ""}, "purpose"),
            ({"until": START}, "until"),
            ({"since": START.replace(tzinfo=None)}, "since"),
            ({"page_size": -1}, "page_size"),
            ({"page_token": "bm90IG91cnM="}, "page_token"),
        ],
    )
    def test_fails_naming_the_field(
        self, search: ReadSearch, changes: dict[str, object], field: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            plates(search, query("7ABC123", **changes))
        assert raised.value.field == field


class TestArchivedSearch:
    """RET-2 and RET-5: archived reads, for a system administrator on the profile's terms."""

    @pytest.fixture
    def archived(self, search: ReadSearch, engine: Engine) -> ReadSearch:
        with Session(engine) as session:
            for read in session.exec(select(ReadRecord).where(ReadRecord.plate == "7ABC123")):
                read.archived_at = START + timedelta(days=800)
                session.add(read)
            session.commit()
        return search

    def test_ret2_archived_reads_are_hidden_from_an_ordinary_search(
        self, archived: ReadSearch
    ) -> None:
        assert plates(archived, query("7ABC123")) == []
        assert plates(archived, query("7AB?123")) == ["7ABD123"]

    @pytest.mark.parametrize(
        "basis",
        [
            ArchivedBasis(offence="PC 667.5(c)", approved_by="Capt. Reyes, custodian"),
            ArchivedBasis(court_order="LASC 26-SW-1181", approved_by="Capt. Reyes, custodian"),
        ],
    )
    def test_ret5_a_system_administrator_finds_them_for_a_listed_offence_or_court_order(
        self, archived: ReadSearch, audit: AuditLog, basis: ArchivedBasis
    ) -> None:
        page = archived.search(query("7ABC123", archived=basis), user=USER, peer_ip="", roles=ADMIN)
        assert [r.plate for r in page.reads] == ["7ABC123", "7ABC123"]
        [event] = [e for e in audit.events() if e.kind == "search.plate"]
        assert json.loads(event.details)["archived"]["approved_by"] == "Capt. Reyes, custodian"

    @pytest.mark.parametrize(
        ("basis", "roles", "why"),
        [
            (ArchivedBasis(offence="PC 667.5(c)", approved_by="x"), frozenset(), "administrator"),
            (
                ArchivedBasis(offence="PC 667.5(c)", approved_by="x"),
                frozenset({Role.DATA_USER}),
                "administrator",
            ),
            (ArchivedBasis(offence="PC 484 (petty theft)", approved_by="x"), None, "offence"),
            (ArchivedBasis(offence="PC 667.5(c)"), None, "approval"),
        ],
    )
    def test_ret5_fails_without_the_role_the_basis_or_the_approval_and_is_audited(
        self,
        archived: ReadSearch,
        audit: AuditLog,
        basis: ArchivedBasis,
        roles: frozenset[Role] | None,
        why: str,
    ) -> None:
        with pytest.raises(PermissionDeniedError, match=why):
            archived.search(
                query("7ABC123", archived=basis),
                user=USER,
                peer_ip="",
                roles=ADMIN if roles is None else roles,
            )
        [refused] = [e for e in audit.events() if e.kind == "search.refused"]
        assert why in json.loads(refused.details)["reason"]


ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class TestPrefixRange:
    @given(st.text(ALNUM, min_size=1, max_size=4), st.text(ALNUM, min_size=1, max_size=8))
    @example("7AZ", "7B0000")
    @example("ZZ", "ZZZ")
    @example("79", "7A1")
    def test_cap5_the_range_holds_exactly_the_plates_with_the_prefix(
        self, prefix: str, plate: str
    ) -> None:
        low, high = prefix_range(prefix)
        inside = low <= plate and (high is None or plate < high)
        assert inside == plate.startswith(prefix)
