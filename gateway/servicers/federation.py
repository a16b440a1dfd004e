"""FederationService: what partner nodes call. Every refusal is the uniform denial (SHR-6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from alpr.federation.v1 import federation_service_pb2 as pb
from alpr.federation.v1 import federation_service_pb2_grpc as pb_grpc
from federation.client import Answered, Carried
from federation.envelope import Envelope
from federation.hotlist_exchange import SignedSnapshot
from federation.peers import Peer
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.services import Services
from node.hotlists.store import CHUNKS_A_READ


class FederationServicer(pb_grpc.FederationServiceServicer):
    """Serves partner nodes."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    @contextmanager
    def _partner(self, method: str, context: Context) -> Iterator[Peer]:
        """Admit the calling partner; deny uniformly whatever fails inside."""
        caller, address = current_caller(), peer_ip(context)
        gate = self._services.gate
        peer = gate.admit(caller, method=method, peer_ip=address)
        with gate.guard(caller, method=method, peer_ip=address):
            yield peer

    async def GetNodeInfo(  # noqa: N802 (gRPC method name)
        self, request: pb.GetNodeInfoRequest, context: Context
    ) -> pb.GetNodeInfoResponse:
        """Describe this node, so a partner can pin its key after an out-of-band check."""
        return pb.GetNodeInfoResponse(node=self._services.identity.to_proto())

    async def ProposeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.ProposeAgreementRequest, context: Context
    ) -> pb.ProposeAgreementResponse:
        """Take a partner's signed proposal for our operator to accept."""
        with self._partner("ProposeAgreement", context) as peer:
            agreement = self._services.agreements.receive_proposal(
                Envelope.from_proto(request.terms), peer
            )
            self._audit_agreement("agreement.proposal_received", peer, agreement.id, context)
        return pb.ProposeAgreementResponse()

    async def AcceptAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.AcceptAgreementRequest, context: Context
    ) -> pb.AcceptAgreementResponse:
        """Activate our proposal, countersigned by the partner."""
        with self._partner("AcceptAgreement", context) as peer:
            agreement = self._services.agreements.receive_acceptance(
                Envelope.from_proto(request.terms), peer
            )
            self._audit_agreement("agreement.activated", peer, agreement.id, context)
        return pb.AcceptAgreementResponse()

    async def RevokeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.RevokeAgreementRequest, context: Context
    ) -> pb.RevokeAgreementResponse:
        """Revoke an agreement because the partner did."""
        with self._partner("RevokeAgreement", context) as peer:
            agreement = self._services.agreements.receive_revocation(
                Envelope.from_proto(request.notice), peer
            )
            self._audit_agreement("agreement.revoked_by_partner", peer, agreement.id, context)
        return pb.RevokeAgreementResponse()

    async def GetHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.GetHotlistRequest, context: Context
    ) -> AsyncIterator[pb.GetHotlistResponse]:
        """Answer a signed pull: our signed manifest and a receipt (AUD-6), then the chunks.

        Chunks are read and encrypted in a worker thread, `CHUNKS_A_READ` at a time, as
        the partner takes them: a slow partner holds a few chunks of ours, not the list.
        """
        services, address = self._services, peer_ip(context)

        def answer(peer: Peer) -> tuple[SignedSnapshot, Envelope, tuple[bytes, ...] | None]:
            signed = Envelope.from_proto(request.request)
            snapshot, receipt = services.sharing.serve(signed, peer, address)
            return snapshot, receipt, services.receipting.proof_for(request.witnessed_size, receipt)

        with self._partner("GetHotlist", context) as peer:
            snapshot, receipt, proof = await asyncio.to_thread(answer, peer)
        responses = hotlist_responses(snapshot, receipt, proof)
        yield next(responses)  # the manifest and receipt: the partner checks them meanwhile
        while batch := await asyncio.to_thread(list, islice(responses, CHUNKS_A_READ)):
            for response in batch:
                yield response

    async def QueryReads(  # noqa: N802 (gRPC method name)
        self, request: pb.QueryReadsRequest, context: Context
    ) -> pb.QueryReadsResponse:
        """Answer a partner's signed plate query with our signed answer and a receipt."""
        with self._partner("QueryReads", context) as peer:
            answered = await self._served(self._services.queries.serve, request, peer, context)
        return pb.QueryReadsResponse(**_answered(answered))

    async def GetReadImages(  # noqa: N802 (gRPC method name)
        self, request: pb.GetReadImagesRequest, context: Context
    ) -> pb.GetReadImagesResponse:
        """Answer a partner's signed request for images of reads we sent it, with a receipt."""
        with self._partner("GetReadImages", context) as peer:
            answered = await self._served(self._services.read_images.serve, request, peer, context)
        return pb.GetReadImagesResponse(**_answered(answered))

    async def _served(
        self,
        serve: Callable[[Envelope, Peer, str], tuple[Envelope, Envelope]],
        request: pb.QueryReadsRequest | pb.GetReadImagesRequest,
        peer: Peer,
        context: Context,
    ) -> Answered:
        """Keep what the request carries and answer it by `serve`, off the event loop."""
        carried = Carried(
            [Envelope.from_proto(envelope) for envelope in request.acknowledgements],
            request.witnessed_size,
        )
        envelope, address = Envelope.from_proto(request.request), peer_ip(context)
        return await asyncio.to_thread(
            self._services.receipting.served,
            carried,
            peer,
            lambda: serve(envelope, peer, address),
        )

    async def AcknowledgeReceipts(  # noqa: N802 (gRPC method name)
        self, request: pb.AcknowledgeReceiptsRequest, context: Context
    ) -> pb.AcknowledgeReceiptsResponse:
        """Keep a partner's signed acknowledgements of our receipts (AUD-6), each on its own."""
        with self._partner("AcknowledgeReceipts", context) as peer:
            refused = await asyncio.to_thread(
                self._services.ledger.accept_acknowledgements,
                [Envelope.from_proto(envelope) for envelope in request.acknowledgements],
                peer,
            )
        return pb.AcknowledgeReceiptsResponse(
            refused=[pb.RefusedAcknowledgement(index=i, reason=why) for i, why in refused]
        )

    async def GetCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: pb.GetCheckpointRequest, context: Context
    ) -> pb.GetCheckpointResponse:
        """Our audit log's latest checkpoint, signed now, for a partner to witness (AUD-7)."""
        self._witness("GetCheckpoint", context)
        return pb.GetCheckpointResponse(checkpoint=self._services.witnessed.checkpoint())

    async def GetConsistencyProofs(  # noqa: N802 (gRPC method name)
        self, request: pb.GetConsistencyProofsRequest, context: Context
    ) -> pb.GetConsistencyProofsResponse:
        """Prove our log at each old size is a prefix of it at the new size (AUD-7)."""
        self._witness("GetConsistencyProofs", context)
        proofs = await asyncio.to_thread(
            self._services.witnessed.consistency, request.old_sizes, request.new_size
        )
        return pb.GetConsistencyProofsResponse(
            proofs=[pb.ConsistencyPath(hashes=hashes) for hashes in proofs]
        )

    async def GetInclusionProof(  # noqa: N802 (gRPC method name)
        self, request: pb.GetInclusionProofRequest, context: Context
    ) -> pb.GetInclusionProofResponse:
        """Prove our audit event of an exchange with the caller is in our log (AUD-6, AUD-7)."""
        peer = self._witness("GetInclusionProof", context)
        return self._services.witnessed.inclusion(peer, request.exchange_id).to_proto()

    async def CosignCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: pb.CosignCheckpointRequest, context: Context
    ) -> pb.CosignCheckpointResponse:
        """Keep a partner's cosignature on one of our checkpoints (AUD-7)."""
        peer = self._witness("CosignCheckpoint", context)
        self._services.witnessed.cosigned(peer, request.checkpoint)
        return pb.CosignCheckpointResponse()

    async def ReportInconsistency(  # noqa: N802 (gRPC method name)
        self, request: pb.ReportInconsistencyRequest, context: Context
    ) -> pb.ReportInconsistencyResponse:
        """Raise the alarm a partner raised about two checkpoints of our log (AUD-7)."""
        peer = self._witness("ReportInconsistency", context)
        self._services.witnessed.reported(peer, request.held, request.offered, request.detail)
        return pb.ReportInconsistencyResponse()

    def _witness(self, method: str, context: Context) -> Peer:
        """Admit a registered partner to witness our log: no agreement needed, it outlives them."""
        return self._services.gate.admit(current_caller(), method=method, peer_ip=peer_ip(context))

    def _audit_agreement(self, kind: str, peer: Peer, agreement_id: str, context: Context) -> None:
        self._services.audit.append(
            kind,
            actor=peer.spiffe_id,
            agency=peer.ori,
            peer_ip=peer_ip(context),
            details={"agreement_id": agreement_id},
        )


def hotlist_responses(
    snapshot: SignedSnapshot, receipt: Envelope, proof: Sequence[bytes] | None = None
) -> Iterator[pb.GetHotlistResponse]:
    """GetHotlist's answer: the signed manifest, the receipt and `proof` first, then each chunk.

    `proof` is the consistency path the request's witnessed size asked for, if any.
    """
    yield pb.GetHotlistResponse(
        snapshot=snapshot.manifest.to_proto(),
        receipt=receipt.to_proto(),
        consistency=None if proof is None else pb.ConsistencyPath(hashes=proof),
    )
    for chunk in snapshot.chunks:
        yield pb.GetHotlistResponse(chunk=chunk)


def _answered(answered: Answered) -> dict[str, Any]:
    """The fields of a QueryReads or GetReadImages response that hold `answered`."""
    consistency = answered.consistency
    return {
        "answer": answered.answer.to_proto(),
        "receipt": answered.receipt.to_proto(),
        "consistency": None if consistency is None else pb.ConsistencyPath(hashes=consistency),
        "refused_acknowledgements": [
            pb.RefusedAcknowledgement(index=i, reason=why) for i, why in answered.refused
        ],
    }
