"""FederationService: what partner nodes call. Every refusal is the uniform denial (SHR-6).

Each call's database work, its admission included, runs in a worker thread, never on
the event loop: a partner's call waiting on the database (a PostgreSQL round trip, or
SQLite's write lock held by another process) holds up none of the node's other calls,
its patrol cars' alert streams among them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from alpr.common.v1 import envelope_pb2
from alpr.federation.v1 import federation_service_pb2 as pb
from alpr.federation.v1 import federation_service_pb2_grpc as pb_grpc
from federation.agreements import Agreement
from federation.client import Answered, Carried
from federation.envelope import Envelope
from federation.hotlist_exchange import SignedSnapshot
from federation.peers import Peer
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.services import Services
from node.hotlists.store import CHUNKS_A_READ

_T = TypeVar("_T")


class FederationServicer(pb_grpc.FederationServiceServicer):
    """Serves partner nodes."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self._services = services

    async def _for_partner(self, method: str, context: Context, work: Callable[[Peer], _T]) -> _T:
        """Admit the calling partner and do `work` for it in a worker thread.

        Whatever fails in `work` is the uniform, audited denial.
        """
        caller, address = current_caller(), peer_ip(context)
        gate = self._services.gate

        def admitted() -> _T:
            peer = gate.admit(caller, method=method, peer_ip=address)
            with gate.guard(caller, method=method, peer_ip=address):
                return work(peer)

        return await asyncio.to_thread(admitted)

    async def _for_witness(self, method: str, context: Context, work: Callable[[Peer], _T]) -> _T:
        """Admit a registered partner to witness our log and do `work` for it, in a worker thread.

        No agreement is needed: witnessing outlives agreements.
        """
        caller, address = current_caller(), peer_ip(context)
        gate = self._services.gate
        return await asyncio.to_thread(
            lambda: work(gate.admit(caller, method=method, peer_ip=address))
        )

    async def GetNodeInfo(  # noqa: N802 (gRPC method name)
        self, request: pb.GetNodeInfoRequest, context: Context
    ) -> pb.GetNodeInfoResponse:
        """Describe this node, so a partner can pin its key after an out-of-band check."""
        return pb.GetNodeInfoResponse(node=self._services.identity.to_proto())

    async def ProposeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.ProposeAgreementRequest, context: Context
    ) -> pb.ProposeAgreementResponse:
        """Take a partner's signed proposal for our operator to accept."""
        agreements = self._services.agreements
        await self._agreement_received(
            "ProposeAgreement",
            context,
            request.terms,
            agreements.receive_proposal,
            "agreement.proposal_received",
        )
        return pb.ProposeAgreementResponse()

    async def AcceptAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.AcceptAgreementRequest, context: Context
    ) -> pb.AcceptAgreementResponse:
        """Activate our proposal, countersigned by the partner."""
        agreements = self._services.agreements
        await self._agreement_received(
            "AcceptAgreement",
            context,
            request.terms,
            agreements.receive_acceptance,
            "agreement.activated",
        )
        return pb.AcceptAgreementResponse()

    async def RevokeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.RevokeAgreementRequest, context: Context
    ) -> pb.RevokeAgreementResponse:
        """Revoke an agreement because the partner did."""
        agreements = self._services.agreements
        await self._agreement_received(
            "RevokeAgreement",
            context,
            request.notice,
            agreements.receive_revocation,
            "agreement.revoked_by_partner",
        )
        return pb.RevokeAgreementResponse()

    async def _agreement_received(
        self,
        method: str,
        context: Context,
        signed: envelope_pb2.SignedEnvelope,
        receive: Callable[[Envelope, Peer], Agreement],
        kind: str,
    ) -> None:
        """Admit the partner, `receive` the agreement it `signed`, and audit it as `kind`."""
        address = peer_ip(context)

        def received(peer: Peer) -> None:
            agreement = receive(Envelope.from_proto(signed), peer)
            self._services.audit.append(
                kind,
                actor=peer.spiffe_id,
                agency=peer.ori,
                peer_ip=address,
                details={"agreement_id": agreement.id},
            )

        await self._for_partner(method, context, received)

    async def GetHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.GetHotlistRequest, context: Context
    ) -> AsyncIterator[pb.GetHotlistResponse]:
        """Answer a signed pull: our signed manifest and a receipt (AUD-6), then the chunks.

        Chunks are read and encrypted in a worker thread, `CHUNKS_A_READ` at a time, as
        the partner takes them: a slow partner holds a few chunks of ours, not the list.
        Whatever fails meanwhile (the agreement revoked midway) ends the stream with the
        uniform, audited denial.
        """
        services, address, caller = self._services, peer_ip(context), current_caller()

        def answer(peer: Peer) -> tuple[SignedSnapshot, Envelope, tuple[bytes, ...] | None]:
            signed = Envelope.from_proto(request.request)
            snapshot, receipt = services.sharing.serve(signed, peer, address)
            return snapshot, receipt, services.receipting.proof_for(request.witnessed_size, receipt)

        snapshot, receipt, proof = await self._for_partner("GetHotlist", context, answer)
        responses = hotlist_responses(snapshot, receipt, proof)
        yield next(responses)  # the manifest and receipt: the partner checks them meanwhile

        def next_batch() -> list[pb.GetHotlistResponse]:
            with services.gate.guard(caller, method="GetHotlist", peer_ip=address):
                return list(islice(responses, CHUNKS_A_READ))

        while batch := await asyncio.to_thread(next_batch):
            for response in batch:
                yield response

    async def QueryReads(  # noqa: N802 (gRPC method name)
        self, request: pb.QueryReadsRequest, context: Context
    ) -> pb.QueryReadsResponse:
        """Answer a partner's signed plate query with our signed answer and a receipt."""
        answered = await self._served("QueryReads", self._services.queries.serve, request, context)
        return pb.QueryReadsResponse(**_answered(answered))

    async def GetReadImages(  # noqa: N802 (gRPC method name)
        self, request: pb.GetReadImagesRequest, context: Context
    ) -> pb.GetReadImagesResponse:
        """Answer a partner's signed request for images of reads we sent it, with a receipt."""
        answered = await self._served(
            "GetReadImages", self._services.read_images.serve, request, context
        )
        return pb.GetReadImagesResponse(**_answered(answered))

    async def _served(
        self,
        method: str,
        serve: Callable[[Envelope, Peer, str], tuple[Envelope, Envelope]],
        request: pb.QueryReadsRequest | pb.GetReadImagesRequest,
        context: Context,
    ) -> Answered:
        """Admit the partner, keep what its request carries and answer it by `serve`."""
        address = peer_ip(context)

        def answer(peer: Peer) -> Answered:
            carried = Carried(
                [Envelope.from_proto(envelope) for envelope in request.acknowledgements],
                request.witnessed_size,
            )
            envelope = Envelope.from_proto(request.request)
            return self._services.receipting.served(
                carried, peer, lambda: serve(envelope, peer, address)
            )

        return await self._for_partner(method, context, answer)

    async def AcknowledgeReceipts(  # noqa: N802 (gRPC method name)
        self, request: pb.AcknowledgeReceiptsRequest, context: Context
    ) -> pb.AcknowledgeReceiptsResponse:
        """Keep a partner's signed acknowledgements of our receipts (AUD-6), each on its own."""
        refused = await self._for_partner(
            "AcknowledgeReceipts",
            context,
            lambda peer: self._services.ledger.accept_acknowledgements(
                [Envelope.from_proto(envelope) for envelope in request.acknowledgements], peer
            ),
        )
        return pb.AcknowledgeReceiptsResponse(
            refused=[pb.RefusedAcknowledgement(index=i, reason=why) for i, why in refused]
        )

    async def GetCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: pb.GetCheckpointRequest, context: Context
    ) -> pb.GetCheckpointResponse:
        """Our audit log's latest checkpoint, signed now, for a partner to witness (AUD-7)."""
        witnessed = self._services.witnessed
        checkpoint = await self._for_witness(
            "GetCheckpoint", context, lambda peer: witnessed.checkpoint()
        )
        return pb.GetCheckpointResponse(checkpoint=checkpoint)

    async def GetConsistencyProofs(  # noqa: N802 (gRPC method name)
        self, request: pb.GetConsistencyProofsRequest, context: Context
    ) -> pb.GetConsistencyProofsResponse:
        """Prove our log at each old size is a prefix of it at the new size (AUD-7)."""
        witnessed = self._services.witnessed
        proofs = await self._for_witness(
            "GetConsistencyProofs",
            context,
            lambda peer: witnessed.consistency(request.old_sizes, request.new_size),
        )
        return pb.GetConsistencyProofsResponse(
            proofs=[pb.ConsistencyPath(hashes=hashes) for hashes in proofs]
        )

    async def GetInclusionProof(  # noqa: N802 (gRPC method name)
        self, request: pb.GetInclusionProofRequest, context: Context
    ) -> pb.GetInclusionProofResponse:
        """Prove our audit event of an exchange with the caller is in our log (AUD-6, AUD-7)."""
        witnessed = self._services.witnessed
        answer = await self._for_witness(
            "GetInclusionProof",
            context,
            lambda peer: witnessed.inclusion(peer, request.exchange_id),
        )
        return answer.to_proto()

    async def CosignCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: pb.CosignCheckpointRequest, context: Context
    ) -> pb.CosignCheckpointResponse:
        """Keep a partner's cosignature on one of our checkpoints (AUD-7)."""
        witnessed = self._services.witnessed
        await self._for_witness(
            "CosignCheckpoint", context, lambda peer: witnessed.cosigned(peer, request.checkpoint)
        )
        return pb.CosignCheckpointResponse()

    async def ReportInconsistency(  # noqa: N802 (gRPC method name)
        self, request: pb.ReportInconsistencyRequest, context: Context
    ) -> pb.ReportInconsistencyResponse:
        """Raise the alarm a partner raised about two checkpoints of our log (AUD-7)."""
        witnessed = self._services.witnessed
        await self._for_witness(
            "ReportInconsistency",
            context,
            lambda peer: witnessed.reported(peer, request.held, request.offered, request.detail),
        )
        return pb.ReportInconsistencyResponse()


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
