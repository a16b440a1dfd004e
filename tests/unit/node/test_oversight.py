"""The redacted public summary, counted from the audit log and pinned to a checkpoint (AUD-4)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from node.audit import AuditLog
from node.audit_checkpoints import CheckpointStore
from node.checkpoint import log_origin
from node.ed25519 import Ed25519Signer
from node.errors import ValidationError
from node.oversight import access_summary, query_sample, summarize, training_report
from node.profile import Role
from node.users import UserDirectory
from tests.support.clock import START, ManualClock
from tests.support.pki import FEDERATION, LAPD, LASD
from tests.support.users import PASSWORD, ready_user

SPD = "CA0194600"
PURPOSES = ["stolen vehicle recovery", "homicide investigation", "AMBER alert"]
USER = f"spiffe://{FEDERATION}/agency/{LAPD}/user/analyst"
SINCE, UNTIL = START + timedelta(days=1), START + timedelta(days=3)


class Seeded:
    """A log with a random mix of events before, in and after the period, and true counts."""

    def __init__(self, log: AuditLog, clock: ManualClock, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 (a seeded mix of events, not a secret)
        self.searches: Counter[str] = Counter()
        self.exchanges: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        for _ in range(120):
            clock.now = START + timedelta(hours=rng.randrange(0, 96))
            inside = SINCE <= clock.now < UNTIL
            partner = rng.choice([LASD, SPD])
            match rng.randrange(5):
                case 0 | 1:
                    purpose = rng.choice(PURPOSES)
                    log.append("search.plate", actor=USER, agency=LAPD, purpose=purpose,
                               case_number="26-1234", details={"plate": "7ABC123"})  # fmt: skip
                    self.searches[purpose] += inside
                case 2:
                    log.append("exchange.hotlist_served", actor=partner, agency=partner)
                    self.exchanges[partner] += inside
                case 3:
                    log.append("exchange.hotlist_received", actor=USER, agency=LAPD,
                               details={"partner": partner, "plate": "8XYZ999"})  # fmt: skip
                    self.exchanges[partner] += inside
                case _:
                    log.append("exchange.denied", actor=partner, agency=partner)
                    self.refused[partner] += inside


def nonzero(counts: Counter[str]) -> dict[str, int]:
    return {key: count for key, count in counts.items() if count}


@pytest.fixture
def checkpoints(engine: Engine, clock: ManualClock) -> CheckpointStore:
    origin = log_origin(FEDERATION, LAPD)
    return CheckpointStore(engine, signer=Ed25519Signer.generate(), origin=origin, clock=clock)


class TestPublicSummary:
    @pytest.mark.parametrize("seed", [1, 2])
    def test_aud4_counts_match_an_independent_count_and_name_no_plate(
        self, engine: Engine, clock: ManualClock, checkpoints: CheckpointStore, seed: int
    ) -> None:
        log = AuditLog(engine, clock=clock)
        seeded = Seeded(log, clock, seed)
        note = checkpoints.sign(log.head())
        summary = summarize(log, ori=LAPD, since=SINCE, until=UNTIL, checkpoint=note)
        assert summary.searches_by_purpose == nonzero(seeded.searches)
        assert summary.exchanges_by_partner == nonzero(seeded.exchanges)
        assert summary.refused_by_partner == nonzero(seeded.refused)
        published = summary.to_text(checkpoints.open(note)) + summary.to_csv() + summary.to_json()
        for secret in ("7ABC123", "8XYZ999", "26-1234", "analyst"):
            assert secret not in published
        rows = list(csv.reader(io.StringIO(summary.to_csv())))
        assert rows[0] == ["measure", "key", "count"]
        assert sum(int(count) for _, _, count in rows[1:]) == (
            seeded.searches.total() + seeded.exchanges.total() + seeded.refused.total()
        )

    def test_aud4_is_pinned_to_a_checkpoint_covering_every_event_counted(
        self, engine: Engine, clock: ManualClock, checkpoints: CheckpointStore
    ) -> None:
        log = AuditLog(engine, clock=clock)
        Seeded(log, clock, 3)
        note = checkpoints.sign(log.head())
        summary = summarize(log, ori=LAPD, since=SINCE, until=UNTIL, checkpoint=note)
        checkpoint = checkpoints.open(summary.checkpoint)
        assert 0 < summary.first_seq <= summary.last_seq <= checkpoint.size
        assert (checkpoint.size, checkpoint.root) == (log.head().size, log.head().root)
        published = json.loads(summary.to_json())
        assert published["checkpoint"] == note.decode()

    def test_fails_for_an_empty_or_naive_period(
        self, engine: Engine, clock: ManualClock, checkpoints: CheckpointStore
    ) -> None:
        log = AuditLog(engine, clock=clock)
        with pytest.raises(ValidationError):
            summarize(log, ori=LAPD, since=UNTIL, until=SINCE, checkpoint=b"")
        with pytest.raises(ValidationError):
            summarize(log, ori=LAPD, since=SINCE.replace(tzinfo=None), until=UNTIL, checkpoint=b"")


class TestAccessAndSample:
    def test_aud4_each_users_searches_refusals_and_logins_match_an_independent_count(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        log = AuditLog(engine, clock=clock)
        clock.now = SINCE
        other = f"spiffe://{FEDERATION}/agency/{LAPD}/user/clerk"
        for actor, kind, purpose in [
            (USER, "search.plate", PURPOSES[0]), (USER, "search.plate", PURPOSES[0]),
            (USER, "search.federated", PURPOSES[1]), (USER, "search.refused", "curiosity"),
            (USER, "login", ""), (other, "login", ""), (other, "login.refused", ""),
            (other, "exchange.hotlist_served", ""),
        ]:  # fmt: skip
            log.append(kind, actor=actor, agency=LAPD, purpose=purpose)
        clock.now = UNTIL
        log.append("search.plate", actor=other, agency=LAPD, purpose=PURPOSES[0])  # after
        rows = {row.actor: row for row in access_summary(log, since=SINCE, until=UNTIL)}
        mine, theirs = rows[USER], rows[other]
        assert (mine.searches, mine.refused_searches, mine.logins) == (3, 1, 1)
        assert mine.purposes == {PURPOSES[0]: 2, PURPOSES[1]: 1}
        assert (theirs.searches, theirs.logins, theirs.refused_logins) == (0, 1, 1)

    def test_aud3_the_sample_is_drawn_from_the_periods_queries_and_reproducible(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        log = AuditLog(engine, clock=clock)
        Seeded(log, clock, 4)
        first = query_sample(log, since=SINCE, until=UNTIL, size=5, seed="root-abc")
        again = query_sample(log, since=SINCE, until=UNTIL, size=5, seed="root-abc")
        other = query_sample(log, since=SINCE, until=UNTIL, size=5, seed="root-def")
        assert [e.seq for e in first] == [e.seq for e in again] == sorted(e.seq for e in first)
        assert [e.seq for e in first] != [e.seq for e in other]
        assert all(e.kind == "search.plate" for e in first)
        assert all(SINCE <= e.recorded_at < UNTIL for e in first)
        everything = query_sample(log, since=SINCE, until=UNTIL, size=10_000, seed="x")
        assert len(everything) == sum(
            1 for e in log.events() if e.kind == "search.plate" and SINCE <= e.recorded_at < UNTIL
        )
        with pytest.raises(ValidationError):
            query_sample(log, since=SINCE, until=UNTIL, size=0, seed="x")


class TestTrainingReport:
    def test_aud4_acc2_who_was_trained_and_acknowledged_for_the_year(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        users = UserDirectory(engine, clock=clock)
        ready_user(users, "ortiz")  # trained and acknowledged at START (2026-11-25)
        users.create(name="ruiz", display_name="Ruiz", roles={Role.DATA_USER}, password=PASSWORD)
        users.record_training("ruiz")  # never acknowledged the policy
        year_end = datetime(2027, 1, 1, tzinfo=UTC)
        rows = {
            r.name: r for r in training_report(users.every(), year=2026, reference_time=year_end)
        }
        assert (rows["ortiz"].current_in_year, rows["ruiz"].current_in_year) == (True, False)
        assert rows["ruiz"].blocks == ("policy_not_acknowledged",)
        # A year on, ortiz's acknowledgement has lapsed: not current for 2027.
        later = datetime(2028, 1, 1, tzinfo=UTC)
        [ortiz] = [r for r in training_report(users.every(), year=2027, reference_time=later)
                   if r.name == "ortiz"]  # fmt: skip
        assert not ortiz.current_in_year
        assert "acknowledgement_expired" in ortiz.blocks
