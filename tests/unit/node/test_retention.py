"""Retention of reads and legal holds, on SQLite and PostgreSQL (RET-1…RET-4, AUD-2)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from alpr.patrol.v1 import patrol_service_pb2 as pb
from node.audit import AuditLog
from node.ed25519 import DataKey
from node.errors import PreconditionError, ValidationError
from node.hits import HitFeed, NewHit, new_hit_id
from node.profile import PolicyProfile, builtin_profiles, load_profile
from node.reads import ImageStore
from node.retention import LegalHolds, NewHold, RetentionKeeper
from node.search import ReadQuery, ReadSearch
from node.shared_reads import SharedReads
from node.store.capture_models import HitRecord, ReadRecord
from node.store.engine import lock_for_write
from tests.support.clock import START, ManualClock
from tests.support.pki import LAPD, LASD

LAPD_PROFILE = load_profile(builtin_profiles()["lapd"])  # P2Y, archived, deleted at P5YT24H1M
SPD_PROFILE = load_profile(builtin_profiles()["south_pasadena_pd"])  # P1Y, no archive
SYSTEM = "system"
TWO_YEARS = datetime(2028, 11, 25, 12, 0, tzinfo=START.tzinfo)
HARD_LIMIT = datetime(2031, 11, 26, 12, 1, tzinfo=START.tzinfo)  # + P5YT24H1M


class Site:
    """A store with reads, their images and a hit, and the retention keeper for a profile."""

    def __init__(
        self, engine: Engine, clock: ManualClock, tmp_path: Path, profile: PolicyProfile
    ) -> None:
        self.engine, self.clock = engine, clock
        self.images = ImageStore(tmp_path / "images")
        self.audit = AuditLog(engine, clock=clock)
        self.holds = LegalHolds(engine, clock=clock)
        self.keeper = RetentionKeeper(
            engine, retention=profile.retention, holds=self.holds, images=self.images,
            audit=self.audit, clock=clock,
        )  # fmt: skip
        self.search = ReadSearch(engine, profile=LAPD_PROFILE, audit=self.audit, ori=LAPD)
        self.feed = HitFeed(engine, data_key=DataKey.generate(), clock=clock)

    def read(self, plate: str, seen: datetime, image: bytes = b"") -> str:
        record = ReadRecord(
            id=str(uuid.uuid4()), plate=plate, confidence=0.9, captured_at=seen,
            camera_id="cam-1", committed_at=seen,
            plate_image_sha256=self.images.put(image) if image else "",
        )  # fmt: skip
        hit = NewHit(
            read_id=record.id, list_id="own:stolen", issuer_ori=LAPD, entry_id="e1",
            listed=plate, kind="exact", confidence=1.0, retrospective=False,
            message=pb.Hit(hit_id=new_hit_id(), plate=plate),
        )  # fmt: skip
        read_id = record.id
        with Session(self.engine) as session:
            lock_for_write(session)
            session.add(record)
            session.flush()
            self.feed.record_hits(session, [hit])
            session.commit()
        return read_id

    def run(self, at: datetime) -> tuple[int, int, int]:
        self.clock.now = at
        done = self.keeper.run(actor=SYSTEM, agency=LAPD)
        return done.archived, done.deleted, done.held

    def plates_found(self, plate: str) -> list[str]:
        query = ReadQuery(
            plate=plate, since=START - timedelta(days=1), until=START + timedelta(days=1),
            purpose=LAPD_PROFILE.access.purposes[0], case_number="26-1",
        )  # fmt: skip
        return [r.plate for r in self.search.search(query, user="u", peer_ip="").reads]

    def stored(self) -> dict[str, bool]:
        """Each read's plate and whether it is archived."""
        with Session(self.engine) as session:
            rows = session.exec(select(ReadRecord)).all()
            return {row.plate: row.archived_at is not None for row in rows}


@pytest.fixture
def site(engine: Engine, clock: ManualClock, tmp_path: Path) -> Site:
    return Site(engine, clock, tmp_path, LAPD_PROFILE)


def hold(site: Site, plate: str = "7ABC123") -> str:
    return site.holds.place(
        NewHold(
            plate=plate, since=START - timedelta(hours=1), until=START + timedelta(hours=1),
            case_number="26-HOMICIDE-4", reason="evidence for trial",
            investigator_contact="Det. Ruiz, 213-555-0100", supervisor_approval="Lt. Ortiz",
        ),
        user="custodian",
    ).id  # fmt: skip


class TestRetention:
    def test_ret1_ret2_reads_are_archived_at_the_read_period_and_hidden_from_search(
        self, site: Site
    ) -> None:
        site.read("7ABC123", START)
        assert site.run(TWO_YEARS - timedelta(seconds=1)) == (0, 0, 0)
        site.clock.now = START
        assert site.plates_found("7ABC123") == ["7ABC123"]
        assert site.run(TWO_YEARS) == (1, 0, 0)
        assert site.stored() == {"7ABC123": True}
        assert site.plates_found("7ABC123") == []
        assert site.run(TWO_YEARS + timedelta(days=1)) == (0, 0, 0)  # archived once

    def test_ret3_archived_reads_go_for_good_at_the_hard_limit_with_hits_and_images(
        self, site: Site, engine: Engine
    ) -> None:
        gone = site.read("7ABC123", START, image=b"jpeg-1")
        kept = site.read("8XY947", START + timedelta(days=400), image=b"jpeg-2")
        SharedReads(engine, clock=site.clock).record(
            exchange_id=str(uuid.uuid4()), partner_ori=LASD, agreement_id=str(uuid.uuid4()),
            purpose="investigation", case_number="26-1", read_ids=[gone, kept],
        )  # fmt: skip
        digest = site.images.put(b"jpeg-1")
        assert site.run(TWO_YEARS) == (1, 0, 0)
        assert site.run(HARD_LIMIT - timedelta(seconds=1)) == (1, 0, 0)  # 8XY947's two years
        assert site.run(HARD_LIMIT) == (0, 1, 0)  # 7ABC123 past the hard limit
        assert site.stored() == {"8XY947": True}
        assert not site.images.path(digest).exists()
        assert site.images.path(site.images.put(b"jpeg-2")).exists()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM hit")).scalar_one() == 1
            assert connection.execute(text("SELECT count(*) FROM hit_event")).scalar_one() == 1
            # What was sent of the deleted read goes from the file too; the audit log keeps it.
            shared = connection.execute(text("SELECT read_id FROM shared_read")).scalars().all()
            assert shared == [kept]

    def test_ret1_a_profile_without_an_archive_deletes_at_the_read_period(
        self, engine: Engine, clock: ManualClock, tmp_path: Path
    ) -> None:
        site = Site(engine, clock, tmp_path, SPD_PROFILE)
        site.read("7ABC123", START)
        one_year = datetime(2027, 11, 25, 12, 0, tzinfo=START.tzinfo)
        assert site.run(one_year - timedelta(seconds=1)) == (0, 0, 0)
        assert site.run(one_year) == (0, 1, 0)
        assert site.stored() == {}

    def test_aud2_no_purge_touches_the_audit_log(self, site: Site) -> None:
        site.read("7ABC123", START)
        site.clock.now = START
        site.plates_found("7ABC123")
        before = [(e.seq, e.leaf_hash) for e in site.audit.events()]
        site.run(HARD_LIMIT)
        after = [(e.seq, e.leaf_hash) for e in site.audit.events()]
        assert after[: len(before)] == before
        assert [e.kind for e in site.audit.events()][len(before) :] == ["retention.run"]
        site.audit.verify()


class TestLegalHolds:
    def test_ret4_a_held_read_outlives_both_limits_until_the_hold_is_released(
        self, site: Site
    ) -> None:
        site.read("7ABC123", START)
        site.read("7ABC999", START)
        hold_id = hold(site, "7ABC12?")
        assert site.run(TWO_YEARS) == (1, 0, 1)
        assert site.run(HARD_LIMIT) == (0, 1, 1)
        assert site.stored() == {"7ABC123": False}
        site.holds.release(hold_id, user="custodian")
        assert site.run(HARD_LIMIT + timedelta(days=1)) == (0, 1, 0)  # past both: deleted
        assert site.stored() == {}
        with pytest.raises(PreconditionError):
            site.holds.release(hold_id, user="custodian")

    def test_ret4_a_hold_is_due_for_review_every_two_years(self, site: Site) -> None:
        hold_id = hold(site)
        site.clock.now = TWO_YEARS - timedelta(seconds=1)
        assert site.holds.due_for_review() == []
        site.clock.now = TWO_YEARS
        assert [h.id for h in site.holds.due_for_review()] == [hold_id]
        site.holds.review(hold_id)
        assert site.holds.due_for_review() == []

    @pytest.mark.parametrize(
        "field", ["case_number", "reason", "investigator_contact", "supervisor_approval"]
    )
    def test_ret4_fails_without_each_field(self, site: Site, field: str) -> None:
        fields: dict[str, object] = {
            "plate": "7ABC123", "since": START, "until": START + timedelta(days=1),
            "case_number": "26-1", "reason": "r", "investigator_contact": "c",
            "supervisor_approval": "s",
        }  # fmt: skip
        fields[field] = " "
        with pytest.raises(ValidationError) as raised:
            site.holds.place(NewHold(**fields), user="u")  # type: ignore[arg-type]
        assert raised.value.field == field
        with Session(site.engine) as session:
            assert session.exec(select(col(HitRecord.id))).all() == []
