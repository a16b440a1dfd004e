"""Two real nodes on loopback agree, disagree and deny, through their operators' admin RPCs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from alpr.admin.v1 import agreements_pb2, peers_pb2
from alpr.common.v1 import envelope_pb2
from alpr.federation.v1 import agreement_pb2, federation_service_pb2, federation_service_pb2_grpc
from federation.agreements import NOTICE_TYPE
from federation.envelope import Envelope
from federation.gate import DENIED
from node.identity import PrincipalKind
from tests.support.agencies import TIMEOUT, Agency, running_agencies, stamp
from tests.support.clock import ManualClock
from tests.support.pki import LAPD, LASD, SPD, Federation


@pytest.fixture
def agencies(
    federation: Federation, tmp_path: Path, database_url: str, clock: ManualClock
) -> Iterator[dict[str, Agency]]:
    """LAPD (on each database engine), LASD and SPD served; LAPD and LASD peers of each other."""
    with running_agencies(
        federation, tmp_path, clock, (LAPD, LASD, SPD), {LAPD: database_url}
    ) as found:
        found[LAPD].add_peer(found[LASD])
        found[LASD].add_peer(found[LAPD])
        yield found


def propose(lapd: Agency, **changes: object) -> str:
    request = agreements_pb2.CreateAgreementRequest(
        partner_ori=LASD,
        starts_at=stamp(timedelta(0)),
        sunsets_at=stamp(timedelta(days=90)),
        we_grant=[agreement_pb2.GRANT_RECEIVE_HOTLISTS],
        they_grant=[agreement_pb2.GRANT_RECEIVE_HOTLISTS, agreement_pb2.GRANT_ASK_PLATE_QUERIES],
        purposes=["stolen vehicle recovery"],
    )
    for name, value in changes.items():
        getattr(request, name).CopyFrom(value)
    created = lapd.admin.CreateAgreement(request, timeout=TIMEOUT).agreement
    assert created.state == agreements_pb2.AGREEMENT_STATE_DRAFT
    proposal = agreements_pb2.ProposeAgreementRequest(agreement_id=created.agreement_id)
    proposed = lapd.admin.ProposeAgreement(proposal, timeout=TIMEOUT).agreement
    assert proposed.state == agreements_pb2.AGREEMENT_STATE_PROPOSED
    return created.agreement_id


class TestAgreementOverTheWire:
    def test_succeeds_propose_accept_activate_with_both_signatures_on_both_sides(
        self, agencies: dict[str, Agency]
    ) -> None:
        lapd, lasd = agencies[LAPD], agencies[LASD]
        agreement_id = propose(lapd)
        received = lasd.agreement(agreement_id)
        assert (received.state, received.we_proposed) == (
            agreements_pb2.AGREEMENT_STATE_PROPOSED,
            False,
        )
        accept = agreements_pb2.AcceptAgreementRequest(agreement_id=agreement_id)
        accepted = lasd.admin.AcceptAgreement(accept, timeout=TIMEOUT).agreement
        for held in (accepted, lapd.agreement(agreement_id)):
            assert held.state == agreements_pb2.AGREEMENT_STATE_ACTIVE
            assert held.signature_count == 2
        assert list(lasd.agreement(agreement_id).they_grant) == [
            agreement_pb2.GRANT_RECEIVE_HOTLISTS
        ]
        assert [e.kind for e in lapd.audit_events("agreement.activated")] == ["agreement.activated"]

    def test_shr3_fails_invalid_argument_for_a_sunset_past_a_year(
        self, agencies: dict[str, Agency]
    ) -> None:
        with pytest.raises(grpc.RpcError) as raised:
            propose(agencies[LAPD], sunsets_at=stamp(timedelta(days=366)))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "sunsets_at: must be at most one year after starts_at (SHR-3)" in str(
            raised.value.details()
        )

    def test_succeeds_revocation_stopping_both_sides_at_once(
        self, agencies: dict[str, Agency]
    ) -> None:
        lapd, lasd = agencies[LAPD], agencies[LASD]
        agreement_id = propose(lapd)
        lasd.admin.AcceptAgreement(
            agreements_pb2.AcceptAgreementRequest(agreement_id=agreement_id), timeout=TIMEOUT
        )
        revoked = lasd.admin.RevokeAgreement(
            agreements_pb2.RevokeAgreementRequest(agreement_id=agreement_id, reason="audit"),
            timeout=TIMEOUT,
        )
        assert revoked.partner_notified
        for agency in (lapd, lasd):
            assert agency.agreement(agreement_id).state == agreements_pb2.AGREEMENT_STATE_REVOKED

    def test_shr4_renewal_refused_for_a_partner_on_the_sb34_list(
        self, agencies: dict[str, Agency]
    ) -> None:
        lapd, lasd = agencies[LAPD], agencies[LASD]
        agreement_id = propose(lapd)
        lasd.admin.AcceptAgreement(
            agreements_pb2.AcceptAgreementRequest(agreement_id=agreement_id), timeout=TIMEOUT
        )
        lapd.admin.ImportNonComplianceList(
            agreements_pb2.ImportNonComplianceListRequest(
                agencies=[agreements_pb2.NonCompliantAgency(name="Other", ori=LASD)],
                source="AG SB 34 list 2026-11",
            ),
            timeout=TIMEOUT,
        )
        renew = agreements_pb2.RenewAgreementRequest(
            agreement_id=agreement_id,
            starts_at=stamp(timedelta(days=90)),
            sunsets_at=stamp(timedelta(days=400)),
            reviewer="Lt. Ortiz",
            review_summary="reviewed",
        )
        with pytest.raises(grpc.RpcError) as raised:
            lapd.admin.RenewAgreement(renew, timeout=TIMEOUT)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SB 34" in str(raised.value.details())


class TestUniformDenials:
    """SHR-6: whatever the reason, a refused partner call looks the same, and is audited."""

    def call_propose(
        self,
        agencies: dict[str, Agency],
        federation: Federation,
        *,
        caller_ori: str,
        envelope: envelope_pb2.SignedEnvelope,
    ) -> grpc.RpcError:
        lasd = agencies[LASD]
        credentials = federation.client(caller_ori, PrincipalKind.NODE, "")
        with lasd.node.channel(credentials) as channel, pytest.raises(grpc.RpcError) as raised:
            federation_service_pb2_grpc.FederationServiceStub(channel).ProposeAgreement(
                federation_service_pb2.ProposeAgreementRequest(terms=envelope), timeout=TIMEOUT
            )
        return raised.value

    def test_shr6_every_refusal_is_answered_alike_and_audited(
        self, agencies: dict[str, Agency], federation: Federation
    ) -> None:
        lasd = agencies[LASD]
        forged = envelope_pb2.SignedEnvelope(
            payload=b"terms", payload_type="application/vnd.alpr.agreement-terms.v1+protobuf"
        )
        forged.signatures.add(key_id="0" * 64, signature=b"\x00" * 64)
        unsigned = envelope_pb2.SignedEnvelope(payload=b"terms")
        cases = [
            ("unknown peer: SPD is no peer of LASD", SPD, forged),
            ("bad signature from a registered peer", LAPD, forged),
            ("an envelope with no type or signature", LAPD, unsigned),
        ]
        errors = [
            self.call_propose(agencies, federation, caller_ori=ori, envelope=envelope)
            for _, ori, envelope in cases
        ]
        # The certificate no longer matches the SAN on record for LAPD: a record kept from
        # before UpdatePeer refused any SAN but the partner's node in our federation.
        lasd.node.services.peers.update(
            LAPD, {"spiffe_id": f"spiffe://elsewhere.alpr/agency/{LAPD}"}
        )
        errors.append(self.call_propose(agencies, federation, caller_ori=LAPD, envelope=forged))

        first = errors[0]
        for error in errors:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error.details() == DENIED
            assert error.trailing_metadata() == first.trailing_metadata()
        reasons = [json.loads(e.details)["reason"] for e in lasd.audit_events("exchange.denied")]
        assert reasons[0] == "no such peer"
        assert "signatures" in reasons[1]
        assert "no payload type" in reasons[2]
        assert reasons[3].startswith(f"certificate names spiffe://test.alpr/agency/{LAPD}")
        assert len(reasons) == 4

    def test_shr6_a_signed_but_malformed_notice_is_denied_not_an_internal_error(
        self, agencies: dict[str, Agency], federation: Federation
    ) -> None:
        lapd, lasd = agencies[LAPD], agencies[LASD]
        garbage = Envelope.sign(b"\xff\xff\xff", NOTICE_TYPE, lapd.node.services.sharing.signer)
        credentials = federation.client(LAPD, PrincipalKind.NODE, "")
        with lasd.node.channel(credentials) as channel, pytest.raises(grpc.RpcError) as raised:
            federation_service_pb2_grpc.FederationServiceStub(channel).RevokeAgreement(
                federation_service_pb2.RevokeAgreementRequest(notice=garbage.to_proto()),
                timeout=TIMEOUT,
            )
        assert (raised.value.code(), raised.value.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            DENIED,
        )
        [denial] = lasd.audit_events("exchange.denied")
        assert "not a RevocationNotice" in json.loads(denial.details)["reason"]


class TestPeers:
    def test_aud1_adding_changing_and_removing_a_peer_is_audited_with_its_key(
        self, agencies: dict[str, Agency]
    ) -> None:
        """A peer record is what every exchange with that partner is trusted by."""
        lapd, spd = agencies[LAPD], agencies[SPD]
        lapd.add_peer(spd)
        fingerprint = lapd.node.services.peers.require(SPD).fingerprint
        rotated = spd.node_key[::-1]  # a new key, read to us by phone
        lapd.admin.UpdatePeer(
            peers_pb2.UpdatePeerRequest(
                peer=peers_pb2.Peer(ori=SPD, signing_public_key=rotated),
                update_mask=field_mask_pb2.FieldMask(paths=["signing_public_key"]),
            ),
            timeout=TIMEOUT,
        )
        new_fingerprint = lapd.node.services.peers.require(SPD).fingerprint
        lapd.admin.RemovePeer(peers_pb2.RemovePeerRequest(ori=SPD), timeout=TIMEOUT)
        events = [e for e in lapd.node.services.audit.events() if e.kind.startswith("peer.")]
        said = [(e.kind, json.loads(e.details)) for e in events if SPD in e.details]
        assert [(kind, details["ori"]) for kind, details in said] == [
            ("peer.added", SPD),
            ("peer.updated", SPD),
            ("peer.removed", SPD),
        ]
        added, updated, removed = (details for _, details in said)
        assert added["fingerprint"] == fingerprint
        assert updated["fields"] == ["signing_public_key"]
        assert (updated["fingerprint_before"], updated["fingerprint"]) == (
            fingerprint,
            new_fingerprint,
        )
        assert removed["fingerprint"] == new_fingerprint
        assert all(f"/agency/{LAPD}/" in e.actor for e in events)  # LAPD's operator
