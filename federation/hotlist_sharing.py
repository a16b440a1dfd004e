"""Sharing hotlists under agreements: answering a partner's pull, and pulling a partner's list."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from alpr.federation.v1 import exchange_pb2
from federation.agreements import Agreement, AgreementBook
from federation.client import PartnerClient, PartnerRefusedError
from federation.envelope import Envelope, parse_payload
from federation.errors import InvalidEnvelopeError
from federation.exchange import (
    ExchangeLedger,
    RequestChecker,
    digest,
    sign_acknowledgement,
    sign_receipt,
    sign_request,
    verify_receipt,
)
from federation.hotlist_exchange import OpenedSnapshot, open_snapshot, sign_snapshot
from federation.peers import Peer, PeerRegistry
from federation.terms import Grant
from federation.witness import Witness, Witnessed
from node.audit import AuditLog, TreeHead
from node.audit_checkpoints import CheckpointStore
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.errors import PreconditionError, UnavailableError
from node.hotlists.partner_store import PartnerHotlists
from node.hotlists.store import HotlistStore

HOTLIST = "hotlist"
SCHEDULED = "scheduled hotlist refresh"


@dataclass(frozen=True)
class PullResult:
    """What a pull brought: the version now held and counts of entries."""

    partner_ori: str
    exchange_id: str
    version: int
    added: int
    ended: int
    refused: int
    acknowledged: bool
    witnessed: Witnessed | None
    """What became of the partner's checkpoint in the receipt; None if it could not be
    witnessed now (the partner did not give a consistency proof)."""


@dataclass(frozen=True)
class _Pending:
    """A pull sent and answered, to be verified and stored."""

    peer: Peer
    agreement: Agreement
    request: exchange_pb2.ExchangeRequest
    envelope: Envelope
    user: str
    purpose: str


@dataclass(frozen=True, kw_only=True)
class HotlistSharing:
    """Both ends of hotlist exchanges for one node."""

    ori: str
    spiffe_id: str
    signer: Ed25519Signer
    peers: PeerRegistry
    agreements: AgreementBook
    checker: RequestChecker
    own: HotlistStore
    partner_lists: PartnerHotlists
    audit: AuditLog
    checkpoints: CheckpointStore
    witness: Witness
    ledger: ExchangeLedger
    client: PartnerClient
    clock: Clock

    def serve(self, request: Envelope, sender: Peer, peer_ip: str) -> tuple[Envelope, Envelope]:
        """Answer a partner's signed pull with a signed snapshot or delta, and a receipt.

        Raises:
            NodeError: Any check failed (the gate turns it into the uniform denial).
        """
        checked = self.checker.check(request, sender, Grant.RECEIVE_HOTLISTS)
        since = checked.request.hotlist.since_version
        if since > self.own.version():
            since = 0  # a version we never issued: send everything
        changes = self.own.changes_since(since)
        now = self.clock()
        snapshot = sign_snapshot(
            self.signer,
            changes=changes,
            since_version=since,
            issuer_ori=self.ori,
            recipient=sender,
            agreement_id=checked.agreement.id,
            now=now,
        )
        request_digest, response_digest = digest(checked.payload), digest(snapshot.payload)
        event = self.audit.append(
            "exchange.hotlist_served",
            actor=checked.request.requesting_user,
            agency=sender.ori,
            peer_ip=peer_ip,
            purpose=checked.request.purpose,
            case_number=checked.request.case_number,
            details={
                "exchange_id": checked.request.exchange_id,
                "agreement_id": checked.agreement.id,
                "version": changes.version,
                "since_version": since,
                "entries": len(changes.entry_ids),
                "ended": len(changes.ended),
                "request_digest": request_digest.hex(),
                "response_digest": response_digest.hex(),
            },
        )
        checkpoint = self.checkpoints.sign(TreeHead(event.tree_size, event.root))
        receipt = sign_receipt(
            self.signer,
            checked=checked,
            response_digest=response_digest,
            audit=event,
            checkpoint=checkpoint,
            now=now,
        )
        self.ledger.record(
            exchange_id=checked.request.exchange_id,
            partner_ori=sender.ori,
            we_responded=True,
            kind=HOTLIST,
            agreement_id=checked.agreement.id,
            request_digest=request_digest,
            response_digest=response_digest,
            receipt=receipt,
        )
        return snapshot, receipt

    def _accept(
        self, pending: _Pending, snapshot: Envelope, receipt: Envelope
    ) -> tuple[OpenedSnapshot, Envelope]:
        """Verify the receipt and the snapshot, store the list, audit; our acknowledgement."""
        peer, agreement, request, envelope = (
            pending.peer,
            pending.agreement,
            pending.request,
            pending.envelope,
        )
        user, purpose = pending.user, pending.purpose
        # The snapshot's signature first (HOT-7), then the receipt over its digest; nothing
        # is stored until both hold.
        opened = open_snapshot(
            snapshot,
            issuer=peer,
            recipient=self.signer,
            recipient_ori=self.ori,
            agreement_id=agreement.id,
            now=self.clock(),
        )
        verify_receipt(
            receipt,
            peer,
            request=request,
            request_payload=envelope.payload,
            response_digest=opened.received.digest,
        )
        self.partner_lists.store(opened.received, opened.entries, opened.ended)
        for entry_id, plate, reason in opened.refused:
            self.audit.append(
                "hotlist.refused",
                actor=user,
                agency=self.ori,
                details={
                    "issuer": peer.ori,
                    "entry_id": entry_id,
                    "plate": plate,
                    "reason": reason,
                },
            )
        event = self.audit.append(
            "exchange.hotlist_received",
            actor=user,
            agency=self.ori,
            purpose=purpose,
            case_number=SCHEDULED,
            details={
                "exchange_id": request.exchange_id,
                "partner": peer.ori,
                "agreement_id": agreement.id,
                "version": opened.received.version,
                "entries": len(opened.entries.entry_ids),
                "ended": len(opened.ended),
                "refused": len(opened.refused),
                "receipt_digest": digest(receipt.payload).hex(),
            },
        )
        acknowledgement = sign_acknowledgement(
            self.signer, receipt=receipt, requester_ori=self.ori, audit=event, now=self.clock()
        )
        self.ledger.record(
            exchange_id=request.exchange_id,
            partner_ori=peer.ori,
            we_responded=False,
            kind=HOTLIST,
            agreement_id=agreement.id,
            request_digest=digest(envelope.payload),
            response_digest=opened.received.digest,
            receipt=receipt,
            acknowledgement=acknowledgement,
        )
        return opened, acknowledgement

    def _audit_rejection(self, pending: _Pending, error: InvalidEnvelopeError) -> None:
        """Record that a partner's answer failed verification (HOT-7): nothing of it was kept."""
        self.audit.append(
            "exchange.hotlist_rejected",
            actor=pending.user,
            agency=self.ori,
            purpose=pending.purpose,
            case_number=SCHEDULED,
            details={
                "exchange_id": pending.request.exchange_id,
                "partner": pending.peer.ori,
                "agreement_id": pending.agreement.id,
                "reason": error.diagnostics(),
            },
        )

    async def pull(self, partner_ori: str, *, requesting_user: str = "") -> PullResult:
        """Fetch a partner's list under the agreement in force, verify it, store it, acknowledge.

        Raises:
            NotFoundError: The partner is not registered.
            PreconditionError: No agreement in force lets us receive its hotlists.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: The partner refused.
            InvalidEnvelopeError: The snapshot or receipt does not verify; nothing was stored,
                and the rejection is audited as ``exchange.hotlist_rejected``.
        """
        peer = self.peers.require(partner_ori)
        agreement = self.agreements.in_force(
            partner_ori, Grant.RECEIVE_HOTLISTS, grantor=partner_ori
        )
        if agreement is None:
            raise PreconditionError(f"no agreement in force lets us receive {partner_ori}'s lists")
        purpose = agreement.terms.purposes[0]
        user = requesting_user or self.spiffe_id
        request, envelope = sign_request(
            self.signer,
            agreement=agreement,
            requesting_ori=self.ori,
            requesting_user=user,
            purpose=purpose,
            case_number=SCHEDULED,
            now=self.clock(),
            hotlist_since=self.partner_lists.held_version(partner_ori),
        )
        pending = _Pending(peer, agreement, request, envelope, user, purpose)
        try:
            snapshot, receipt = await self.client.get_hotlist(peer, envelope)
            # Verifying, decrypting and storing a large list takes seconds: not on the event loop.
            opened, acknowledgement = await asyncio.to_thread(
                self._accept, pending, snapshot, receipt
            )
        except InvalidEnvelopeError as error:
            self._audit_rejection(pending, error)
            raise
        try:
            await self.client.acknowledge_receipt(peer, acknowledgement)
            acknowledged = True
        except (UnavailableError, PartnerRefusedError):
            acknowledged = False  # the partner's ledger flags it unacknowledged
        checkpoint = parse_payload(exchange_pb2.Receipt, receipt.payload).checkpoint
        try:
            witnessed: Witnessed | None = await self.witness.observe(peer, checkpoint)
        except (UnavailableError, PartnerRefusedError):
            witnessed = None  # the scheduled witnessing job asks again
        return PullResult(
            partner_ori,
            request.exchange_id,
            opened.received.version,
            len(opened.entries.entry_ids),
            len(opened.ended),
            len(opened.refused),
            acknowledged,
            witnessed,
        )
