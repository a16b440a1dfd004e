"""Corrections of misreads (CAP-4) and security incidents (SEC-3) through AdminService."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from alpr.admin.v1 import admin_service_pb2_grpc, records_pb2
from alpr.search.v1 import search_service_pb2 as search_pb
from alpr.search.v1 import search_service_pb2_grpc as search_grpc
from node.profile import builtin_profiles, load_profile
from node.reads import NewRead
from node.store import create_engine
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation

TIMEOUT = 10
PURPOSE = load_profile(builtin_profiles()["lapd"]).access.purposes[0]


@pytest.fixture
def node(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[RunningNode]:
    config = make_node(federation, tmp_path / "lapd", LAPD, store_url=database_url)
    with serving(config, clock=clock) as running:
        yield running


@pytest.fixture
def admin(
    node: RunningNode, federation: Federation
) -> Iterator[admin_service_pb2_grpc.AdminServiceStub]:
    with node.channel(federation.client(LAPD)) as channel:
        yield admin_service_pb2_grpc.AdminServiceStub(channel)


class TestCorrections:
    def test_cap4_a_correction_stands_beside_the_read_which_is_never_altered(
        self, node: RunningNode, admin: admin_service_pb2_grpc.AdminServiceStub,
        federation: Federation,
    ) -> None:  # fmt: skip
        [read_id] = node.services.reads.commit(
            "cam-1", [NewRead(plate="7ABC128", confidence=0.61, captured_at=START)]
        ).read_ids
        admin.CorrectRead(
            records_pb2.CorrectReadRequest(read_id=read_id, plate="7ABC123", reason="crop checked"),
            timeout=TIMEOUT,
        )
        request = search_pb.SearchReadsRequest(plate="7ABC128", purpose=PURPOSE, case_number="26-1")
        request.since.FromDatetime(START - timedelta(hours=1))
        request.until.FromDatetime(START + timedelta(hours=1))
        with node.channel(federation.client(LAPD, name="detective")) as channel:
            [read] = search_grpc.SearchServiceStub(channel).SearchReads(request).reads
        assert read.plate == "7ABC128"  # as the camera read it
        [correction] = read.corrections
        assert (correction.plate, correction.reason) == ("7ABC123", "crop checked")
        assert correction.corrected_by.endswith("/user/operator")
        engine = create_engine(node.config.store_url)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT plate FROM plate_read")).scalar_one()
        engine.dispose()
        assert stored == "7ABC128"
        [event] = [e for e in node.services.audit.events() if e.kind == "read.corrected"]
        assert event.actor.endswith("/user/operator")

    @pytest.mark.parametrize(
        ("read_id", "plate", "reason", "code"),
        [
            ("READ", "7ABC123", "", grpc.StatusCode.INVALID_ARGUMENT),
            ("READ", "7AB?123", "x", grpc.StatusCode.INVALID_ARGUMENT),
            ("READ", "7ABC128", "x", grpc.StatusCode.INVALID_ARGUMENT),
            ("no-such-read", "7ABC123", "x", grpc.StatusCode.NOT_FOUND),
        ],
    )
    def test_fails_for_a_bad_correction(
        self, node: RunningNode, admin: admin_service_pb2_grpc.AdminServiceStub,
        read_id: str, plate: str, reason: str, code: grpc.StatusCode,
    ) -> None:  # fmt: skip
        [stored] = node.services.reads.commit(
            "cam-1", [NewRead(plate="7ABC128", confidence=0.61, captured_at=START)]
        ).read_ids
        request = records_pb2.CorrectReadRequest(
            read_id=stored if read_id == "READ" else read_id, plate=plate, reason=reason
        )
        with pytest.raises(grpc.RpcError) as raised:
            admin.CorrectRead(request, timeout=TIMEOUT)
        assert raised.value.code() is code


class TestIncidents:
    @pytest.mark.parametrize(("persons", "form"), [(499, False), (500, True)])
    def test_sec3_a_breach_is_recorded_and_500_persons_mark_it_for_the_ag_form(
        self, node: RunningNode, admin: admin_service_pb2_grpc.AdminServiceStub,
        persons: int, form: bool,
    ) -> None:  # fmt: skip
        incident = records_pb2.Incident(
            description="a laptop with an export was stolen",
            affected_records=1200,
            affected_persons=persons,
        )
        incident.discover_time.FromDatetime(START)
        recorded = admin.RecordIncident(
            records_pb2.RecordIncidentRequest(incident=incident), timeout=TIMEOUT
        ).incident
        assert (recorded.affected_records, recorded.attorney_general_form) == (1200, form)
        [listed] = admin.ListIncidents(
            records_pb2.ListIncidentsRequest(), timeout=TIMEOUT
        ).incidents
        assert listed.incident_id == recorded.incident_id
        assert [e.kind for e in node.services.audit.events()][-1] == "incident.recorded"

    @pytest.mark.parametrize(
        ("description", "persons", "discovered", "field"),
        [
            (" ", 1, START, "description"),
            ("x", -1, START, "affected_persons"),
            ("x", 1, None, "discover_time"),
            ("x", 1, 10**12, "discover_time"),  # seconds past the year 9999
        ],
        ids=["no description", "negative count", "no time", "time out of range"],
    )
    def test_fails_without_a_description_or_time_or_with_negative_counts(
        self,
        admin: admin_service_pb2_grpc.AdminServiceStub,
        description: str,
        persons: int,
        discovered: datetime | int | None,
        field: str,
    ) -> None:
        incident = records_pb2.Incident(description=description, affected_persons=persons)
        if isinstance(discovered, datetime):
            incident.discover_time.FromDatetime(discovered)
        elif discovered is not None:
            incident.discover_time.seconds = discovered
        with pytest.raises(grpc.RpcError) as raised:
            admin.RecordIncident(
                records_pb2.RecordIncidentRequest(incident=incident), timeout=TIMEOUT
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in str(raised.value.details())
