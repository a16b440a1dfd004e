"""Reads in, hits out, reads searched: cameras, patrol clients, investigators, real node.

HOT-1 (matched as committed, and recent reads searched for entries added since),
HOT-3 (every stream, resume by cursor), HOT-4 (dispositions), HOT-5 (cancellations),
CAP-5 (partial plates), ACC-1 (patrol cannot change data); a read sent again under its id
is answered as the first time and raises no hit twice; SubmitReads' bounds and per-camera
rate limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from alpr.admin.v1 import admin_service_pb2_grpc, hotlists_pb2
from alpr.capture.v1 import capture_service_pb2 as capture_pb
from alpr.capture.v1 import capture_service_pb2_grpc as capture_grpc
from alpr.patrol.v1 import patrol_service_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc
from alpr.search.v1 import search_service_pb2 as search_pb
from alpr.search.v1 import search_service_pb2_grpc as search_grpc
from node.hotlists.entry import HotlistEntry, ListType
from node.identity import PrincipalKind
from node.profile import builtin_profiles, load_profile
from node.reads import MAX_CALL_IMAGE_BYTES, MAX_VEHICLE_IMAGE, ImageStore
from tests.support.bombs import png_bomb, small_png
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import LAPD, Federation
from tests.support.streams import TIMEOUT, Stream

STOLEN = HotlistEntry(
    plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="armed", contact="LAPD Auto"
)
AMBER = HotlistEntry(plate="8XY?4*", list_type=ListType.AMBER_ALERT, reason="AMBER 26-3")
PURPOSE = load_profile(builtin_profiles()["lapd"]).access.purposes[0]


@dataclass
class Site:
    """A node with the list `stolen`, a camera, and a way to open patrol streams."""

    node: RunningNode
    federation: Federation
    camera: capture_grpc.CaptureServiceStub
    patrol: pb_grpc.PatrolServiceStub
    stack: ExitStack

    def read(
        self, *plates: str, at: datetime = START, ids: Sequence[str] = ()
    ) -> capture_pb.SubmitReadsResponse:
        stamp = Timestamp()
        stamp.FromDatetime(at)
        named = [*ids, *[""] * (len(plates) - len(ids))]  # no id for the rest
        reads = [
            capture_pb.PlateRead(
                plate=p, confidence=0.9, captured_at=stamp, latitude=34.05, camera_read_id=id_
            )
            for p, id_ in zip(plates, named, strict=True)
        ]
        request = capture_pb.SubmitReadsRequest(camera_id="cam-7", reads=reads)
        return self.camera.SubmitReads(request, timeout=TIMEOUT)

    def stream(self, after: int = 0, name: str = "car-1") -> Stream:
        channel = self.stack.enter_context(
            self.node.channel(self.federation.client(LAPD, PrincipalKind.DEVICE, name))
        )
        stub = pb_grpc.PatrolServiceStub(channel)
        stream = Stream(stub.StreamHits(pb.StreamHitsRequest(after_cursor=after), timeout=60))
        self.stack.callback(stream.close)  # before its channel closes: the stack unwinds LIFO
        return stream

    def admin(self) -> admin_service_pb2_grpc.AdminServiceStub:
        channel = self.stack.enter_context(self.node.channel(self.federation.client(LAPD)))
        return admin_service_pb2_grpc.AdminServiceStub(channel)


@pytest.fixture
def site(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[Site]:
    config = replace(
        make_node(federation, tmp_path / "lapd", LAPD, store_url=database_url),
        heartbeat_seconds=0.2,
    )
    with ExitStack() as stack:
        node = stack.enter_context(serving(config, clock=clock))
        node.services.hotlists.create_list("stolen")
        node.services.hotlists.add("stolen", [STOLEN, AMBER])
        channel = stack.enter_context(
            node.channel(federation.client(LAPD, PrincipalKind.DEVICE, "cam-7"))
        )
        yield Site(
            node, federation, capture_grpc.CaptureServiceStub(channel),
            pb_grpc.PatrolServiceStub(channel), stack,
        )  # fmt: skip


@contextmanager
def streams(site: Site, count: int, after: int) -> Iterator[list[Stream]]:
    opened = [site.stream(after, f"car-{n}") for n in range(count)]
    try:
        yield opened
    finally:
        for stream in opened:
            stream.close()


class TestReads:
    def test_cap1_a_cameras_read_is_stored_with_its_images_by_content_hash(
        self, site: Site
    ) -> None:
        stamp = Timestamp()
        stamp.FromDatetime(START)
        crop, photo = small_png(b"crop of 7ABC125"), small_png(b"car of 7ABC125")
        read = capture_pb.PlateRead(
            plate="7abc 125", confidence=0.8, captured_at=stamp, latitude=34.05,
            longitude=-118.24, plate_image=crop, vehicle_image=photo,
        )  # fmt: skip
        (read_id,) = site.camera.SubmitReads(
            capture_pb.SubmitReadsRequest(camera_id="cam-7", reads=[read]), timeout=TIMEOUT
        ).read_ids
        (record,) = site.node.stored_reads()
        assert (record.id, record.plate, record.camera_id) == (read_id, "7ABC125", "cam-7")
        assert (record.latitude, record.longitude) == (34.05, -118.24)
        assert record.box_x0 is None  # the camera found the plate: no box of ours
        images = ImageStore(site.node.config.images)
        assert images.get(record.plate_image_sha256) == crop
        assert images.get(record.vehicle_image_sha256) == photo
        assert record.plate_image_sha256 == hashlib.sha256(crop).hexdigest()

    def test_hot1_a_read_is_matched_as_it_is_committed(self, site: Site) -> None:
        answer = site.read("7ABC123", "6TRK999")
        assert (len(answer.read_ids), answer.hit_count) == (2, 1)
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        hit = event.message
        assert (hit.plate, hit.listed, hit.list_name, hit.issuer_ori) == (
            "7ABC123", "7ABC123", "stolen", LAPD,
        )  # fmt: skip
        assert (hit.kind, hit.reason, hit.contact, hit.camera_id) == (
            pb.MATCH_KIND_EXACT, "armed", "LAPD Auto", "cam-7",
        )  # fmt: skip
        assert hit.seen_at.ToDatetime().replace(tzinfo=START.tzinfo) == START

    def test_cap5_partial_and_confusable_reads_are_lower_confidence_hits(self, site: Site) -> None:
        assert site.read("7A8C123", "8XY947").hit_count == 2
        confusable, partial = (e.message for e in site.node.services.hits.after(0))
        assert isinstance(confusable, pb.Hit)
        assert isinstance(partial, pb.Hit)
        assert (confusable.kind, list(confusable.differences)) == (
            pb.MATCH_KIND_CONFUSABLE, ["3: read 8, listed B"],
        )  # fmt: skip
        assert (partial.kind, partial.listed) == (pb.MATCH_KIND_PARTIAL, "8XY?4*")
        assert max(confusable.confidence, partial.confidence) < 1.0

    @pytest.mark.parametrize(
        ("camera", "plates", "field"),
        [
            ("", ["7ABC123"], "camera_id"),
            ("cam-7", [], "reads"),
            ("cam-7", ["7ABC123", "TOO-LONG-PLATE"], "reads[1].plate"),
            ("cam-7", ["7AB?123"], "reads[0].plate"),
        ],
    )
    def test_fails_naming_the_field_and_stores_nothing(
        self, site: Site, camera: str, plates: list[str], field: str
    ) -> None:
        stamp = Timestamp()
        stamp.FromDatetime(START)
        reads = [capture_pb.PlateRead(plate=p, confidence=0.5, captured_at=stamp) for p in plates]
        with pytest.raises(grpc.RpcError) as raised:
            site.camera.SubmitReads(
                capture_pb.SubmitReadsRequest(camera_id=camera, reads=reads), timeout=TIMEOUT
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in (raised.value.details() or "")
        assert site.node.services.hits.after(0) == []
        assert site.node.stored_reads() == []


class TestReadRepeats:
    def test_a_read_sent_again_is_answered_as_before_and_raises_no_new_hit(
        self, site: Site
    ) -> None:
        """Its acknowledgement lost, a camera sends the call again (on both databases)."""
        first = site.read("7ABC123", "6TRK999", ids=["r-1", "r-2"])
        assert first.hit_count == 1
        again = site.read("7ABC123", "6TRK999", ids=["r-1", "r-2"])
        assert (list(again.read_ids), again.hit_count) == (list(first.read_ids), 1)
        assert len(site.node.services.hits.after(0)) == 1
        # A repeated read beside a new one: the new one alone is stored and matched.
        mixed = site.read("7ABC123", "7ABC123", ids=["r-1", "r-3"])
        assert mixed.read_ids[0] == first.read_ids[0]
        assert mixed.read_ids[1] not in first.read_ids
        assert mixed.hit_count == 2  # the first read's hit, as answered then, and the new one's
        assert len(site.node.services.hits.after(0)) == 2

    def test_a_read_without_an_id_is_stored_each_time_it_is_sent(self, site: Site) -> None:
        first, again = site.read("7ABC123"), site.read("7ABC123")
        assert first.read_ids != again.read_ids
        assert len(site.node.services.hits.after(0)) == 2

    def test_fails_for_an_id_sent_before_with_another_read(self, site: Site) -> None:
        site.read("7ABC123", ids=["r-1"])
        with pytest.raises(grpc.RpcError) as raised:
            site.read("6TRK999", ids=["r-1"])
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "reads[0].camera_read_id: 'r-1' was sent before with something else" in (
            raised.value.details() or ""
        )
        assert len(site.node.services.hits.after(0)) == 1

    def test_ids_are_kept_a_day_then_forgotten(self, site: Site, clock: ManualClock) -> None:
        first = site.read("7ABC123", ids=["r-1"])
        clock.advance(timedelta(hours=23))
        assert site.node.services.reads.forget_keys() == 0
        assert site.read("7ABC123", ids=["r-1"]).read_ids == first.read_ids
        clock.advance(timedelta(hours=2))
        assert site.node.services.reads.forget_keys() == 1
        assert site.read("7ABC123", ids=["r-1"]).read_ids != first.read_ids  # a new read now


class TestReadLimits:
    @pytest.mark.parametrize(
        ("field", "image", "problem"),
        [
            ("plate_image", b"<html>crop</html>", "is not a JPEG or PNG image"),
            ("vehicle_image", png_bomb(10_000, 10_000), "pixels a frame"),
        ],
    )
    def test_fails_for_an_image_that_is_none_or_a_bomb_naming_it(
        self, site: Site, field: str, image: bytes, problem: str
    ) -> None:
        """Kept, shown to investigators, sent to partners: a read's images must be images."""
        stamp = Timestamp()
        stamp.FromDatetime(START)
        good = capture_pb.PlateRead(plate="7ABC123", confidence=0.9, captured_at=stamp)
        bad = capture_pb.PlateRead(plate="7ABC124", confidence=0.9, captured_at=stamp)
        setattr(bad, field, image)
        with pytest.raises(grpc.RpcError) as raised:
            site.camera.SubmitReads(
                capture_pb.SubmitReadsRequest(camera_id="cam-7", reads=[good, bad]),
                timeout=TIMEOUT,
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = raised.value.details() or ""
        assert f"reads[1].{field}: " in details
        assert problem in details
        assert site.node.stored_reads() == []

    @pytest.mark.parametrize(
        ("taken", "problem"),
        [
            (None, "is required"),
            (datetime(1970, 1, 1, tzinfo=UTC), "is before 2000"),  # a clock never set
            (START + timedelta(hours=1, seconds=1), "is over an hour past the node's clock"),
            (2**62, "is not a valid time"),  # seconds past any datetime
        ],
        ids=["none", "1970", "ahead", "invalid"],
    )
    def test_fails_for_a_read_without_a_believable_time_naming_it(
        self, site: Site, taken: datetime | int | None, problem: str
    ) -> None:
        """CAP-1's date and time: never stored as 1970, nor after retention could purge it."""
        good = capture_pb.PlateRead(plate="7ABC123", confidence=0.9)
        good.captured_at.FromDatetime(START + timedelta(hours=1))  # an hour ahead is allowed
        bad = capture_pb.PlateRead(plate="7ABC124", confidence=0.9)
        if isinstance(taken, datetime):
            bad.captured_at.FromDatetime(taken)
        elif taken is not None:
            bad.captured_at.seconds = taken
        with pytest.raises(grpc.RpcError) as raised:
            site.camera.SubmitReads(
                capture_pb.SubmitReadsRequest(camera_id="cam-7", reads=[good, bad]),
                timeout=TIMEOUT,
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert f"reads[1].captured_at: {problem}" in (raised.value.details() or "")
        assert site.node.stored_reads() == []

    def test_fails_for_more_images_than_a_call_holds_naming_the_bound(self, site: Site) -> None:
        stamp = Timestamp()
        stamp.FromDatetime(START)
        reads = [
            capture_pb.PlateRead(
                plate="7ABC123",
                confidence=0.9,
                captured_at=stamp,
                vehicle_image=small_png(size=size),
            )
            for size in (MAX_VEHICLE_IMAGE, 100)
        ]
        with pytest.raises(grpc.RpcError) as raised:
            site.camera.SubmitReads(
                capture_pb.SubmitReadsRequest(camera_id="cam-7", reads=reads), timeout=TIMEOUT
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert f"at most {MAX_CALL_IMAGE_BYTES} in one call" in (raised.value.details() or "")
        assert site.node.services.read_limit.cameras() == 0  # refused before it was counted
        assert site.node.services.hits.after(0) == []

    def test_fails_for_a_camera_past_its_rate_until_time_passes(
        self, site: Site, clock: ManualClock
    ) -> None:
        """20 reads a second in bursts of 100 (the default): the 101st waits 1/20 s."""
        site.read(*["6TRK999"] * 100)
        with pytest.raises(grpc.RpcError) as raised:
            site.read("7ABC123")
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "'cam-7' sent more than 20 reads a second" in (raised.value.details() or "")
        status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert info.reason == "RATE_LIMITED"
        assert (info.metadata["readsPerSecond"], info.metadata["retryAfterSeconds"]) == (
            "20",
            "0.050",
        )
        assert site.node.services.hits.after(0) == []  # nothing of it was taken
        clock.advance(timedelta(seconds=0.05))
        assert site.read("7ABC123").hit_count == 1


class TestStreams:
    def test_hot3_every_stream_receives_each_hit(self, site: Site) -> None:
        site.read("7ABC123")
        with streams(site, 3, after=1) as opened:
            site.read("7ABC123", "8XY947")
            for stream in opened:
                received = stream.events(2)
                assert [m.cursor for m in received] == [2, 3]
                assert [m.hit.listed for m in received] == ["7ABC123", "8XY?4*"]

    def test_hot3_a_client_that_reconnects_misses_nothing_and_gets_nothing_twice(
        self, site: Site
    ) -> None:
        site.read("7ABC123")
        first = site.stream(after=1)
        site.read(*["7ABC123"] * 4)
        seen = [m.cursor for m in first.events(2)]
        first.close()  # the car drops out mid-burst
        site.read(*["8XY947"] * 5)
        again = site.stream(after=seen[-1])
        seen += [m.cursor for m in again.events(7)]
        again.close()
        assert seen == list(range(2, 11))

    def test_hot3_a_client_with_no_cursor_starts_from_now_and_hears_heartbeats(
        self, site: Site
    ) -> None:
        site.read("7ABC123")
        stream = site.stream(after=0)
        heartbeat = stream.next(skip_heartbeats=False)
        assert heartbeat.HasField("heartbeat")
        assert heartbeat.cursor == 1
        site.read("7ABC123")
        assert stream.next().cursor == 2
        stream.close()

    def test_fails_for_a_cursor_past_the_last_event(self, site: Site) -> None:
        stream = site.stream(after=99)
        with pytest.raises(AssertionError, match="ended"):
            stream.next()
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(site.patrol.StreamHits(pb.StreamHitsRequest(after_cursor=99))))
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


class TestDispositionsAndCancellations:
    def test_hot4_a_disposition_is_recorded_and_reaches_every_stream(self, site: Site) -> None:
        site.read("7ABC123")
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        with streams(site, 2, after=1) as opened:
            answer = site.patrol.RecordDisposition(
                pb.RecordDispositionRequest(
                    hit_id=event.message.hit_id,
                    disposition=pb.DISPOSITION_CONFIRMED_WITH_STATE_SYSTEM,
                    note="CLETS confirms stolen",
                ),
                timeout=TIMEOUT,
            )
            for stream in opened:
                message = stream.next()
                assert message.cursor == answer.cursor == 2
                assert message.disposition.recorded_by.endswith("/device/cam-7")
        hit = site.node.services.hits.hit(event.message.hit_id)
        assert hit.disposition == "DISPOSITION_CONFIRMED_WITH_STATE_SYSTEM"

    @pytest.mark.parametrize(
        ("hit_id", "disposition", "code"),
        [
            ("", pb.DISPOSITION_MISREAD, grpc.StatusCode.INVALID_ARGUMENT),
            ("HIT", pb.DISPOSITION_UNSPECIFIED, grpc.StatusCode.INVALID_ARGUMENT),
            ("no-such-hit", pb.DISPOSITION_MISREAD, grpc.StatusCode.NOT_FOUND),
        ],
    )
    def test_fails_for_a_bad_disposition(
        self,
        site: Site,
        hit_id: str,
        disposition: pb.Disposition.ValueType,
        code: grpc.StatusCode,
    ) -> None:
        site.read("7ABC123")
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        request = pb.RecordDispositionRequest(
            hit_id=event.message.hit_id if hit_id == "HIT" else hit_id, disposition=disposition
        )
        with pytest.raises(grpc.RpcError) as raised:
            site.patrol.RecordDisposition(request, timeout=TIMEOUT)
        assert raised.value.code() is code

    def test_hot5_a_cancellation_reaches_every_stream_and_the_entry_stops_matching(
        self, site: Site
    ) -> None:
        site.read("7ABC123")
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        admin = site.admin()
        with streams(site, 3, after=1) as opened:
            admin.CancelHotlistEntry(
                hotlists_pb2.CancelHotlistEntryRequest(
                    entry_id=event.message.entry_id, reason="entered in error"
                ),
                timeout=TIMEOUT,
            )
            for stream in opened:
                cancellation = stream.next().cancellation
                assert (cancellation.entry_id, list(cancellation.hit_ids)) == (
                    event.message.entry_id, [event.message.hit_id],
                )  # fmt: skip
        assert site.read("7ABC123").hit_count == 0

    @pytest.mark.parametrize("how", ["removed", "gone from a reissued extract"])
    def test_hot5_an_entry_taken_off_its_list_is_cancelled_to_every_stream(
        self, site: Site, how: str
    ) -> None:
        """A unit on its way to a stop learns the record is gone; an entry with no hit, nothing."""
        site.read("7ABC123")
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        admin = site.admin()
        with streams(site, 2, after=1) as opened:
            if how == "removed":
                admin.RemoveHotlistEntry(
                    hotlists_pb2.RemoveHotlistEntryRequest(entry_id=event.message.entry_id),
                    timeout=TIMEOUT,
                )
            else:  # the extract no longer lists 7ABC123 (nor the AMBER pattern, which hit nothing)
                admin.ImportHotlist(
                    hotlists_pb2.ImportHotlistRequest(
                        list_name="stolen",
                        format=hotlists_pb2.HOTLIST_FORMAT_CSV,
                        content=b"plate,list_type\n5KLM789,stolen_vehicle\n",
                        replace=True,
                    ),
                    timeout=TIMEOUT,
                )
            for stream in opened:
                cancellation = stream.next().cancellation
                assert (cancellation.entry_id, list(cancellation.hit_ids)) == (
                    event.message.entry_id, [event.message.hit_id],
                )  # fmt: skip
        assert [e.cursor for e in site.node.services.hits.after(1)] == [2]  # and nothing else
        assert site.read("7ABC123").hit_count == 0


class TestRetrospective:
    def test_hot1_an_added_entry_is_searched_for_in_the_recent_reads(
        self, site: Site, clock: ManualClock
    ) -> None:
        clock.advance(timedelta(hours=1))
        site.read("4LMN500", "4LMNS00", "9PQX771", "6TRK999")
        site.read("4LMN500", at=START - timedelta(hours=72, seconds=1))  # past the window
        stream = site.stream(after=0)
        stream.next(skip_heartbeats=False)  # subscribed
        site.admin().AddHotlistEntries(
            hotlists_pb2.AddHotlistEntriesRequest(
                list_name="stolen",
                entries=[
                    hotlists_pb2.HotlistEntry(plate="4LMN500", list_type="stolen", reason="GTA"),
                    hotlists_pb2.HotlistEntry(plate="9PQ?77*", list_type="amber"),
                ],
            ),
            timeout=TIMEOUT,
        )
        hits = sorted((m.hit for m in stream.events(3)), key=lambda hit: hit.plate)
        assert [(h.plate, h.listed, h.kind) for h in hits] == [
            ("4LMN500", "4LMN500", pb.MATCH_KIND_EXACT),
            ("4LMNS00", "4LMN500", pb.MATCH_KIND_CONFUSABLE),
            ("9PQX771", "9PQ?77*", pb.MATCH_KIND_PARTIAL),
        ]
        assert all(h.retrospective for h in hits)
        assert hits[0].seen_at.ToDatetime().replace(tzinfo=START.tzinfo) == START
        stored = [site.node.services.hits.hit(h.hit_id) for h in hits]
        assert all(record.retrospective for record in stored)
        site.read("4LMN500")
        live = stream.next().hit
        assert (live.plate, live.retrospective) == ("4LMN500", False)

    def test_hot1_an_imported_list_is_searched_for_too_and_a_read_is_hit_once(
        self, site: Site
    ) -> None:
        site.read("2CDE345")
        site.admin().ImportHotlist(
            hotlists_pb2.ImportHotlistRequest(
                list_name="stolen",
                format=hotlists_pb2.HOTLIST_FORMAT_CSV,
                content=b"plate,list_type\n2CD?345,bolo\n",
            ),
            timeout=TIMEOUT,
        )
        [event] = site.node.services.hits.after(0)
        assert isinstance(event.message, pb.Hit)
        assert (event.message.listed, event.message.retrospective) == ("2CD?345", True)
        services = site.node.services
        stolen = services.hotlists.entries("stolen", limit=10).entries
        assert services.reads.search_back(stolen) == []


class TestAccess:
    def test_acc1_a_patrol_device_cannot_change_hotlists(self, site: Site) -> None:
        channel = site.stack.enter_context(
            site.node.channel(site.federation.client(LAPD, PrincipalKind.DEVICE, "car-1"))
        )
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            admin.CreateHotlist(hotlists_pb2.CreateHotlistRequest(name="mine"), timeout=TIMEOUT)
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED

    def test_sec1_another_agencys_device_cannot_stream_our_hits(self, site: Site) -> None:
        channel = site.stack.enter_context(
            site.node.channel(site.federation.client("CA0190000", PrincipalKind.DEVICE, "car"))
        )
        stub = pb_grpc.PatrolServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(stub.StreamHits(pb.StreamHitsRequest(after_cursor=0), timeout=TIMEOUT)))
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED


class TestSearchService:
    def search(self, site: Site, name_kind: PrincipalKind, purpose: str = PURPOSE) -> list[str]:
        channel = site.stack.enter_context(
            site.node.channel(site.federation.client(LAPD, name_kind, "detective"))
        )
        request = search_pb.SearchReadsRequest(
            plate="7AB?123", purpose=purpose, case_number="26-00042"
        )
        request.since.FromDatetime(START)
        request.until.FromDatetime(START + timedelta(days=1))
        answer = search_grpc.SearchServiceStub(channel).SearchReads(request, timeout=TIMEOUT)
        return [read.plate for read in answer.reads]

    def test_cap5_a_user_finds_the_agencys_reads_by_a_partial_plate(self, site: Site) -> None:
        site.read("7ABC123", "7ABD123", "6TRK999")
        assert sorted(self.search(site, PrincipalKind.USER)) == ["7ABC123", "7ABD123"]

    def test_acc6_a_purpose_the_agency_does_not_authorize_is_refused(self, site: Site) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            self.search(site, PrincipalKind.USER, purpose="curiosity")
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED

    def test_acc1_a_patrol_device_cannot_search(self, site: Site) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            self.search(site, PrincipalKind.DEVICE)
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
