"""The hit feed on SQLite and PostgreSQL: cursors, dispositions, cancellations (HOT-3…HOT-5)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from alpr.patrol.v1 import patrol_service_pb2 as pb
from node.ed25519 import DataKey
from node.errors import NotFoundError, ValidationError
from node.hits import FeedEventKind, HitFeed, NewHit, new_hit_id
from node.store.capture_models import ReadRecord
from node.store.engine import lock_for_write
from tests.support.clock import START, ManualClock

KEY = DataKey.generate()
REASON = "armed and dangerous"


@pytest.fixture
def feed(engine: Engine, clock: ManualClock) -> HitFeed:
    return HitFeed(engine, data_key=KEY, clock=clock)


def record(engine: Engine, feed: HitFeed, entry_id: str = "e1", count: int = 1) -> list[int]:
    """Commit a read and `count` hits on `entry_id`, as the read intake does."""
    read = ReadRecord(
        id=str(uuid.uuid4()), plate="7ABC123", confidence=0.9, captured_at=START,
        camera_id="cam-1", committed_at=START,
    )  # fmt: skip
    hits = [
        NewHit(
            read_id=read.id,
            list_id="own:stolen",
            issuer_ori="CA0194200",
            entry_id=entry_id,
            listed="7ABC123",
            kind="exact",
            confidence=1.0,
            retrospective=False,
            message=pb.Hit(hit_id=new_hit_id(), plate="7ABC123", reason=REASON),
        )
        for _ in range(count)
    ]
    with Session(engine) as session:
        lock_for_write(session)
        session.add(read)
        session.flush()
        cursors = feed.record_hits(session, hits)
        session.commit()
    return cursors


class TestFeed:
    def test_hot3_cursors_only_grow_with_no_gap_across_kinds(
        self, engine: Engine, feed: HitFeed
    ) -> None:
        assert feed.last_cursor() == 0
        first = record(engine, feed, count=2)
        [hit] = [e.message for e in feed.after(0, limit=1)]
        assert isinstance(hit, pb.Hit)
        disposition = feed.record_disposition(hit.hit_id, pb.DISPOSITION_MISREAD, "not it", "u")
        cancellation = feed.record_cancellation("e1", "stolen")
        assert [*first, disposition, cancellation] == [1, 2, 3, 4]
        assert feed.last_cursor() == 4
        events = feed.after(1)
        assert [(e.cursor, e.kind) for e in events] == [
            (2, FeedEventKind.HIT),
            (3, FeedEventKind.DISPOSITION),
            (4, FeedEventKind.CANCELLATION),
        ]
        assert feed.after(4) == []

    def test_hot2_event_bodies_are_encrypted_at_rest(self, engine: Engine, feed: HitFeed) -> None:
        record(engine, feed)
        with engine.connect() as connection:
            body = connection.execute(text("SELECT body FROM hit_event")).scalar_one()
        assert REASON.encode() not in bytes(body)
        [event] = feed.after(0)
        assert isinstance(event.message, pb.Hit)
        assert event.message.reason == REASON

    def test_hot4_a_disposition_settles_the_hit(
        self, engine: Engine, feed: HitFeed, clock: ManualClock
    ) -> None:
        record(engine, feed)
        [event] = feed.after(0)
        assert isinstance(event.message, pb.Hit)
        hit_id = event.message.hit_id
        assert feed.hit(hit_id).disposition == ""
        clock.advance(timedelta(minutes=3))
        feed.record_disposition(hit_id, pb.DISPOSITION_VISUALLY_VERIFIED, "plate seen", "officer")
        assert feed.hit(hit_id).disposition == "DISPOSITION_VISUALLY_VERIFIED"
        [settled] = feed.after(1)
        assert isinstance(settled.message, pb.DispositionRecorded)
        assert settled.message.recorded_by == "officer"
        assert settled.message.recorded_at.ToDatetime().isoformat() == "2026-11-25T12:03:00"

    @pytest.mark.parametrize(
        ("hit_id", "disposition", "note", "error"),
        [
            ("", pb.DISPOSITION_UNSPECIFIED, "", ValidationError),
            ("", 99, "", ValidationError),
            ("", pb.DISPOSITION_MISREAD, "x" * 501, ValidationError),
            ("no-such-hit", pb.DISPOSITION_MISREAD, "", NotFoundError),
        ],
    )
    def test_fails_for_a_bad_disposition(
        self,
        engine: Engine,
        feed: HitFeed,
        hit_id: str,
        disposition: pb.Disposition.ValueType,
        note: str,
        error: type[Exception],
    ) -> None:
        record(engine, feed)
        [event] = feed.after(0)
        assert isinstance(event.message, pb.Hit)
        with pytest.raises(error):
            feed.record_disposition(hit_id or event.message.hit_id, disposition, note, "u")
        assert feed.last_cursor() == 1

    def test_hot5_a_cancellation_names_every_hit_on_the_entry(
        self, engine: Engine, feed: HitFeed
    ) -> None:
        record(engine, feed, "e1", count=2)
        record(engine, feed, "e2")
        feed.record_cancellation("e1", "stolen")
        cancellation = feed.after(3)[0].message
        assert isinstance(cancellation, pb.Cancellation)
        hits = [e.message for e in feed.after(0, limit=2)]
        assert list(cancellation.hit_ids) == [h.hit_id for h in hits if isinstance(h, pb.Hit)]

    def test_fails_for_a_negative_cursor(self, feed: HitFeed) -> None:
        with pytest.raises(ValidationError):
            feed.after(-1)
