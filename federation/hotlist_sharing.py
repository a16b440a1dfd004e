"""Sharing hotlists under agreements: answering a partner's pull, and pulling a partner's list."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from alpr.federation.v1 import exchange_pb2
from federation.agreements import AgreementBook
from federation.client import PartnerClient
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.exchange import RequestChecker, verify_receipt
from federation.hotlist_exchange import OpenedSnapshot, open_snapshot, sign_snapshot
from federation.peers import Peer, PeerRegistry
from federation.receipting import Receipting, SentRequest
from federation.terms import Grant
from federation.witness import Witnessed
from node.audit import AuditLog
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.errors import PreconditionError
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
    receipting: Receipting
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
        receipt = self.receipting.receipt_for(
            checked,
            sender,
            snapshot,
            kind=HOTLIST,
            peer_ip=peer_ip,
            details={
                "version": changes.version,
                "since_version": since,
                "entries": len(changes.entry_ids),
                "ended": len(changes.ended),
            },
        )
        return snapshot, receipt

    def _accept(
        self, sent: SentRequest, snapshot: Envelope, receipt: Envelope
    ) -> tuple[OpenedSnapshot, Envelope]:
        """Verify the receipt and the snapshot, store the list, audit; our acknowledgement."""
        peer = sent.peer
        # The snapshot's signature first (HOT-7), then the receipt over its digest; nothing
        # is stored until both hold.
        opened = open_snapshot(
            snapshot,
            issuer=peer,
            recipient=self.signer,
            recipient_ori=self.ori,
            agreement_id=sent.agreement.id,
            now=self.clock(),
        )
        verify_receipt(
            receipt,
            peer,
            request=sent.request,
            request_payload=sent.envelope.payload,
            response_digest=opened.received.digest,
        )
        self.partner_lists.store(opened.received, opened.entries, opened.ended)
        for entry_id, plate, reason in opened.refused:
            self.audit.append(
                "hotlist.refused",
                actor=sent.user,
                agency=self.ori,
                details={
                    "issuer": peer.ori,
                    "entry_id": entry_id,
                    "plate": plate,
                    "reason": reason,
                },
            )
        acknowledgement = self.receipting.acknowledge(
            sent,
            receipt,
            opened.received.digest,
            kind=HOTLIST,
            details={
                "version": opened.received.version,
                "entries": len(opened.entries.entry_ids),
                "ended": len(opened.ended),
                "refused": len(opened.refused),
            },
        )
        return opened, acknowledgement

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
        sent = self.receipting.sign(
            peer,
            agreement,
            user=requesting_user or self.spiffe_id,
            purpose=agreement.terms.purposes[0],
            case_number=SCHEDULED,
            query=exchange_pb2.HotlistQuery(
                since_version=self.partner_lists.held_version(partner_ori)
            ),
        )
        try:
            snapshot, receipt = await self.client.get_hotlist(peer, sent.envelope)
            # Verifying, decrypting and storing a large list takes seconds: not on the event loop.
            opened, acknowledgement = await asyncio.to_thread(self._accept, sent, snapshot, receipt)
        except InvalidEnvelopeError as error:
            self.receipting.reject(sent, kind=HOTLIST, problem=error.diagnostics())
            raise
        closed = await self.receipting.close(peer, receipt, acknowledgement)
        return PullResult(
            partner_ori,
            sent.request.exchange_id,
            opened.received.version,
            len(opened.entries.entry_ids),
            len(opened.ended),
            len(opened.refused),
            closed.acknowledged,
            closed.witnessed,
        )
