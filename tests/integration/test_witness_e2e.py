"""Partners witness each other's audit logs between real nodes (AUD-7, AUD-5, AUD-6)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from alpr.admin.v1 import agreements_pb2
from alpr.federation.v1 import agreement_pb2
from federation.client import PartnerRefusedError
from federation.hotlist_sharing import PullResult
from federation.peers import Peer
from federation.witness import (
    COSIGN_INTERVAL,
    InclusionAnswer,
    Witnessed,
    verify_inclusion_answer,
)
from federation.witness import witness_verifier as verifier_of
from node.checkpoint import CheckpointError
from node.hotlists.entry import HotlistEntry, ListType
from node.merkle import MerkleError
from node.store import create_engine
from node.store.models import WitnessedCheckpointRecord
from tests.support.agencies import TIMEOUT, Agency, agree, running_agencies
from tests.support.clock import ManualClock
from tests.support.forgery import truncate_log
from tests.support.pki import LAPD, LASD, Federation

RECEIVE = agreement_pb2.GRANT_RECEIVE_HOTLISTS
STOLEN = HotlistEntry(plate="7ABC123", list_type=ListType.STOLEN_VEHICLE, reason="stolen")


@pytest.fixture
def pair(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[tuple[Agency, Agency, str]]:
    """LAPD (each engine) witnesses LASD, whose hotlists it pulls under an agreement."""
    with running_agencies(federation, tmp_path, clock, (LAPD, LASD), {LAPD: database_url}) as found:
        lapd, lasd = found[LAPD], found[LASD]
        lapd.add_peer(lasd)
        lasd.add_peer(lapd)
        agreement_id = agree(lasd, lapd, we_grant=[RECEIVE], they_grant=[])
        lasd.node.services.hotlists.create_list("stolen")
        lasd.node.services.hotlists.add("stolen", [STOLEN])
        yield lapd, lasd, agreement_id


def pull(agency: Agency, partner: str) -> PullResult:
    return agency.node.run(agency.node.services.sharing.pull(partner))


def peer(agency: Agency, ori: str) -> Peer:
    return agency.node.services.peers.require(ori)


def engine_of(agency: Agency) -> Engine:
    return create_engine(agency.node.config.store_url)


def witnessed_once(lapd: Agency) -> WitnessedCheckpointRecord:
    """LAPD pulls from LASD once; the checkpoint of LASD's log it then holds."""
    pull(lapd, LASD)
    held = lapd.node.services.witness.held(LASD)
    assert held is not None
    return held


def forge_history(lasd: Agency, keep: int, then_append: int) -> None:
    """LASD cuts its log to `keep` events and writes `then_append` others after them."""
    engine = engine_of(lasd)
    truncate_log(engine, keep)
    engine.dispose()
    for n in range(then_append):
        lasd.node.services.audit.append("login", actor=f"forged-{n}", agency=LASD)


class TestWitnessing:
    def test_aud7_a_pull_leaves_the_partners_checkpoint_witnessed_and_cosigned(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        first = pull(lapd, LASD)
        assert first.witnessed is Witnessed.COSIGNED
        held = lapd.node.services.witness.held(LASD)
        assert held is not None
        # The second pull's checkpoint, past the interval, extends the first: cosigned.
        clock.advance(COSIGN_INTERVAL)
        second = pull(lapd, LASD)
        assert second.witnessed is Witnessed.COSIGNED
        later = lapd.node.services.witness.held(LASD)
        assert later is not None
        assert later.size > held.size
        # LASD holds both cosignatures, and its own audit check verifies them (AUD-5).
        services = lasd.node.services
        cosignatures = services.checkpoints.cosignatures()
        assert [(c.witness_ori, c.size) for c in cosignatures] == [
            (LAPD, held.size),
            (LAPD, later.size),
        ]
        witnesses = {LAPD: verifier_of(peer(lasd, LAPD))}
        assert services.checkpoints.verify(services.audit, witnesses) >= 2
        assert [e.kind for e in lapd.audit_events("witness.cosigned")] == ["witness.cosigned"] * 2

    def test_aud7_within_the_interval_a_checkpoint_is_verified_and_kept_not_cosigned(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        cosigned = witnessed_once(lapd)
        clock.advance(COSIGN_INTERVAL / 2)
        assert pull(lapd, LASD).witnessed is Witnessed.VERIFIED
        verified = lapd.node.services.witness.held(LASD)
        assert verified is not None
        assert (verified.size > cosigned.size, verified.cosigned) == (True, False)
        assert [c.size for c in lasd.node.services.checkpoints.cosignatures()] == [cosigned.size]
        assert len(lapd.audit_events("witness.cosigned")) == 1
        # The first extension past the interval is cosigned: the partner gets it.
        clock.advance(COSIGN_INTERVAL / 2)
        assert pull(lapd, LASD).witnessed is Witnessed.COSIGNED
        assert len(lasd.node.services.checkpoints.cosignatures()) == 2

    def test_aud7_a_rewrite_after_a_checkpoint_only_verified_is_caught(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        witnessed_once(lapd)
        clock.advance(COSIGN_INTERVAL / 2)
        pull(lapd, LASD)
        verified = lapd.node.services.witness.held(LASD)
        assert verified is not None
        assert not verified.cosigned
        # LASD rewrites events the verified checkpoint covers, past the cosigned one's.
        forge_history(lasd, keep=verified.size - 1, then_append=3)
        assert pull(lapd, LASD).witnessed is Witnessed.INCONSISTENT
        [alarm] = lapd.node.services.witness.alarms()
        assert alarm.held == verified.note

    def test_aud7_a_batch_is_checked_against_its_newest_and_the_newest_kept(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        held = witnessed_once(lapd)
        notes = []
        for n in range(3):
            lasd.node.services.audit.append("login", actor=f"officer-{n}", agency=LASD)
            notes.append(lasd.node.services.witnessed.checkpoint())
        clock.advance(COSIGN_INTERVAL)
        witness = lapd.node.services.witness
        batch = [notes[2], held.note, notes[0], notes[1]]
        outcomes = lapd.node.run(witness.observe_many(peer(lapd, LASD), batch))
        assert outcomes == [Witnessed.COSIGNED] + [Witnessed.CONSISTENT] * 3
        newest = witness.held(LASD)
        assert newest is not None
        assert newest.note.startswith(notes[2])  # kept with our cosignature added
        assert witness.alarms() == []

    def test_aud7_a_forged_checkpoint_in_a_batch_is_caught_and_the_newest_not_kept(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        held = witnessed_once(lapd)
        lasd.node.services.audit.append("login", actor="officer", agency=LASD)
        honest = lasd.node.services.witnessed.checkpoint()
        forge_history(lasd, keep=held.size, then_append=3)  # what we held stays a prefix
        forged = lasd.node.services.witnessed.checkpoint()
        witness = lapd.node.services.witness
        outcomes = lapd.node.run(witness.observe_many(peer(lapd, LASD), [honest, forged]))
        assert Witnessed.INCONSISTENT in outcomes
        assert witness.held(LASD) == held  # nothing of the batch is kept
        assert len(witness.alarms()) >= 1

    def test_aud7_a_log_rewritten_after_it_was_witnessed_is_caught_on_the_next_exchange(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        held = witnessed_once(lapd)
        # A forger at LASD rewrites the last two events, and the log grows past them again.
        forge_history(lasd, keep=held.size - 2, then_append=4)
        lasd.node.services.audit.verify()  # consistent with itself
        result = pull(lapd, LASD)
        assert result.witnessed is Witnessed.INCONSISTENT
        # The witness keeps what it held, and both checkpoints as evidence...
        assert lapd.node.services.witness.held(LASD) == held
        [alarm] = lapd.node.services.witness.alarms()
        assert (alarm.partner_ori, alarm.our_log, alarm.held) == (LASD, False, held.note)
        [event] = lapd.audit_events("witness.inconsistent")
        assert json.loads(event.details)["partner"] == LASD
        # ...and the alarm is raised on LASD's side too, where its own auditors see it.
        [reported] = lasd.node.services.witness.alarms()
        assert (reported.partner_ori, reported.our_log) == (LAPD, True)
        assert len(lasd.audit_events("audit.inconsistency_reported")) == 1

    def test_aud7_an_older_checkpoint_from_an_overlapping_exchange_is_no_alarm(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, _, _ = pair
        first = witnessed_once(lapd)
        pull(lapd, LASD)  # the partner's log grew; we now hold a later checkpoint
        witness = lapd.node.services.witness
        outcome = lapd.node.run(witness.observe(peer(lapd, LASD), first.note))
        assert outcome is Witnessed.CONSISTENT
        assert witness.alarms() == []

    def test_aud7_a_truncated_log_is_caught_by_the_scheduled_look(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        held = witnessed_once(lapd)
        forge_history(lasd, keep=held.size - 3, then_append=0)
        witness = lapd.node.services.witness
        outcome = lapd.node.run(witness.observe_latest(peer(lapd, LASD)))
        assert outcome is Witnessed.INCONSISTENT
        [alarm] = witness.alarms()
        assert "shrank" in alarm.detail

    def test_aud7_a_partner_may_witness_after_the_agreement_ends(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, agreement_id = pair
        pull(lapd, LASD)
        clock.advance(COSIGN_INTERVAL)
        lasd.admin.RevokeAgreement(
            agreements_pb2.RevokeAgreementRequest(agreement_id=agreement_id, reason="ended"),
            timeout=TIMEOUT,
        )
        witness = lapd.node.services.witness
        outcome = lapd.node.run(witness.observe_latest(peer(lapd, LASD)))
        assert outcome is Witnessed.COSIGNED  # the revocation grew LASD's log

    def test_fails_to_cosign_a_checkpoint_not_signed_by_the_partner(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        lasd_as_lapd_knows = peer(lapd, LASD)
        note = lasd.node.services.witnessed.checkpoint()
        impostor = replace(lasd_as_lapd_knows, signing_public_key=lapd.node_key)
        with pytest.raises(CheckpointError):
            lapd.node.run(lapd.node.services.witness.observe(impostor, note))
        assert lapd.node.services.witness.held(LASD) is None


class TestInclusion:
    def test_aud6_a_receipt_holder_gets_a_proof_of_its_exchange_and_checks_it(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, _, _ = pair
        result = pull(lapd, LASD)
        pull(lapd, LASD)  # the exchange is now inside a larger tree
        witness = lapd.node.services.witness
        checkpoint = lapd.node.run(witness.prove_exchange(peer(lapd, LASD), result.exchange_id))
        assert checkpoint.size > 0

    def test_fails_for_a_forged_event_or_another_exchange(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, _, _ = pair
        result = pull(lapd, LASD)
        lasd_peer = peer(lapd, LASD)
        client = lapd.node.services.partners
        answer = InclusionAnswer.from_proto(
            lapd.node.run(client.inclusion_proof(lasd_peer, result.exchange_id))
        )
        verify_inclusion_answer(answer, lasd_peer, result.exchange_id)
        forged = replace(answer, event=answer.event.replace(b'"entries":1', b'"entries":0'))
        assert forged.event != answer.event
        with pytest.raises(MerkleError):
            verify_inclusion_answer(forged, lasd_peer, result.exchange_id)
        with pytest.raises(PartnerRefusedError, match="NOT_FOUND"):
            lapd.node.run(client.inclusion_proof(lasd_peer, "no-such-exchange"))
