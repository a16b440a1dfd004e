"""The client a node uses to call its partners' FederationService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio

from alpr.federation.v1 import federation_service_pb2 as pb
from alpr.federation.v1 import federation_service_pb2_grpc as pb_grpc
from federation.envelope import Envelope
from federation.errors import FederationError
from federation.peers import Peer
from node.errors import UnavailableError

DEFAULT_TIMEOUT_SECONDS = 10.0
# A full pull of a large list over a slow link streams for minutes: it may take up to an
# hour in all, but gives up once the partner sends nothing for HOTLIST_STALL_SECONDS.
HOTLIST_TIMEOUT_SECONDS = 3600.0
HOTLIST_STALL_SECONDS = 30.0
# The largest message taken from a partner: a delta's manifest names every entry it ends.
MAX_ANSWER_BYTES = 512 * 1024 * 1024
_Response = TypeVar("_Response")


@dataclass(frozen=True)
class Carried:
    """What a request answered with a receipt carries besides itself (AUD-6, AUD-7).

    Attributes:
        acknowledgements: Our acknowledgements of earlier exchanges with the partner, owed.
        witnessed_size: The size of the partner's log we witnessed last, or 0.
    """

    acknowledgements: Sequence[Envelope] = ()
    witnessed_size: int = 0


@dataclass(frozen=True)
class Answered:
    """A partner's answer with its receipt, unverified, and what came with them.

    Attributes:
        answer: Its signed answer.
        receipt: Its signed receipt.
        consistency: Its consistency path from the `Carried.witnessed_size` we sent to
            the receipt's tree size; None when it gave none.
        refused: The carried acknowledgements it did not keep: position, and why.
    """

    answer: Envelope
    receipt: Envelope
    consistency: tuple[bytes, ...] | None = None
    refused: Sequence[tuple[int, str]] = ()


_Carrying = TypeVar("_Carrying", pb.QueryReadsResponse, pb.GetReadImagesResponse)


class PartnerRefusedError(FederationError):
    """The partner answered, and refused.

    Attributes:
        final: Whether it refused the request itself (denied, invalid, not possible now),
            so that sending it again would be refused again; False for a
            `PartnerFailedError`.
    """

    final = True


class PartnerFailedError(PartnerRefusedError):
    """The partner answered with a failure on its side, which may pass.

    INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED …: the same request may be taken later.
    """

    final = False


class PartnerTimeoutError(UnavailableError):
    """The partner did not answer before the call's deadline."""


class PartnerClient:
    """Calls partner nodes over mTLS with this node's certificate."""

    def __init__(
        self,
        credentials: grpc.ChannelCredentials,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        hotlist_stall: float = HOTLIST_STALL_SECONDS,
        max_message_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        """Present `credentials` (our node certificate, trusting the federation CA).

        Args:
            credentials: Our node certificate and key, trusting the federation CA.
            timeout: Seconds each call may take.
            hotlist_stall: Seconds a hotlist pull waits for the partner's next message.
            max_message_bytes: The largest message taken (a delta's manifest).
        """
        self._credentials = credentials
        self._timeout = timeout
        self._hotlist_stall = hotlist_stall
        self._options = [("grpc.max_receive_message_length", max_message_bytes)]
        # One channel per partner endpoint and event loop (aio channels belong to their loop),
        # so calls after the first skip the connection and TLS handshake.
        self._channels: dict[tuple[asyncio.AbstractEventLoop, str], grpc.aio.Channel] = {}

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        """The open channel to `endpoint` on the running loop, made on first use."""
        key = (asyncio.get_running_loop(), endpoint)
        channel = self._channels.get(key)
        if channel is None:
            for stale in [k for k in self._channels if k[0].is_closed()]:
                del self._channels[stale]  # its loop is gone, and the channel with it
            channel = grpc.aio.secure_channel(endpoint, self._credentials, options=self._options)
            self._channels[key] = channel
        return channel

    def connect(self, peer: Peer) -> None:
        """Start connecting to `peer` (TCP and the TLS handshake) and return at once.

        A caller with local work to do before its call (reading what it holds, signing
        the request) calls this first, so that the handshake runs meanwhile in gRPC's
        own threads instead of after it. A channel already connected is left as it is.
        """
        self._channel(peer.endpoint).get_state(try_to_connect=True)

    async def close(self) -> None:
        """Close the channels this client opened on the running loop."""
        loop = asyncio.get_running_loop()
        for key in [k for k in self._channels if k[0] is loop]:
            await self._channels.pop(key).close(None)

    async def propose_agreement(self, peer: Peer, terms: Envelope) -> None:
        """Offer signed terms to `peer`.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        request = pb.ProposeAgreementRequest(terms=terms.to_proto())
        await self._call(peer, lambda stub: stub.ProposeAgreement(request, timeout=self._timeout))

    async def accept_agreement(self, peer: Peer, terms: Envelope) -> None:
        """Return `peer`'s proposal signed by both parties.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        request = pb.AcceptAgreementRequest(terms=terms.to_proto())
        await self._call(peer, lambda stub: stub.AcceptAgreement(request, timeout=self._timeout))

    async def revoke_agreement(self, peer: Peer, notice: Envelope) -> None:
        """Tell `peer` we revoked an agreement.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        request = pb.RevokeAgreementRequest(notice=notice.to_proto())
        await self._call(peer, lambda stub: stub.RevokeAgreement(request, timeout=self._timeout))

    async def get_hotlist(
        self, peer: Peer, request: Envelope, witnessed_size: int = 0
    ) -> AsyncGenerator[pb.GetHotlistResponse, None]:
        """Ask `peer` for its hotlists: its signed manifest and receipt, then the chunks.

        The first message also carries the consistency path from its log at
        `witnessed_size` (the size we witnessed last, if any) to its receipt's.

        Closing the iterator early cancels the call.

        Raises:
            PartnerTimeoutError: It sent nothing for `hotlist_stall` seconds, or did not
                finish within `HOTLIST_TIMEOUT_SECONDS`.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: The partner refused.
        """
        message = pb.GetHotlistRequest(request=request.to_proto(), witnessed_size=witnessed_size)
        stub = pb_grpc.FederationServiceStub(self._channel(peer.endpoint))
        call = stub.GetHotlist(message, timeout=HOTLIST_TIMEOUT_SECONDS)
        try:
            with _mapped_errors(peer):
                while True:
                    try:
                        response = await asyncio.wait_for(call.read(), self._hotlist_stall)
                    except TimeoutError as error:
                        raise PartnerTimeoutError(
                            f"partner {peer.ori} at {peer.endpoint} sent nothing of its "
                            f"hotlist for {self._hotlist_stall:g} s"
                        ) from error
                    if not isinstance(response, pb.GetHotlistResponse):
                        return  # grpc.aio.EOF: the stream ended
                    yield response
        finally:
            call.cancel()

    async def query_reads(
        self, peer: Peer, request: Envelope, carried: Carried, *, timeout: float
    ) -> Answered:
        """Ask `peer` where it saw a plate, carrying `carried`; its answer and receipt, unverified.

        Raises:
            PartnerTimeoutError: It did not answer within `timeout` seconds.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: The partner refused.
            InvalidEnvelopeError: The answer is malformed.
        """
        message = pb.QueryReadsRequest(request=request.to_proto(), **_carrying(carried))
        answer = await self._call(peer, lambda stub: stub.QueryReads(message, timeout=timeout))
        return _answered(answer)

    async def get_read_images(
        self, peer: Peer, request: Envelope, carried: Carried, *, timeout: float
    ) -> Answered:
        """Ask `peer` for the images of reads it sent us, carrying `carried`; unverified.

        Raises:
            PartnerTimeoutError: It did not answer within `timeout` seconds.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: The partner refused.
            InvalidEnvelopeError: The answer is malformed.
        """
        message = pb.GetReadImagesRequest(request=request.to_proto(), **_carrying(carried))
        answer = await self._call(peer, lambda stub: stub.GetReadImages(message, timeout=timeout))
        return _answered(answer)

    async def acknowledge_receipts(
        self, peer: Peer, acknowledgements: Sequence[Envelope]
    ) -> list[tuple[int, str]]:
        """Give `peer` our signed acknowledgements of its receipts, in one call.

        Returns:
            Those it did not keep: each one's position in `acknowledgements`, and why.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused them all.
        """
        message = pb.AcknowledgeReceiptsRequest(
            acknowledgements=[envelope.to_proto() for envelope in acknowledgements]
        )
        answer = await self._call(
            peer, lambda stub: stub.AcknowledgeReceipts(message, timeout=self._timeout)
        )
        return [(refused.index, refused.reason) for refused in answer.refused]

    async def checkpoint(self, peer: Peer) -> bytes:
        """`peer`'s latest signed checkpoint of its audit log, unverified.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        answer = await self._call(
            peer, lambda stub: stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=self._timeout)
        )
        return bytes(answer.checkpoint)

    async def consistency_proofs(
        self, peer: Peer, old_sizes: Sequence[int], new_size: int
    ) -> list[list[bytes]]:
        """`peer`'s consistency paths from each of `old_sizes` of its log to `new_size`, unverified.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        message = pb.GetConsistencyProofsRequest(old_sizes=old_sizes, new_size=new_size)
        answer = await self._call(
            peer, lambda stub: stub.GetConsistencyProofs(message, timeout=self._timeout)
        )
        return [list(proof.hashes) for proof in answer.proofs]

    async def inclusion_proof(self, peer: Peer, exchange_id: str) -> pb.GetInclusionProofResponse:
        """`peer`'s proof that its audit event of our exchange is in its log, unverified.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        message = pb.GetInclusionProofRequest(exchange_id=exchange_id)
        return await self._call(
            peer, lambda stub: stub.GetInclusionProof(message, timeout=self._timeout)
        )

    async def cosign_checkpoint(self, peer: Peer, checkpoint: bytes) -> None:
        """Give `peer` its checkpoint with our cosignature.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        message = pb.CosignCheckpointRequest(checkpoint=checkpoint)
        await self._call(peer, lambda stub: stub.CosignCheckpoint(message, timeout=self._timeout))

    async def report_inconsistency(
        self, peer: Peer, held: bytes, offered: bytes, detail: str
    ) -> None:
        """Tell `peer` two checkpoints of its log disagree.

        Raises:
            UnavailableError: The partner cannot be reached or did not answer in time.
            PartnerRefusedError: The partner refused.
        """
        message = pb.ReportInconsistencyRequest(held=held, offered=offered, detail=detail[:500])
        await self._call(
            peer, lambda stub: stub.ReportInconsistency(message, timeout=self._timeout)
        )

    async def _call(self, peer: Peer, call: Callable[[Any], Awaitable[_Response]]) -> _Response:
        """Make one call to `peer` on its channel, mapping failures to our errors."""
        with _mapped_errors(peer):
            return await call(pb_grpc.FederationServiceStub(self._channel(peer.endpoint)))


_FINAL_REFUSALS = frozenset({
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
})  # fmt: skip
"""What a partner answers to a request it will refuse again: the rest may pass."""


@contextmanager
def _mapped_errors(peer: Peer) -> Iterator[None]:
    """Turn a failed call to `peer` into our errors."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            raise PartnerTimeoutError(
                f"partner {peer.ori} at {peer.endpoint} did not answer in time"
            ) from error
        if code is grpc.StatusCode.UNAVAILABLE:
            raise UnavailableError(
                f"partner {peer.ori} at {peer.endpoint} is unavailable: {error.details()}"
            ) from error
        refusal = PartnerRefusedError if code in _FINAL_REFUSALS else PartnerFailedError
        raise refusal(f"partner {peer.ori} refused: {code.name} {error.details()}") from error


def _carrying(carried: Carried) -> dict[str, Any]:
    """The fields of a QueryReads or GetReadImages request that carry `carried`."""
    return {
        "acknowledgements": [envelope.to_proto() for envelope in carried.acknowledgements],
        "witnessed_size": carried.witnessed_size,
    }


def _answered(message: _Carrying) -> Answered:
    """A QueryReads or GetReadImages answer, and what came with it."""
    return Answered(
        Envelope.from_proto(message.answer),
        Envelope.from_proto(message.receipt),
        tuple(message.consistency.hashes) if message.HasField("consistency") else None,
        [(refused.index, refused.reason) for refused in message.refused_acknowledgements],
    )
