"""Hotlists pulled between real nodes: signed, sealed, receipted on both sides, and never stale."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from alpr.admin.v1 import admin_service_pb2, agreements_pb2, partner_hotlists_pb2, peers_pb2
from alpr.common.v1 import hotlist_pb2
from alpr.federation.v1 import (
    agreement_pb2,
    exchange_pb2,
    federation_service_pb2,
    federation_service_pb2_grpc,
)
from alpr.federation.v1.federation_service_pb2 import GetHotlistResponse
from federation import acknowledgements, hotlist_sharing
from federation.client import (
    PartnerClient,
    PartnerFailedError,
    PartnerRefusedError,
    PartnerTimeoutError,
)
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.exchange import ALLOWED_SKEW, check_exchange, sign_request
from federation.gate import DENIED
from federation.hotlist_sharing import HotlistSharing, PullResult
from federation.peers import Peer
from federation.receipting import Receipting
from federation.witness import Witnessed
from gateway.cli import main
from gateway.servicers.federation import hotlist_responses
from gateway.tls import TLSConfig
from node.ed25519 import DataKey, Ed25519Key, Ed25519Signer
from node.errors import PreconditionError, UnavailableError
from node.hotlists.codec import CHUNK_SIZE, EntryChunk, entry_chunks
from node.hotlists.entry import FORBIDDEN_REASON, HotlistEntry, ListType
from node.hotlists.partner_store import STAGED_A_TRANSACTION
from node.hotlists.store import Changes, HotlistStore, OutgoingChanges
from node.identity import PrincipalKind
from node.matching import IndexedEntry, IndexedList
from node.reads import NewRead
from node.store import create_engine
from tests.support.agencies import TIMEOUT, Agency, agree, running_agencies
from tests.support.clock import ManualClock
from tests.support.operator import Operator
from tests.support.pki import LAPD, LASD, SPD, Federation
from tests.support.simulator import through_simulator

RECEIVE = agreement_pb2.GRANT_RECEIVE_HOTLISTS
ASK = agreement_pb2.GRANT_ASK_PLATE_QUERIES
STOLEN = HotlistEntry(
    plate="7ABC123",
    state="CA",
    list_type=ListType.STOLEN_VEHICLE,
    reason="armed and dangerous",
    contact="LASD Auto Theft",
)
PARTIAL = HotlistEntry(plate="8XY?4*", list_type=ListType.AMBER_ALERT, reason="AMBER 26-3")


@pytest.fixture
def pair(
    federation: Federation,
    tmp_path: Path,
    database_url: str,
    partner_database_url: str,
    clock: ManualClock,
) -> Iterator[tuple[Agency, Agency, str]]:
    """LAPD and LASD, both on each engine; LASD lets LAPD receive its hotlists, not the reverse."""
    stores = {LAPD: database_url, LASD: partner_database_url}
    with running_agencies(federation, tmp_path, clock, (LAPD, LASD), stores) as found:
        lapd, lasd = found[LAPD], found[LASD]
        lapd.add_peer(lasd)
        lasd.add_peer(lapd)
        agreement_id = agree(lasd, lapd, we_grant=[RECEIVE], they_grant=[])
        lasd.node.services.hotlists.create_list("stolen")
        lasd.node.services.hotlists.add("stolen", [STOLEN, PARTIAL])
        yield lapd, lasd, agreement_id


def pull(agency: Agency, partner: str) -> PullResult:
    return agency.node.run(agency.node.services.sharing.pull(partner))


def hits_of_a_read(agency: Agency, clock: ManualClock, plate: str = "7ABC123") -> int:
    """How many hits a camera's read of `plate` raises at `agency` now."""
    read = NewRead(plate=plate, confidence=0.9, captured_at=clock())
    return len(agency.node.services.reads.commit("cam-1", [read]).hit_cursors)


def _until(condition: Callable[[], bool]) -> bool:
    """Whether `condition` came true within `TIMEOUT`: for what a node does on its own."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class TestPull:
    def test_succeeds_and_the_list_is_used_with_fields_decrypted(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, _, _ = pair
        result = pull(lapd, LASD)
        assert (result.added, result.refused, result.acknowledged) == (2, 0, True)
        [hit] = lapd.node.services.partner_lists.find("7ABC123")
        assert (hit.issuer_ori, hit.list_name, hit.entry) == (LASD, "stolen", STOLEN)
        [partial] = lapd.node.services.partner_lists.find("8XY947")
        assert partial.entry.is_partial
        assert lapd.node.services.partner_lists.find("7ABC124") == []

    def test_connecting_first_starts_the_handshake_before_any_call(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        """A pull connects before it reads and signs, so the TLS handshake overlaps that work."""
        lapd, _, _ = pair
        config = lapd.node.config
        tls = TLSConfig.from_files(ca=config.tls_ca, cert=config.tls_cert, key=config.tls_key)
        client = PartnerClient(tls.channel_credentials())
        peer = lapd.node.services.peers.require(LASD)

        async def connect_and_wait() -> grpc.ChannelConnectivity:
            client.connect(peer)
            channel = client._channel(peer.endpoint)  # the channel connect() opened
            idle = grpc.ChannelConnectivity.IDLE
            if channel.get_state() is idle:  # without connect(), it would stay idle
                await asyncio.wait_for(channel.wait_for_state_change(idle), 10)
            await asyncio.wait_for(channel.channel_ready(), 10)
            state = channel.get_state()
            await client.close()
            return state

        assert lapd.node.run(connect_and_wait()) is grpc.ChannelConnectivity.READY

    def test_aud6_both_sides_hold_the_others_signature(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        key_of = {a.ori: Ed25519Key(a.node_key) for a in (lapd, lasd)}
        for agency, partner in ((lapd, LASD), (lasd, LAPD)):
            [record] = agency.node.services.ledger.exchanges()
            check = check_exchange(record, ours=key_of[agency.ori], theirs=[key_of[partner]])
            assert check.problems == []
        assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []
        served = lasd.audit_events("exchange.hotlist_served")
        assert json.loads(served[0].details)["entries"] == 2

    def test_aud7_the_answer_proves_the_partners_log_so_witnessing_it_is_no_call(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lapd, _, _ = pair
        services = lapd.node.services
        assert pull(lapd, LASD).witnessed is Witnessed.COSIGNED  # the first: nothing to prove
        first = services.witness.held(LASD)
        assert first is not None
        asked: list[object] = []
        proofs = services.partners.consistency_proofs

        async def counted(*args: object) -> list[list[bytes]]:
            asked.append(args)
            return await proofs(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(services.partners, "consistency_proofs", counted)
        assert pull(lapd, LASD).witnessed is Witnessed.VERIFIED  # kept, cosigned a minute ago
        second = services.witness.held(LASD)
        assert second is not None
        assert (second.size > first.size, asked) == (True, [])

    def test_hot6_entries_stop_matching_at_24h_and_are_purged(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, _, _ = pair
        pull(lapd, LASD)
        lists = lapd.node.services.partner_lists
        clock.advance(timedelta(hours=24) - timedelta(seconds=1))
        assert len(lists.find("7ABC123")) == 1
        assert hits_of_a_read(lapd, clock) == 1  # a camera's read still raises a hit on it
        assert lists.purge_expired() == []
        clock.advance(timedelta(seconds=2))
        assert lists.find("7ABC123") == []
        assert hits_of_a_read(lapd, clock) == 0  # at that instant, before any purge
        assert lists.purge_expired() == [LASD]
        assert lists.entry_count(LASD) == 0

    @pytest.mark.parametrize("revoker", ["receiver", "issuer"])
    def test_shr2_a_revocation_on_either_side_stops_the_list_at_once(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock, revoker: str
    ) -> None:
        """Revoked, a partner's list raises no hit and is purged, its 24 hours not run out."""
        lapd, lasd, agreement_id = pair
        pull(lapd, LASD)
        services = lapd.node.services
        assert hits_of_a_read(lapd, clock) == 1
        side = lapd if revoker == "receiver" else lasd
        side.admin.RevokeAgreement(
            agreements_pb2.RevokeAgreementRequest(agreement_id=agreement_id, reason="audit"),
            timeout=TIMEOUT,
        )  # the issuer's revocation reaches the receiver as its notice
        assert services.partner_lists.find("7ABC123") == []
        assert hits_of_a_read(lapd, clock) == 0
        assert services.partner_lists.purge_expired() == [LASD]

    def test_shr3_the_list_stops_at_the_agreements_sunset(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        """A list pulled an hour before the sunset is used for that hour, not 24."""
        lapd, _, agreement_id = pair
        sunset = lapd.node.services.agreements.require(agreement_id).terms.sunsets_at
        clock.advance(sunset - clock() - timedelta(hours=1))
        pull(lapd, LASD)
        clock.advance(timedelta(hours=1) - timedelta(seconds=1))
        assert hits_of_a_read(lapd, clock) == 1
        clock.advance(timedelta(seconds=1))
        assert hits_of_a_read(lapd, clock) == 0  # at that instant, before any job ran
        assert lapd.node.services.partner_lists.purge_expired() == [LASD]

    def test_hot5_a_cancellation_reaches_the_partner_in_the_next_delta(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        [stolen] = [
            s
            for s in lasd.node.services.hotlists.entries(limit=10).entries
            if s.entry.plate == "7ABC123"
        ]
        lasd.node.services.hotlists.cancel(stolen.entry_id)
        clock.advance(timedelta(hours=6))
        result = pull(lapd, LASD)
        assert (result.added, result.ended) == (0, 1)
        assert lapd.node.services.partner_lists.find("7ABC123") == []
        assert len(lapd.node.services.partner_lists.find("8XY947")) == 1

    def test_hot5_a_list_replaced_ends_what_it_dropped_in_the_partners_next_delta(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        """An entry kept is not sent again; one dropped stops matching on both sides."""
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        new = replace(STOLEN, plate="7ABC124")
        replaced = lasd.node.services.hotlists.replace("stolen", [STOLEN, new])
        assert (replaced.kept, len(replaced.added), len(replaced.removed)) == (1, 1, 1)
        clock.advance(timedelta(hours=6))
        result = pull(lapd, LASD)
        assert (result.added, result.ended) == (1, 1)
        assert lapd.node.services.partner_lists.find("8XY947") == []
        assert len(lapd.node.services.partner_lists.find("7ABC123")) == 1
        assert len(lapd.node.services.partner_lists.find("7ABC124")) == 1
        assert hits_of_a_read(lasd, clock, "8XY947") == 0
        assert hits_of_a_read(lasd, clock, "7ABC124") == 1

    def test_hot1_a_delta_patches_the_match_index_a_snapshot_replaces_it(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A delta must not make the next camera read rebuild a million-entry list."""
        lapd, lasd, _ = pair
        services = lapd.node.services
        whole: list[str] = []
        put_list = services.index.index.put_list

        def counted(info: IndexedList, entries: Iterable[IndexedEntry] = ()) -> None:
            whole.append(info.list_id)
            put_list(info, entries)

        monkeypatch.setattr(services.index.index, "put_list", counted)

        def hits(plate: str) -> int:
            read = NewRead(plate=plate, confidence=0.9, captured_at=clock())
            return len(services.reads.commit("cam-1", [read]).hit_cursors)

        pull(lapd, LASD)
        assert (hits("7ABC123"), whole) == (1, [LASD])
        [added] = lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate="7ABC124")])
        lasd.node.services.hotlists.cancel(
            lasd.node.services.hotlists.entries(limit=1).entries[0].entry_id
        )
        pull(lapd, LASD)
        pull(lapd, LASD)  # two deltas, one of them empty
        assert (hits("7ABC124"), hits("7ABC123"), hits("8XY947"), whole) == (1, 0, 1, [LASD])
        monkeypatch.setattr(hotlist_sharing, "MAX_DELTA_ENTRIES", 0)
        lasd.node.services.hotlists.remove(added.entry_id)
        lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate="7ABC125")])
        pull(lapd, LASD)  # a full snapshot
        assert (hits("7ABC125"), hits("7ABC124"), whole) == (1, 0, [LASD, LASD])

    def test_a_delta_too_large_to_hold_comes_as_a_full_snapshot(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lapd, lasd, _ = pair
        monkeypatch.setattr(hotlist_sharing, "MAX_DELTA_ENTRIES", 2)
        pull(lapd, LASD)
        hotlists = lasd.node.services.hotlists
        hotlists.add("stolen", [replace(STOLEN, plate="7ABC124")] * 2)
        assert pull(lapd, LASD).added == 2  # two: still a delta
        [ended] = hotlists.add("stolen", [replace(STOLEN, plate="7ABC125")])
        hotlists.remove(ended.entry_id)
        hotlists.add("stolen", [replace(STOLEN, plate="7ABC126")] * 2)
        result = pull(lapd, LASD)
        assert (result.version, result.added, result.ended) == (5, 6, 0)  # the whole list
        served = [json.loads(e.details) for e in lasd.audit_events("exchange.hotlist_served")]
        assert [d["since_version"] for d in served] == [0, 1, 0]
        assert len(lapd.node.services.partner_lists.find("7ABC126")) == 2
        assert lapd.node.services.partner_lists.find("7ABC125") == []

    def test_a_pull_asked_for_during_another_waits_and_asks_for_what_changed_since(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate="7ABC124")])
        sharing = lapd.node.services.sharing

        async def two_pulls() -> tuple[PullResult, ...]:
            return await asyncio.gather(sharing.pull(LASD), sharing.pull(LASD))

        # Whichever came first to the turn took the new entry; the other found nothing new.
        first, second = sorted(lapd.node.run(two_pulls()), key=lambda result: -result.added)
        assert (first.version, first.added, first.acknowledged) == (2, 1, True)
        assert (second.version, second.added, second.acknowledged) == (2, 0, True)
        served = [json.loads(e.details) for e in lasd.audit_events("exchange.hotlist_served")]
        assert [d["since_version"] for d in served] == [0, 1, 2]

    def test_aud6_a_delta_another_process_took_first_is_acknowledged_not_taken(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        """Two processes pull the same delta; the one that commits second cannot apply it."""
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate="7ABC124")])
        sharing = lapd.node.services.sharing
        other_process = replace(sharing)  # the same store, pulls not kept apart from ours

        async def two_pulls() -> tuple[PullResult | BaseException, ...]:
            return await asyncio.gather(
                sharing.pull(LASD), other_process.pull(LASD), return_exceptions=True
            )

        outcomes = lapd.node.run(two_pulls())
        [taken] = [o for o in outcomes if isinstance(o, PullResult)]
        [overtaken] = [o for o in outcomes if not isinstance(o, PullResult)]
        assert isinstance(overtaken, PreconditionError)
        assert "applies to version 1, we hold 2" in str(overtaken)
        assert (taken.version, taken.added, taken.acknowledged) == (2, 1, True)
        assert len(lapd.node.services.partner_lists.find("7ABC124")) == 1
        assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []
        received = [json.loads(e.details) for e in lapd.audit_events("exchange.hotlist_received")]
        assert sorted(d["taken"] for d in received) == [False, True, True]
        [why] = [d["why"] for d in received if not d["taken"]]
        assert why == str(overtaken)

    @pytest.mark.parametrize("delta", [False, True], ids=["snapshot", "delta"])
    def test_aud6_a_list_is_taken_only_with_our_audit_event_and_acknowledgement(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch, delta: bool
    ) -> None:
        """If our event or acknowledgement cannot be kept, the list is not taken either."""
        lapd, lasd, _ = pair
        if delta:
            pull(lapd, LASD)
            lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate="7ABC124")])
        lists, held = lapd.node.services.partner_lists, 1 if delta else 0

        def failing(*_: object, **__: object) -> Envelope:
            raise OSError("the disk is full")

        with monkeypatch.context() as patched:
            patched.setattr(Receipting, "acknowledge", failing)
            with pytest.raises(OSError, match="the disk is full"):
                pull(lapd, LASD)
        assert (lists.held_version(LASD), lists.find("7ABC124")) == (held, [])
        assert len(lapd.audit_events("exchange.hotlist_received")) == held
        with _engine(lapd) as engine, engine.connect() as connection:
            chunks = connection.execute(text("SELECT count(*) FROM partner_chunk")).scalar()
        assert chunks == held  # a snapshot's staged chunks discarded
        result = pull(lapd, LASD)
        assert (result.version, result.acknowledged) == (2 if delta else 1, True)
        assert len(lists.find("7ABC124")) == (1 if delta else 0)


class TestServing:
    def test_a_partner_call_waiting_on_the_database_holds_up_no_other_call(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Admission and each partner call's database work run off the node's event loop."""
        lapd, lasd, _ = pair
        gate = lasd.node.services.gate
        admit, entered, go_on = gate.admit, threading.Event(), threading.Event()

        def slow_admit(*args: Any, **kwargs: Any) -> Peer:
            entered.set()  # as a database slow to answer, or a write lock held elsewhere
            go_on.wait(3 * TIMEOUT)
            return admit(*args, **kwargs)

        monkeypatch.setattr(gate, "admit", slow_admit)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pulling = pool.submit(pull, lapd, LASD)
            try:
                assert entered.wait(TIMEOUT)
                # LASD answers its operator while LAPD's pull waits on LASD's database.
                info = lasd.admin.GetNodeInfo(
                    admin_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT
                )
            finally:
                go_on.set()
            assert info.node.ori == LASD
            assert pulling.result(TIMEOUT).acknowledged

    def test_shr2_a_list_being_sent_stops_once_its_agreement_is_revoked(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Revocation stops all flow at once: the rest of a list under way is not sent."""
        lapd, lasd, agreement_id = pair
        hotlists = lasd.node.services.hotlists
        hotlists.add("stolen", [replace(STOLEN, plate=f"{n:07d}") for n in range(CHUNK_SIZE)])
        outgoing, revoked = hotlists.outgoing_since, threading.Event()

        def paused_after_the_first_chunk(version: int) -> OutgoingChanges:
            changes = outgoing(version)

            def chunks() -> Iterator[EntryChunk]:
                yield next(changes.chunks)
                assert revoked.wait(TIMEOUT)
                yield from changes.chunks

            return replace(changes, chunks=chunks())

        monkeypatch.setattr(hotlists, "outgoing_since", paused_after_the_first_chunk)
        monkeypatch.setattr(hotlist_sharing, "IN_FORCE_CHECKED_EVERY", 1)
        credentials = federation.client(LAPD, PrincipalKind.NODE, "")
        _, envelope = sign_request(
            lapd.node.services.sharing.signer,
            agreement=lapd.node.services.agreements.require(agreement_id),
            requesting_ori=LAPD,
            requesting_user=f"spiffe://test.alpr/agency/{LAPD}/user/det-1",
            purpose="stolen vehicle recovery",
            case_number="26-001",
            now=clock(),
            query=exchange_pb2.HotlistQuery(since_version=0),
        )
        with lasd.node.channel(credentials) as channel:
            stub = federation_service_pb2_grpc.FederationServiceStub(channel)
            answer = stub.GetHotlist(
                federation_service_pb2.GetHotlistRequest(request=envelope.to_proto()),
                timeout=TIMEOUT,
            )
            assert next(iter(answer)).HasField("snapshot")
            lasd.node.services.agreements.revoke(agreement_id, "audit finding")
            revoked.set()
            with pytest.raises(grpc.RpcError) as raised:
                list(answer)
        assert isinstance(raised.value, grpc.Call)
        assert rpc_status.from_call(raised.value) == UNIFORM_DENIAL
        [denial] = [json.loads(e.details) for e in lasd.audit_events("exchange.denied")]
        assert "ended after 1 chunks" in denial["reason"]


class TestDenials:
    def test_shr3_nothing_flows_after_the_sunset(
        self, pair: tuple[Agency, Agency, str], clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        clock.advance(timedelta(days=90))
        with pytest.raises(Exception, match="no agreement in force"):
            pull(lapd, LASD)
        assert lasd.audit_events("exchange.denied") == []  # refused before asking

    def test_fails_after_revocation_with_the_uniform_denial(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, agreement_id = pair
        lasd.node.services.agreements.revoke(agreement_id, "partner left the program")
        # LAPD was not told (we revoke on LASD's side only): its pull is refused by LASD.
        with pytest.raises(PartnerRefusedError, match=DENIED):
            pull(lapd, LASD)
        [denial] = lasd.audit_events("exchange.denied")
        assert "no agreement in force" in json.loads(denial.details)["reason"]

    def test_fails_for_the_wrong_direction(self, pair: tuple[Agency, Agency, str]) -> None:
        _, lasd, _ = pair
        with pytest.raises(Exception, match="no agreement in force"):
            pull(lasd, LAPD)  # LAPD granted LASD nothing


# What a refused partner learns, whatever the reason (SHR-6): the code, one fixed message, and
# an ErrorInfo that names nothing but the denial. Nothing more travels in the trailers.
UNIFORM_DENIAL = status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message=DENIED)
UNIFORM_DENIAL.details.add().Pack(
    error_details_pb2.ErrorInfo(reason="PERMISSION_DENIED", domain="alpr.gateway")
)


@dataclass(frozen=True)
class RawPull:
    """A signed pull sent straight to LASD's FederationService, past LAPD's own checks.

    Attributes:
        caller_ori: Whose certificate the call presents.
        caller_kind: Of what: a node's, a user's or a device's (named `caller_name`).
        agreement_id: The agreement the request names; "" for the one in force.
        signer: Who signs the request; None for LAPD's node key.
        purpose: The purpose it states.
        skew: How far its time is from the responder's clock.
        times: How often the same signed request is sent (a replay sends it twice).
        later: How long after the one before each later copy is sent, the responder's
            purge job having forgotten the nonces it may forget meanwhile.
        query: What it asks.
    """

    caller_ori: str = LAPD
    caller_kind: PrincipalKind = PrincipalKind.NODE
    caller_name: str = ""
    agreement_id: str = ""
    signer: Ed25519Signer | None = None
    purpose: str = "stolen vehicle recovery"
    skew: timedelta = timedelta(0)
    times: int = 1
    later: timedelta = timedelta(0)
    query: exchange_pb2.HotlistQuery | exchange_pb2.ReadQuery = field(
        default_factory=lambda: exchange_pb2.HotlistQuery(since_version=0)
    )


@dataclass(frozen=True)
class Scene:
    """What a denial case may change before the pull is sent."""

    lapd: Agency
    lasd: Agency
    agreement_id: str
    clock: ManualClock


def _unknown_peer(_: Scene) -> RawPull:
    return RawPull(caller_ori=SPD)


def _partners_user(_: Scene) -> RawPull:
    return RawPull(caller_kind=PrincipalKind.USER, caller_name="det-1")


def _partners_device(_: Scene) -> RawPull:
    return RawPull(caller_kind=PrincipalKind.DEVICE, caller_name="cam-1")


def _our_own_node(_: Scene) -> RawPull:
    return RawPull(caller_ori=LASD)


def _san_mismatch(scene: Scene) -> RawPull:
    elsewhere = f"spiffe://elsewhere.alpr/agency/{LAPD}"
    scene.lasd.node.services.peers.update(LAPD, {"spiffe_id": elsewhere})
    return RawPull()


def _bad_signature(_: Scene) -> RawPull:
    return RawPull(signer=Ed25519Signer.generate())


def _no_agreement(_: Scene) -> RawPull:
    return RawPull(agreement_id=str(uuid.uuid4()))


def _wrong_direction(scene: Scene) -> RawPull:
    # An agreement in force, but LAPD letting LASD receive, not the reverse.
    reverse = agree(scene.lapd, scene.lasd, we_grant=[RECEIVE], they_grant=[])
    return RawPull(agreement_id=reverse)


def _wrong_scope(scene: Scene) -> RawPull:
    # An agreement in force in the right direction, but for plate queries only.
    queries = agree(scene.lasd, scene.lapd, we_grant=[ASK], they_grant=[])
    return RawPull(agreement_id=queries)


def _purpose_not_agreed(_: Scene) -> RawPull:
    return RawPull(purpose="civil immigration")


def _expired(scene: Scene) -> RawPull:
    scene.clock.advance(timedelta(days=90))  # the sunset
    return RawPull()


def _revoked(scene: Scene) -> RawPull:
    scene.lasd.node.services.agreements.revoke(scene.agreement_id, "audit finding")
    return RawPull()


def _ahead(_: Scene) -> RawPull:
    return RawPull(skew=timedelta(minutes=6))


def _behind(_: Scene) -> RawPull:
    return RawPull(skew=-timedelta(minutes=6))


def _replayed(_: Scene) -> RawPull:
    return RawPull(times=2)


def _replayed_at_the_skews_edge(_: Scene) -> RawPull:
    """Dated as far ahead as the skew allows, and sent again as far behind as it allows."""
    return RawPull(skew=ALLOWED_SKEW, times=2, later=2 * ALLOWED_SKEW)


def _not_a_pull(_: Scene) -> RawPull:
    return RawPull(query=exchange_pb2.ReadQuery(plate="7ABC123"))


# Each way a partner's pull is refused, and what the responder's own audit log says of it.
DENIALS = [
    pytest.param(_unknown_peer, "no such peer", id="unknown-peer"),
    pytest.param(_partners_user, "user/det-1 is no partner's node", id="partners-user"),
    pytest.param(_partners_device, "device/cam-1 is no partner's node", id="partners-device"),
    pytest.param(_our_own_node, f"agency/{LASD} is no partner's node", id="our-own-node"),
    pytest.param(_san_mismatch, "peer record spiffe://elsewhere.alpr", id="san-mismatch"),
    pytest.param(_bad_signature, "signatures", id="bad-signature"),
    pytest.param(_no_agreement, "we hold no such agreement", id="no-agreement"),
    pytest.param(_wrong_direction, f"we grant {LAPD} no receive_hotlists", id="wrong-direction"),
    pytest.param(_wrong_scope, f"we grant {LAPD} no receive_hotlists", id="wrong-scope"),
    pytest.param(_purpose_not_agreed, "purpose 'civil immigration'", id="purpose"),
    pytest.param(_expired, "outside its term", id="expired"),
    pytest.param(_revoked, "it is revoked", id="revoked"),
    pytest.param(_ahead, "outside the skew", id="ahead-of-skew"),
    pytest.param(_behind, "outside the skew", id="behind-skew"),
    pytest.param(_replayed, "used before", id="replay"),
    pytest.param(_replayed_at_the_skews_edge, "used before", id="replay-at-the-skews-edge"),
    pytest.param(_not_a_pull, "not a hotlist pull", id="not-a-pull"),
]


class TestUniformDenialsAtTheResponder:
    """SHR-6: a pull sent straight to the responder, past the requester's own checks."""

    @pytest.mark.parametrize(("prepare", "reason"), DENIALS)
    def test_shr6_every_denial_is_answered_alike_and_audited(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        clock: ManualClock,
        prepare: Callable[[Scene], RawPull],
        reason: str,
    ) -> None:
        lapd, lasd, agreement_id = pair
        raw = prepare(Scene(lapd, lasd, agreement_id, clock))
        *answered, refused = _send_raw_pull(lapd, lasd, federation, raw, clock)
        assert answered == [None] * (raw.times - 1)  # a replay's first copy was fine
        assert refused is not None
        assert (refused.code(), refused.details()) == (grpc.StatusCode.PERMISSION_DENIED, DENIED)
        assert isinstance(refused, grpc.Call)
        assert rpc_status.from_call(refused) == UNIFORM_DENIAL
        assert [item.key for item in refused.trailing_metadata()] == ["grpc-status-details-bin"]
        [denial] = [json.loads(e.details) for e in lasd.audit_events("exchange.denied")]
        assert (denial["method"], denial["responder"]) == ("GetHotlist", LASD)
        assert reason in denial["reason"]
        assert len(lasd.audit_events("exchange.hotlist_served")) == raw.times - 1


def _send_raw_pull(
    lapd: Agency, lasd: Agency, federation: Federation, raw: RawPull, clock: ManualClock
) -> list[grpc.RpcError | None]:
    """Send a signed pull, as `raw` describes it, to LASD; what each sending got back."""
    services = lapd.node.services
    template = services.agreements.list(LASD)[0]  # sign_request reads its id and parties
    terms = replace(template.terms, agreement_id=raw.agreement_id or template.id)
    _, envelope = sign_request(
        raw.signer or services.sharing.signer,
        agreement=replace(template, terms=terms),
        requesting_ori=LAPD,
        requesting_user=f"spiffe://test.alpr/agency/{LAPD}/user/det-1",
        purpose=raw.purpose,
        case_number="26-001",
        now=clock() + raw.skew,
        query=raw.query,
    )
    outcomes: list[grpc.RpcError | None] = []
    credentials = federation.client(raw.caller_ori, raw.caller_kind, raw.caller_name)
    with lasd.node.channel(credentials) as channel:
        stub = federation_service_pb2_grpc.FederationServiceStub(channel)
        for copy in range(raw.times):
            if copy:
                clock.advance(raw.later)
                lasd.node.services.checker.forget_old_nonces()
            try:
                answer = stub.GetHotlist(
                    federation_service_pb2.GetHotlistRequest(request=envelope.to_proto()),
                    timeout=10,
                )
                list(answer)
                outcomes.append(None)
            except grpc.RpcError as error:
                outcomes.append(error)
    return outcomes


FORBIDDEN_PLATE = "4IMM123"


class _SmugglingStore(HotlistStore):
    """An issuer's store that also hands out an entry its own import would refuse (ACC-7)."""

    def outgoing_since(self, version: int) -> OutgoingChanges:
        """The real changes, and one civil-immigration entry."""
        real = super().outgoing_since(version)
        forbidden = hotlist_pb2.HotlistEntryFields(
            list_type=ListType.CIVIL_IMMIGRATION.value, reason="detainer", list_name="stolen"
        )
        smuggled = entry_chunks([str(uuid.uuid4())], [FORBIDDEN_PLATE], [forbidden])
        return OutgoingChanges.of(Changes(real.version, [*real.chunks, *smuggled], real.ended))


def _flipped(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _manifest_altered(answer: list[GetHotlistResponse]) -> None:
    answer[0].snapshot.payload = _flipped(answer[0].snapshot.payload)


def _receipt_altered(answer: list[GetHotlistResponse]) -> None:
    answer[0].receipt.payload = _flipped(answer[0].receipt.payload)


def _plate_altered(answer: list[GetHotlistResponse]) -> None:
    assert STOLEN.plate.encode() in answer[1].chunk
    answer[1].chunk = answer[1].chunk.replace(b"7ABC123", b"7ABC128")


def _chunk_dropped(answer: list[GetHotlistResponse]) -> None:
    del answer[-1]


def _last_altered(answer: list[GetHotlistResponse]) -> None:
    chunk = exchange_pb2.HotlistChunk.FromString(answer[-1].chunk)
    chunk.plates = chunk.plates.replace(b"0", b"1", 1)
    answer[-1].chunk = chunk.SerializeToString()


def _pull_refused(
    pair: tuple[Agency, Agency, str],
    federation: Federation,
    alter: Callable[[list[GetHotlistResponse]], None],
    reason: str,
) -> None:
    """LAPD pulls LASD's list, changed in transit by `alter`, and refuses it for `reason`."""
    lapd, lasd, _ = pair

    def altered(request: federation_service_pb2.GetHotlistRequest) -> list[GetHotlistResponse]:
        answer = simulator.forward_hotlist(request)
        alter(answer)
        return answer

    with through_simulator(lapd, lasd, federation) as simulator:
        simulator.answer_hotlist = altered
        with pytest.raises(InvalidEnvelopeError, match=reason):
            pull(lapd, LASD)


class TestAnswersTheRequesterRefuses:
    def test_a_partner_that_stalls_mid_stream_is_given_up_on_and_nothing_is_stored(
        self, pair: tuple[Agency, Agency, str], federation: Federation
    ) -> None:
        lapd, lasd, _ = pair
        released = threading.Event()

        def stalling(
            request: federation_service_pb2.GetHotlistRequest,
        ) -> Iterator[GetHotlistResponse]:
            yield simulator.forward_hotlist(request)[0]  # the manifest, then nothing
            released.wait(30)

        config = lapd.node.config
        tls = TLSConfig.from_files(ca=config.tls_ca, cert=config.tls_cert, key=config.tls_key)
        client = PartnerClient(tls.channel_credentials(), hotlist_stall=0.2)
        sharing = replace(lapd.node.services.sharing, client=client)
        with through_simulator(lapd, lasd, federation) as simulator:
            simulator.answer_hotlist = stalling
            try:
                with pytest.raises(PartnerTimeoutError, match=r"sent nothing of .* for 0\.2 s"):
                    lapd.node.run(sharing.pull(LASD))
            finally:
                released.set()
        lists = lapd.node.services.partner_lists
        assert (lists.entry_count(LASD), lists.held_version(LASD)) == (0, 0)
        assert lapd.audit_events("exchange.hotlist_received") == []

    @pytest.mark.parametrize(
        ("alter", "reason"),
        [(_chunk_dropped, "ended before all its chunks came"), (_last_altered, "not the one")],
        ids=["stream cut", "last chunk altered"],
    )
    def test_a_list_failing_after_batches_were_written_leaves_nothing_written(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        alter: Callable[[list[GetHotlistResponse]], None],
        reason: str,
    ) -> None:
        lapd, lasd, _ = pair
        more = (STAGED_A_TRANSACTION + 1) * CHUNK_SIZE
        plates = [f"{n:07d}" for n in range(more)]
        lasd.node.services.hotlists.add("stolen", [replace(STOLEN, plate=p) for p in plates])
        _pull_refused(pair, federation, alter, reason)
        with _engine(lapd) as engine, engine.connect() as connection:
            written = connection.execute(text("SELECT count(*) FROM partner_chunk")).scalar()
        assert written == 0
        assert lapd.node.services.partner_lists.find(plates[0]) == []

    @pytest.mark.parametrize(
        ("alter", "reason"),
        [
            (_manifest_altered, "signatures"),
            (_receipt_altered, "signatures"),
            (_plate_altered, "chunk 0 is not the one signed"),
            (_chunk_dropped, "ended before all its chunks came"),
        ],
        ids=["manifest", "receipt", "chunk", "stream cut"],
    )
    def test_hot7_an_answer_altered_in_transit_is_refused_before_any_entry_is_stored(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        alter: Callable[[list[GetHotlistResponse]], None],
        reason: str,
    ) -> None:
        lapd, lasd, _ = pair
        _pull_refused(pair, federation, alter, reason)
        lists = lapd.node.services.partner_lists
        assert (lists.entry_count(LASD), lists.held_version(LASD)) == (0, 0)
        assert lists.find(STOLEN.plate) == []
        [rejected] = [json.loads(e.details) for e in lapd.audit_events("exchange.hotlist_rejected")]
        assert (rejected["partner"], reason in rejected["reason"]) == (LASD, True)
        assert lapd.audit_events("exchange.hotlist_received") == []
        assert lapd.node.services.ledger.exchanges() == []
        # LASD answered and was never acknowledged: its ledger flags the exchange.
        [flagged] = lasd.node.services.ledger.unacknowledged(timedelta(0))
        assert flagged.id == rejected["exchange_id"]

    def test_acc7_a_forbidden_category_from_a_partner_is_refused_and_audited(
        self, pair: tuple[Agency, Agency, str], federation: Federation, clock: ManualClock
    ) -> None:
        lapd, lasd, _ = pair
        config = lasd.node.config
        with _engine(lasd) as engine, through_simulator(lapd, lasd, federation) as simulator:
            key = DataKey.load_or_create(config.data_key)
            smuggling = _SmugglingStore(engine, data_key=key, clock=clock)
            sharing = replace(lasd.node.services.sharing, own=smuggling)
            requester = lasd.node.services.peers.require(LAPD)

            def serve(
                request: federation_service_pb2.GetHotlistRequest,
            ) -> list[GetHotlistResponse]:
                request_envelope = Envelope.from_proto(request.request)
                snapshot, receipt = sharing.serve(request_envelope, requester, "127.0.0.1")
                return list(hotlist_responses(snapshot, receipt))

            simulator.answer_hotlist = serve
            result = pull(lapd, LASD)
        assert (result.added, result.refused, result.acknowledged) == (2, 1, True)
        assert lapd.node.services.partner_lists.find(FORBIDDEN_PLATE) == []
        assert len(lapd.node.services.partner_lists.find(STOLEN.plate)) == 1
        [refusal] = [json.loads(e.details) for e in lapd.audit_events("hotlist.refused")]
        assert (refusal["issuer"], refusal["plate"], refusal["reason"]) == (
            LASD,
            FORBIDDEN_PLATE,
            f"list_type: {FORBIDDEN_REASON}",
        )
        [received] = lapd.audit_events("exchange.hotlist_received")
        assert json.loads(received.details)["refused"] == 1


class TestReceiptsVerify:
    def run_verify(self, agency: Agency, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = main(["receipts", "verify", str(agency.node.config.directory)])
        out, err = capsys.readouterr()
        assert code in (0, 1), err
        return code, out

    def test_aud6_succeeds_on_both_sides(
        self, pair: tuple[Agency, Agency, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        for agency in (lapd, lasd):
            code, out = self.run_verify(agency, capsys)
            assert code == 0
            assert "ok: both signatures verify" in out
            assert "1 exchanges: 1 complete, 0 unacknowledged (flagged), 0 failing" in out

    def test_aud6_what_a_partner_signed_before_its_key_was_replaced_still_verifies(
        self,
        pair: tuple[Agency, Agency, str],
        capsys: pytest.CaptureFixture[str],
        clock: ManualClock,
    ) -> None:
        lapd, _, _ = pair
        pull(lapd, LASD)  # signed under LASD's key of then
        clock.advance(timedelta(days=30))
        rotated = Ed25519Signer.generate().public_key.public_bytes  # read to us by phone
        lapd.admin.UpdatePeer(
            peers_pb2.UpdatePeerRequest(
                peer=peers_pb2.Peer(ori=LASD, signing_public_key=rotated),
                update_mask=field_mask_pb2.FieldMask(paths=["signing_public_key"]),
            ),
            timeout=TIMEOUT,
        )
        code, out = self.run_verify(lapd, capsys)
        assert code == 0, out
        assert "1 exchanges: 1 complete, 0 unacknowledged (flagged), 0 failing" in out

    @pytest.mark.parametrize(
        "failure",
        [
            UnavailableError("partner CA0190000 went off the network"),
            PartnerFailedError("partner CA0190000 refused: INTERNAL database locked"),
        ],
        ids=["unreachable", "failing on its side"],
    )
    def test_aud6_an_acknowledgement_the_partner_missed_is_given_again(
        self,
        pair: tuple[Agency, Agency, str],
        monkeypatch: pytest.MonkeyPatch,
        failure: Exception,
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)  # only the stop delivers
        lapd, lasd, _ = pair
        partners = lapd.node.services.partners
        reachable = partners.acknowledge_receipts

        async def unreachable_once(peer: Peer, given: Sequence[Envelope]) -> object:
            monkeypatch.setattr(partners, "acknowledge_receipts", reachable)
            raise failure

        monkeypatch.setattr(partners, "acknowledge_receipts", unreachable_once)
        result = pull(lapd, LASD)
        assert (result.acknowledged, result.witnessed) == (False, Witnessed.COSIGNED)
        [flagged] = lasd.node.services.ledger.unacknowledged(timedelta(0))
        assert flagged.id == result.exchange_id
        assert [ori for ori, _ in lapd.node.services.ledger.owed()] == [LASD]
        lapd.node.run(lapd.node.services.queries.settled())
        assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []
        assert lapd.node.services.ledger.owed() == []

    def test_aud6_acknowledgements_a_partner_too_busy_to_keep_are_given_until_kept(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failure of the partner's database is no refusal: nothing owed is dropped."""
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 0.05)  # then 0.1 s, 0.2 s ...
        lapd, lasd, _ = pair
        ledger = lasd.node.services.ledger
        accept, busy = ledger.accept_acknowledgements, [2]

        def locked_twice(*args: Any, **kwargs: Any) -> Any:
            if busy[0]:
                busy[0] -= 1
                raise OperationalError("UPDATE exchange", {}, sqlite3.OperationalError("locked"))
            return accept(*args, **kwargs)

        monkeypatch.setattr(ledger, "accept_acknowledgements", locked_twice)
        result = pull(lapd, LASD)
        assert not result.acknowledged  # LASD's database failed as the pull gave it
        # Owed, then given alone (busy again), and again: kept.
        assert _until(lambda: ledger.unacknowledged(timedelta(0)) == [])
        assert busy == [0]
        assert lasd.audit_events("exchange.denied") == []

    @pytest.mark.parametrize("cancelled", ["taking the list", "closing"])
    def test_aud6_a_pull_cancelled_once_the_list_is_taken_still_closes_the_exchange(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch, cancelled: str
    ) -> None:
        """An operator's call timing out cancels its pull: LASD still gets our acknowledgement."""
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)  # no flush does it for us
        lapd, lasd, _ = pair
        services, entered, go_on = lapd.node.services, threading.Event(), threading.Event()
        if cancelled == "taking the list":
            acknowledge = Receipting.acknowledge

            def slow_acknowledge(*args: Any, **kwargs: Any) -> Envelope:
                entered.set()  # in the worker thread, inside the transaction taking the list
                go_on.wait(TIMEOUT)
                return acknowledge(*args, **kwargs)

            monkeypatch.setattr(Receipting, "acknowledge", slow_acknowledge)
        else:
            deliver = services.partners.acknowledge_receipts

            async def slow_delivery(peer: Peer, given: Sequence[Envelope]) -> object:
                entered.set()
                await asyncio.to_thread(go_on.wait, TIMEOUT)
                return await deliver(peer, given)

            monkeypatch.setattr(services.partners, "acknowledge_receipts", slow_delivery)
        pulling = asyncio.run_coroutine_threadsafe(services.sharing.pull(LASD), lapd.node.loop)
        try:
            assert entered.wait(TIMEOUT)
            assert pulling.cancel()
        finally:
            go_on.set()
        with pytest.raises(CancelledError):
            pulling.result(TIMEOUT)
        # Taken in its worker thread, which the cancel does not stop, then acknowledged.
        assert _until(lambda: len(services.partner_lists.find(STOLEN.plate)) == 1)
        assert _until(lambda: lasd.node.services.ledger.unacknowledged(timedelta(0)) == [])

    @pytest.mark.parametrize("failing", ["acknowledging", "witnessing"])
    def test_aud6_an_unexpected_failure_closing_the_exchange_leaves_the_rest_done(
        self, pair: tuple[Agency, Agency, str], monkeypatch: pytest.MonkeyPatch, failing: str
    ) -> None:
        lapd, lasd, _ = pair
        services = lapd.node.services

        async def broken(*args: object) -> object:
            raise RuntimeError("database is locked")

        if failing == "acknowledging":
            monkeypatch.setattr(services.partners, "acknowledge_receipts", broken)
        else:
            monkeypatch.setattr(services.witness, "observe_many", broken)
        result = pull(lapd, LASD)
        assert len(services.partner_lists.find("7ABC123")) == 1  # the list was taken
        if failing == "acknowledging":
            assert (result.acknowledged, result.witnessed) == (False, Witnessed.COSIGNED)
            [flagged] = lasd.node.services.ledger.unacknowledged(timedelta(0))
            assert flagged.id == result.exchange_id
        else:
            assert (result.acknowledged, result.witnessed) == (True, None)
            assert lasd.node.services.ledger.unacknowledged(timedelta(0)) == []

    def test_aud6_flags_an_unacknowledged_exchange_and_fails_a_forged_receipt(
        self, pair: tuple[Agency, Agency, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        with _engine(lasd) as engine, engine.begin() as connection:
            connection.execute(text("UPDATE exchange SET acknowledgement = NULL"))
        code, out = self.run_verify(lasd, capsys)
        assert (code, "1 unacknowledged (flagged)" in out) == (0, True)

        with _engine(lapd) as engine, engine.begin() as connection:
            receipt = connection.execute(text("SELECT receipt FROM exchange")).scalar_one()
            forged = replace(Envelope.from_bytes(receipt), payload=b"another receipt")
            connection.execute(text("UPDATE exchange SET receipt = :r"), {"r": forged.to_bytes()})
        code, out = self.run_verify(lapd, capsys)
        assert code == 1
        assert "receipt: not enough valid signatures" in out
        assert "1 failing" in out

    def test_aud6_a_batch_of_acknowledgements_keeps_each_good_one_and_names_the_bad(
        self, pair: tuple[Agency, Agency, str]
    ) -> None:
        lapd, lasd, _ = pair
        pull(lapd, LASD)
        [ours] = lapd.node.services.ledger.exchanges(LASD)
        assert ours.acknowledgement is not None
        with _engine(lasd) as engine, engine.begin() as connection:
            connection.execute(text("UPDATE exchange SET acknowledgement = NULL"))
        good = Envelope.from_bytes(ours.acknowledgement)
        forged = replace(good, payload=b"not our acknowledgement")
        lasd_peer = lapd.node.services.peers.require(LASD)
        client = lapd.node.services.partners
        refused = lapd.node.run(client.acknowledge_receipts(lasd_peer, [forged, good]))
        assert [index for index, _ in refused] == [0]
        [theirs] = lasd.node.services.ledger.exchanges(LAPD)
        assert theirs.acknowledgement == good.to_bytes()


@contextmanager
def _engine(agency: Agency) -> Iterator[Engine]:
    engine = create_engine(agency.node.config.store_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _database_locked(*_: object) -> NoReturn:
    raise OperationalError("INSERT INTO audit_event", {}, sqlite3.OperationalError("locked"))


class TestOperatorPull:
    @pytest.mark.parametrize(
        ("answer", "code", "said"),
        [
            (
                "refused",
                grpc.StatusCode.FAILED_PRECONDITION,
                f"refused: PERMISSION_DENIED {DENIED}",
            ),
            ("busy", grpc.StatusCode.UNAVAILABLE, "cannot answer now; try again"),
        ],
    )
    def test_fails_with_a_precise_status_saying_what_the_partner_answered(
        self,
        pair: tuple[Agency, Agency, str],
        monkeypatch: pytest.MonkeyPatch,
        answer: str,
        code: grpc.StatusCode,
        said: str,
    ) -> None:
        """Refused (the agreement revoked on its side), or its database failing: not INTERNAL."""
        lapd, lasd, agreement_id = pair
        if answer == "refused":
            lasd.node.services.agreements.revoke(agreement_id, "partner left the program")
        else:
            monkeypatch.setattr(HotlistSharing, "serve", _database_locked)  # only LASD serves
        with pytest.raises(grpc.RpcError) as raised:
            lapd.admin.PullPartnerHotlist(
                partner_hotlists_pb2.PullPartnerHotlistRequest(partner_ori=LASD), timeout=TIMEOUT
            )
        assert raised.value.code() is code
        assert said in str(raised.value.details())
        assert lapd.node.services.partner_lists.find(STOLEN.plate) == []

    def test_succeeds_through_the_admin_rpc_and_cli(
        self,
        pair: tuple[Agency, Agency, str],
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        lapd, _, _ = pair
        sergeant = Operator(lapd.node, federation, capsys, user="sgt-ray")
        out = sergeant("hotlists", "pull", LASD)
        assert f"pulled {LASD} to version 1: 2 added, 0 ended, 0 refused" in out
        assert "verified and acknowledged" in out
        [received] = lapd.audit_events("exchange.hotlist_received")
        assert received.actor == f"spiffe://test.alpr/agency/{LAPD}/user/sgt-ray"
        # Indexed for matching already: the next camera read does not index the list.
        assert lapd.node.services.index.index.size(LASD) == 2
