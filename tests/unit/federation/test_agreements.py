"""Agreements between two agencies' books: terms, signatures, sunsets, renewal, revocation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from federation.agreements import (
    MAX_LISTED_NAME,
    MAX_NONCOMPLIANT,
    MAX_REVIEW_SUMMARY,
    MAX_REVIEWER,
    MAX_SOURCE,
    AgreementBook,
    ComplianceReview,
)
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.peers import Peer, PeerRegistry
from federation.terms import MAX_CLAUSES, REQUIRED_CLAUSES, TERMS_TYPE, Grant, one_year_after
from node.ed25519 import Ed25519Signer
from node.errors import PreconditionError, ValidationError
from node.store import create_engine, sqlite_url, upgrade
from node.store.sharing import AgreementState
from tests.support.clock import START, ManualClock
from tests.support.pki import FEDERATION, LAPD, LASD

YEAR_LATER = one_year_after(START)
REVIEW = ComplianceReview(reviewer="Lt. Ortiz", summary="audit of LASD use reviewed; compliant")


@dataclass
class Party:
    ori: str
    name: str
    signer: Ed25519Signer
    book: AgreementBook
    peers: PeerRegistry
    engine: Engine

    def as_peer(self) -> Peer:
        return Peer(
            ori=self.ori,
            name=self.name,
            endpoint="localhost:1",
            spiffe_id=f"spiffe://{FEDERATION}/agency/{self.ori}",
            signing_public_key=self.signer.public_key.public_bytes,
        )


def make_party(url: str, ori: str, name: str, clock: ManualClock) -> Party:
    engine = create_engine(url)
    upgrade(engine)
    signer = Ed25519Signer.generate()
    peers = PeerRegistry(engine, clock=clock)
    book = AgreementBook(
        engine, ori=ori, federation=FEDERATION, signer=signer, peers=peers, clock=clock
    )
    return Party(ori, name, signer, book, peers, engine)


@pytest.fixture
def parties(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[tuple[Party, Party]]:
    """LAPD on each database engine, LASD on SQLite, each registered as the other's peer."""
    lapd = make_party(database_url, LAPD, "Los Angeles Police Department", clock)
    lasd = make_party(sqlite_url(tmp_path / "lasd.db"), LASD, "LA County Sheriff", clock)
    lapd.peers.add(lasd.as_peer())
    lasd.peers.add(lapd.as_peer())
    yield lapd, lasd
    lapd.engine.dispose()
    lasd.engine.dispose()


def draft(lapd: Party, **changes: object) -> str:
    terms: dict[str, object] = {
        "partner_ori": LASD,
        "starts_at": START,
        "sunsets_at": START + timedelta(days=180),
        "we_grant": {Grant.RECEIVE_HOTLISTS},
        "they_grant": {Grant.RECEIVE_HOTLISTS, Grant.ASK_PLATE_QUERIES},
        "purposes": ["stolen vehicle recovery", "criminal investigation"],
    }
    return lapd.book.create(**(terms | changes)).id  # type: ignore[arg-type]


def activate(lapd: Party, lasd: Party, agreement_id: str) -> None:
    """The whole exchange: propose, countersign, and both sides activate."""
    lasd.book.receive_proposal(lapd.book.require(agreement_id).envelope, lasd.peers.require(LAPD))
    lapd.book.mark_proposed(agreement_id)
    countersigned = lasd.book.countersign(agreement_id)
    lapd.book.receive_acceptance(countersigned, lapd.peers.require(LASD))
    lasd.book.activate(agreement_id, countersigned)


class TestTerms:
    def test_shr3_fails_for_a_sunset_more_than_a_year_after_the_start(
        self, parties: tuple[Party, Party]
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            draft(parties[0], sunsets_at=YEAR_LATER + timedelta(seconds=1))
        assert raised.value.field == "sunsets_at"
        assert "SHR-3" in raised.value.problem

    def test_shr3_succeeds_for_a_sunset_exactly_a_year_out(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, _ = parties
        assert lapd.book.require(draft(lapd, sunsets_at=YEAR_LATER)).terms.sunsets_at == YEAR_LATER

    def test_shr2_every_agreement_binds_the_partner_to_the_required_clauses(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, _ = parties
        terms = lapd.book.require(draft(lapd, extra_clauses=["Quarterly audits."])).terms
        assert terms.clauses == (*REQUIRED_CLAUSES, "Quarterly audits.")

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"sunsets_at": START}, "sunsets_at"),
            ({"we_grant": set(), "they_grant": set()}, "grants"),
            ({"purposes": []}, "purposes"),
            ({"purposes": [" "]}, "purposes"),
            ({"extra_clauses": [f"Clause {n}." for n in range(MAX_CLAUSES)]}, "clauses"),
            ({"purposes": ["theft\nclauses: none"]}, "purposes"),
            ({"extra_clauses": ["Audits.\x1b[2K"]}, "clauses"),
        ],
        ids=[
            "sunset at start",
            "nothing granted",
            "no purpose",
            "blank purpose",
            "clauses",
            "purpose of two lines",
            "clause with a control character",
        ],
    )
    def test_fails_on_invalid_terms(
        self, parties: tuple[Party, Party], changes: dict[str, object], field: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            draft(parties[0], **changes)
        assert raised.value.field == field


class TestLifecycle:
    def test_succeeds_with_both_signatures_kept_on_both_sides(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd)
        assert lapd.book.require(agreement_id).state is AgreementState.DRAFT
        activate(lapd, lasd, agreement_id)
        keys = [lapd.signer.public_key, lasd.signer.public_key]
        for party in parties:
            held = party.book.require(agreement_id)
            assert held.state is AgreementState.ACTIVE
            assert len(held.envelope.verify(keys, 2, TERMS_TYPE).keys) == 2
        assert lasd.book.in_force(LAPD, Grant.RECEIVE_HOTLISTS, grantor=LASD) is not None
        assert lasd.book.in_force(LAPD, Grant.ASK_PLATE_QUERIES, grantor=LAPD) is None

    def test_fails_to_activate_on_the_proposers_signature_alone(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd)
        lasd.book.receive_proposal(
            lapd.book.require(agreement_id).envelope, lasd.peers.require(LAPD)
        )
        lapd.book.mark_proposed(agreement_id)
        with pytest.raises(InvalidEnvelopeError, match="found 1, expected 2"):
            lapd.book.activate(agreement_id, lapd.book.require(agreement_id).envelope)
        assert lapd.book.require(agreement_id).state is AgreementState.PROPOSED

    def test_fails_when_the_countersigned_terms_were_altered(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd)
        lasd.book.receive_proposal(
            lapd.book.require(agreement_id).envelope, lasd.peers.require(LAPD)
        )
        lapd.book.mark_proposed(agreement_id)
        altered = replace(lasd.book.countersign(agreement_id), payload=b"other terms")
        with pytest.raises(InvalidEnvelopeError):
            lapd.book.receive_acceptance(altered, lapd.peers.require(LASD))

    def test_fails_on_a_proposal_signed_by_someone_else(self, parties: tuple[Party, Party]) -> None:
        lapd, lasd = parties
        envelope = lapd.book.require(draft(lapd)).envelope
        forged = Envelope.sign(envelope.payload, TERMS_TYPE, Ed25519Signer.generate())
        with pytest.raises(InvalidEnvelopeError):
            lasd.book.receive_proposal(forged, lasd.peers.require(LAPD))

    def test_fails_on_a_proposal_its_sender_did_not_sign(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, _ = parties
        signed_by_lapd = lapd.book.require(draft(lapd)).envelope
        with pytest.raises(InvalidEnvelopeError):
            lapd.book.receive_proposal(signed_by_lapd, lapd.peers.require(LASD))


class TestSunset:
    def test_shr3_flow_stops_at_the_sunset_instant_and_the_job_expires_it(
        self, parties: tuple[Party, Party], clock: ManualClock
    ) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd, sunsets_at=START + timedelta(days=30))
        activate(lapd, lasd, agreement_id)
        clock.advance(timedelta(days=30) - timedelta(seconds=1))
        assert lapd.book.in_force(LASD, Grant.RECEIVE_HOTLISTS, grantor=LAPD) is not None
        assert lapd.book.expire_sunsets() == []
        clock.advance(timedelta(seconds=1))
        assert lapd.book.in_force(LASD, Grant.RECEIVE_HOTLISTS, grantor=LAPD) is None
        assert lapd.book.expire_sunsets() == [agreement_id]
        assert lapd.book.require(agreement_id).state is AgreementState.EXPIRED

    def test_fails_before_the_start(self, parties: tuple[Party, Party]) -> None:
        lapd, lasd = parties
        activate(lapd, lasd, draft(lapd, starts_at=START + timedelta(days=1)))
        assert lapd.book.in_force(LASD, Grant.RECEIVE_HOTLISTS, grantor=LAPD) is None


class TestRevocation:
    def test_succeeds_stopping_flow_on_both_sides(self, parties: tuple[Party, Party]) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd)
        activate(lapd, lasd, agreement_id)
        notice = lasd.book.revoke(agreement_id, "misuse reported")
        assert lasd.book.in_force(LAPD, Grant.RECEIVE_HOTLISTS, grantor=LASD) is None
        revoked = lapd.book.receive_revocation(notice, lapd.peers.require(LASD))
        assert revoked.state is AgreementState.REVOKED
        assert revoked.revoked_reason == f"revoked by {LASD}: misuse reported"
        assert lapd.book.in_force(LASD, Grant.RECEIVE_HOTLISTS, grantor=LAPD) is None

    def test_fails_on_a_notice_not_signed_by_the_partner(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        agreement_id = draft(lapd)
        activate(lapd, lasd, agreement_id)
        forged = lapd.book.revoke(agreement_id, "forged: LAPD's own signature, claimed as LASD's")
        with pytest.raises(InvalidEnvelopeError):
            lapd.book.receive_revocation(forged, lapd.peers.require(LASD))
        assert lasd.book.require(agreement_id).state is AgreementState.ACTIVE


class TestRenewal:
    def test_shr4_succeeds_after_a_review_for_a_partner_not_listed(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        first = draft(lapd)
        activate(lapd, lasd, first)
        lapd.book.import_noncompliance([("Some Other PD", "CA0000000")], "ag-2026-10.csv")
        renewal = lapd.book.renew(
            first, starts_at=START + timedelta(days=180), sunsets_at=YEAR_LATER, review=REVIEW
        )
        assert (renewal.terms.term, renewal.terms.renews_agreement_id) == (2, first)
        assert renewal.state is AgreementState.DRAFT
        assert "Lt. Ortiz" in renewal.compliance_review

    @pytest.mark.parametrize(
        "listing",
        [("LA County Sheriff", ""), ("", LASD), ("la county sheriff", "")],
        ids=["by name", "by ORI", "by name in another case"],
    )
    def test_shr4_fails_for_a_partner_on_the_sb34_list(
        self, parties: tuple[Party, Party], listing: tuple[str, str]
    ) -> None:
        lapd, lasd = parties
        first = draft(lapd)
        activate(lapd, lasd, first)
        lapd.book.import_noncompliance([listing], "ag-2026-10.csv")
        with pytest.raises(PreconditionError, match="SB 34"):
            lapd.book.renew(first, starts_at=START, sunsets_at=YEAR_LATER, review=REVIEW)

    def test_shr4_a_listed_partner_gets_no_new_agreement_in_place_of_a_renewal(
        self, parties: tuple[Party, Party]
    ) -> None:
        lapd, lasd = parties
        activate(lapd, lasd, draft(lapd))
        lapd.book.import_noncompliance([("", LASD)], "ag-2026-10.csv")
        with pytest.raises(PreconditionError, match=r"SB 34.*agreement refused"):
            draft(lapd)

    @pytest.mark.parametrize("term", [1, 2], ids=["first term", "renewal"])
    def test_shr4_a_listed_partners_proposal_is_not_accepted(
        self, parties: tuple[Party, Party], term: int
    ) -> None:
        lapd, lasd = parties
        proposal = draft(lapd)
        if term == 2:
            activate(lapd, lasd, proposal)
            renewal = lapd.book.renew(
                proposal, starts_at=START, sunsets_at=YEAR_LATER, review=REVIEW
            )
            proposal = renewal.id
        lasd.book.receive_proposal(lapd.book.require(proposal).envelope, lasd.peers.require(LAPD))
        lasd.book.import_noncompliance([("Los Angeles Police Department", "")], "ag-2026-10.csv")
        with pytest.raises(PreconditionError, match="SB 34"):
            lasd.book.countersign(proposal)
        assert lasd.book.require(proposal).state is AgreementState.PROPOSED

    @pytest.mark.parametrize(
        ("reviewer", "summary", "field"),
        [
            ("Lt. Ortiz", " ", "compliance_review.summary"),
            (" ", "reviewed", "compliance_review.reviewer"),
            ("Lt. Ortiz", "x" * (MAX_REVIEW_SUMMARY + 1), "compliance_review.summary"),
            ("x" * (MAX_REVIEWER + 1), "reviewed", "compliance_review.reviewer"),
        ],
        ids=["no summary", "no reviewer", "summary too long", "reviewer too long"],
    )
    def test_shr4_fails_without_a_compliance_review_or_with_one_too_long(
        self, reviewer: str, summary: str, field: str
    ) -> None:
        with pytest.raises(ValidationError) as raised:
            ComplianceReview(reviewer=reviewer, summary=summary)
        assert raised.value.field == field

    @pytest.mark.parametrize(
        ("agencies", "source", "field"),
        [
            ([("Some PD", "CA12")], "ag.csv", "agencies[0].ori"),
            ([("Some PD", ""), ("x" * (MAX_LISTED_NAME + 1), "")], "ag.csv", "agencies[1].name"),
            ([("Some PD", "")] * (MAX_NONCOMPLIANT + 1), "ag.csv", "agencies"),
            ([("Some PD", "")], "x" * (MAX_SOURCE + 1), "source"),
        ],
        ids=["malformed ORI", "name too long", "too many", "source too long"],
    )
    def test_shr4_an_sb34_list_out_of_bounds_is_refused_and_the_one_held_kept(
        self,
        parties: tuple[Party, Party],
        agencies: list[tuple[str, str]],
        source: str,
        field: str,
    ) -> None:
        lapd, _ = parties
        lapd.book.import_noncompliance([("LA County Sheriff", "ca0190000")], "ag-2026-10.csv")
        with pytest.raises(ValidationError) as raised:
            lapd.book.import_noncompliance(agencies, source)
        assert raised.value.field == field
        listed = lapd.book.noncompliance_listing(lapd.peers.require(LASD))
        assert listed == "as LA County Sheriff, imported from ag-2026-10.csv"
