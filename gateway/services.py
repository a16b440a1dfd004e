"""The node's services, built once per process from an opened node directory."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from federation.acknowledgements import OwedAcknowledgements
from federation.agreements import AgreementBook
from federation.client import PartnerClient
from federation.exchange import ExchangeLedger, RequestChecker
from federation.gate import ExchangeGate
from federation.hotlist_sharing import HotlistSharing, PullResult
from federation.peers import PeerRegistry
from federation.plate_queries import PlateQueries
from federation.read_images import ReadImages
from federation.receipting import Receipting
from federation.witness import Witness, WitnessedLog
from gateway.node_dir import OpenedNode
from gateway.servicers.identity import NodeIdentityView
from node.audit import AuditLog
from node.audit_checkpoints import CheckpointStore
from node.capture.frames import MAX_FRAMES, FrameReader
from node.capture.limits import CameraRateLimit
from node.checkpoint import log_origin
from node.clock import Clock
from node.hit_broker import HitBroker
from node.hit_notices import FeedListener
from node.hits import HitFeed
from node.hotlists.partner_store import PartnerHotlists
from node.hotlists.store import HotlistStore
from node.identity import Principal, PrincipalKind
from node.matching.live import LiveIndex
from node.partner_requests import HeldQueries, PartnerRequests
from node.profile import PolicyProfile
from node.reads import MAX_READS, ImageStore, ReadIntake
from node.records import Corrections, Incidents
from node.retention import LegalHolds, RetentionKeeper
from node.search import ReadSearch
from node.session_watch import SessionWatch
from node.sessions import Sessions
from node.shared_reads import SharedReads
from node.users import UserDirectory

log = logging.getLogger("alpr.services")


@dataclass(frozen=True)
class Services:
    """What the servicers call; each is safe to share between concurrent calls."""

    identity: NodeIdentityView
    profile: PolicyProfile
    clock: Clock
    audit: AuditLog
    peers: PeerRegistry
    agreements: AgreementBook
    gate: ExchangeGate
    partners: PartnerClient
    hotlists: HotlistStore
    partner_lists: PartnerHotlists
    ledger: ExchangeLedger
    checker: RequestChecker
    checkpoints: CheckpointStore
    witness: Witness
    witnessed: WitnessedLog
    receipting: Receipting
    sharing: HotlistSharing
    index: LiveIndex
    hits: HitFeed
    broker: HitBroker
    reads: ReadIntake
    users: UserDirectory
    sessions: Sessions
    watch: SessionWatch
    search: ReadSearch
    requests: PartnerRequests
    held: HeldQueries
    queries: PlateQueries
    read_images: ReadImages
    holds: LegalHolds
    retention: RetentionKeeper
    corrections: Corrections
    incidents: Incidents
    notices: FeedListener | None
    frames: FrameReader
    frame_limit: CameraRateLimit
    read_limit: CameraRateLimit

    async def pull_partner(self, partner_ori: str, *, requesting_user: str = "") -> PullResult:
        """Pull a partner's hotlists (`HotlistSharing.pull`), then index the list taken.

        Indexing a full snapshot of a million entries for matching takes seconds: done
        here, off the event loop, rather than by the next camera read committed. If it
        fails, the pull stands and that read indexes the list instead.
        """
        result = await self.sharing.pull(partner_ori, requesting_user=requesting_user)
        try:
            await asyncio.to_thread(self.index.refresh)
        except Exception:
            log.exception("the match index was not refreshed after pulling %s", partner_ori)
        return result

    @classmethod
    def build(cls, node: OpenedNode, *, clock: Clock) -> Services:
        """Wire the services of `node`, all reading time from `clock`."""
        config = node.config
        peers = PeerRegistry(node.engine, clock=clock)
        audit = AuditLog(node.engine, clock=clock)
        agreements = AgreementBook(
            node.engine,
            ori=config.ori,
            federation=config.federation,
            signer=node.signer,
            peers=peers,
            clock=clock,
        )
        partners = PartnerClient(node.tls.channel_credentials())
        hotlists = HotlistStore(node.engine, data_key=node.data_key, clock=clock)
        partner_lists = PartnerHotlists(node.engine, data_key=node.data_key, clock=clock)
        ledger = ExchangeLedger(node.engine, clock=clock)
        checker = RequestChecker(node.engine, ori=config.ori, agreements=agreements, clock=clock)
        checkpoints = CheckpointStore(
            node.engine,
            signer=node.signer,
            origin=log_origin(config.federation, config.ori),
            clock=clock,
        )
        witness = Witness(
            node.engine,
            federation=config.federation,
            ori=config.ori,
            signer=node.signer,
            audit=audit,
            client=partners,
            clock=clock,
        )
        receipting = Receipting(
            ori=config.ori,
            signer=node.signer,
            audit=audit,
            checkpoints=checkpoints,
            ledger=ledger,
            witness=witness,
            client=partners,
            owed=OwedAcknowledgements(partners, ledger),
            clock=clock,
        )
        sharing = HotlistSharing(
            ori=config.ori,
            spiffe_id=Principal(config.federation, config.ori, PrincipalKind.NODE).spiffe_id,
            signer=node.signer,
            peers=peers,
            agreements=agreements,
            checker=checker,
            own=hotlists,
            partner_lists=partner_lists,
            audit=audit,
            receipting=receipting,
            client=partners,
            clock=clock,
        )
        index = LiveIndex(hotlists, partner_lists, ori=config.ori)
        hits = HitFeed(node.engine, data_key=node.data_key, clock=clock)
        broker = HitBroker(hits, poll_seconds=config.poll_seconds)
        images = ImageStore(config.images)
        holds = LegalHolds(node.engine, clock=clock)
        reads = ReadIntake(
            node.engine,
            images=images,
            index=index,
            feed=hits,
            clock=clock,
            on_commit=broker.wake,
            retrospective=timedelta(hours=config.retrospective_hours),
        )
        corrections = Corrections(node.engine, clock=clock)
        watch = SessionWatch(audit, clock=clock, poll_seconds=config.poll_seconds)
        users = UserDirectory(node.engine, clock=clock, on_change=watch.notify)
        sessions = Sessions(
            users,
            audit,
            signer=node.signer,
            ori=config.ori,
            clock=clock,
            lifetime=timedelta(minutes=config.session_minutes),
        )
        search = ReadSearch(node.engine, profile=node.profile, audit=audit, ori=config.ori)
        requests = PartnerRequests(node.engine, clock=clock)
        held = HeldQueries(node.engine, clock=clock)
        shared = SharedReads(node.engine, clock=clock)
        return cls(
            identity=node.identity,
            profile=node.profile,
            clock=clock,
            audit=audit,
            peers=peers,
            agreements=agreements,
            gate=ExchangeGate(peers, audit, ori=config.ori),
            partners=partners,
            hotlists=hotlists,
            partner_lists=partner_lists,
            ledger=ledger,
            checker=checker,
            checkpoints=checkpoints,
            witness=witness,
            witnessed=WitnessedLog(
                ori=config.ori, audit=audit, checkpoints=checkpoints, ledger=ledger
            ),
            receipting=receipting,
            sharing=sharing,
            index=index,
            hits=hits,
            broker=broker,
            reads=reads,
            users=users,
            sessions=sessions,
            watch=watch,
            search=search,
            requests=requests,
            held=held,
            queries=PlateQueries(
                ori=config.ori,
                peers=peers,
                agreements=agreements,
                checker=checker,
                search=search,
                receipting=receipting,
                client=partners,
                requests=requests,
                held=held,
                shared=shared,
                approve_each_request=node.profile.sharing.approve_each_request,
                per_minute=config.queries_per_minute,
            ),
            read_images=ReadImages(
                ori=config.ori,
                peers=peers,
                agreements=agreements,
                checker=checker,
                ledger=ledger,
                receipting=receipting,
                client=partners,
                shared=shared,
                images=images,
                per_minute=config.queries_per_minute,
            ),
            holds=holds,
            retention=RetentionKeeper(
                node.engine,
                retention=node.profile.retention,
                holds=holds,
                images=images,
                audit=audit,
                clock=clock,
            ),
            corrections=corrections,
            incidents=Incidents(node.engine, clock=clock),
            notices=FeedListener.for_engine(node.engine, broker.wake),
            frames=FrameReader(
                config.model_files,
                thresholds=config.read_thresholds,
                workers=config.capture_workers or None,
            ),
            frame_limit=CameraRateLimit(
                unit="frames", per_second=config.frames_per_second, clock=clock, burst=MAX_FRAMES
            ),
            read_limit=CameraRateLimit(
                unit="reads", per_second=config.reads_per_second, clock=clock, burst=MAX_READS
            ),
        )
