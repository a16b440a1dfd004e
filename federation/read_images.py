"""The images of reads a partner was sent, on a second signed request: both ends.

An answer to a plate query lists each read with a reference fresh for that answer and
whether its plate and vehicle images exist, never the images (`plate_queries`). The
requester asks for the images of up to `MAX_IMAGE_READS` of them with a new signed request
(`ImageQuery`: the answer's exchange id and the references), under the agreement that
answer was sent under, stating its query's purpose and case again. It is receipted and
acknowledged like any exchange (AUD-6).

Answering: `ReadImages.serve` checks the request as any exchange (identity, the agreement
in force and its grant of plate queries, purpose, nonce, time) and then our own rules:
each reference must be one that answer gave this partner, under the same agreement, for
the same purpose and case; the read must still be held (RET-3) and not archived (RET-2);
a partner asking more often than its queries a minute is refused. Any refusal reaches the
partner as the uniform denial (SHR-6), its real reason audited. The answer holds the
images in the order asked until the next read's would pass `MAX_IMAGE_BYTES`; the rest
are named as remaining, to be asked again. Its audit event names the earlier exchange,
the reads sent and the bytes (SHR-7).

Asking: `ReadImages.ask` verifies the answer and its receipt before anything is used: an
answer altered in transit, or one that does not account for exactly the reads asked or
passes the limits, is INVALID and nothing of it is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from alpr.federation.v1 import exchange_pb2
from federation.agreements import AgreementBook
from federation.client import PartnerClient
from federation.envelope import Envelope
from federation.errors import ExchangeRefusedError, InvalidEnvelopeError
from federation.exchange import CheckedRequest, ExchangeLedger, RequestChecker
from federation.peers import Peer, PeerRegistry
from federation.plate_queries import PLATE_QUERY, RateLimit
from federation.receipting import Outcome, Receipting, SentRequest, check_deadline
from federation.terms import Grant
from node.errors import NotFoundError, PreconditionError, ValidationError
from node.reads import MAX_PLATE_IMAGE, MAX_VEHICLE_IMAGE, ImageStore
from node.shared_reads import SharedRead, SharedReads
from node.store.capture_models import ReadRecord

IMAGES_TYPE = "application/vnd.alpr.image-answer.v1+protobuf"
READ_IMAGES = "read_images"
MAX_IMAGE_READS = 16
MAX_REFERENCE = 32
# The images of one answer: one read's largest images always fit, and the answer, relayed
# to the investigator, stays under gRPC's default 4 MiB message limit with room to spare.
MAX_IMAGE_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ImageRequest:
    """What an investigator asks a partner: images of reads of one of its answers, and why."""

    partner_ori: str
    exchange_id: str
    references: Sequence[str]
    purpose: str
    case_number: str


@dataclass(frozen=True)
class ImagesReply:
    """What became of an image request: the images, those left for another request, or why not."""

    partner_ori: str
    outcome: Outcome
    images: list[exchange_pb2.SharedImages] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    exchange_id: str = ""
    detail: str = ""


def check_references(references: Sequence[str]) -> None:
    """Check the references an image request names.

    Raises:
        ValidationError: None or more than `MAX_IMAGE_READS`, one blank or too long, or one
            named twice.
    """
    if not 0 < len(references) <= MAX_IMAGE_READS:
        raise ValidationError("read_references", f"name 1 to {MAX_IMAGE_READS} reads")
    if any(not 0 < len(reference) <= MAX_REFERENCE for reference in references):
        raise ValidationError("read_references", f"each is 1 to {MAX_REFERENCE} characters")
    if len(set(references)) != len(references):
        raise ValidationError("read_references", "each read is named once")


class ReadImages:
    """Both ends of image requests for one node."""

    def __init__(
        self,
        *,
        ori: str,
        peers: PeerRegistry,
        agreements: AgreementBook,
        checker: RequestChecker,
        ledger: ExchangeLedger,
        receipting: Receipting,
        client: PartnerClient,
        shared: SharedReads,
        images: ImageStore,
        per_minute: int,
    ) -> None:
        """Ask and answer for agency `ori`; each partner may ask `per_minute` times a minute."""
        self._ori = ori
        self._peers = peers
        self._agreements = agreements
        self._checker = checker
        self._ledger = ledger
        self._receipting = receipting
        self._client = client
        self._shared = shared
        self._images = images
        self._per_minute = per_minute
        self._limit = RateLimit(per_minute)

    # Answering.

    def serve(self, request: Envelope, sender: Peer, peer_ip: str) -> tuple[Envelope, Envelope]:
        """Answer a partner's signed image request with our signed images and a receipt.

        Raises:
            NodeError: Any check failed (the gate turns it into the uniform denial).
        """
        checked = self._checker.check(request, sender, Grant.ASK_PLATE_QUERIES)
        if checked.request.WhichOneof("query") != "images":
            raise InvalidEnvelopeError("the request is not an image request")
        query = checked.request.images
        check_references(query.read_references)
        if not self._limit.admit(sender.ori):
            raise ExchangeRefusedError(f"more than {self._per_minute} requests a minute")
        found = self._shared.find(query.exchange_id, query.read_references)
        allowed = [
            (reference, _allowed(checked, sender, found.get(reference), reference))
            for reference in query.read_references
        ]
        sent: list[tuple[str, exchange_pb2.SharedImages]] = []
        remaining: list[str] = []
        size = 0
        for reference, read in allowed:
            images = None if remaining else self._images_of(read, reference)
            if images is None or size + _size(images) > MAX_IMAGE_BYTES:
                remaining.append(reference)
            else:
                sent.append((read.id, images))
                size += _size(images)
        answer = exchange_pb2.ImageAnswer(
            exchange_id=checked.request.exchange_id,
            responder_ori=self._ori,
            images=[images for _, images in sent],
            remaining_references=remaining,
        )
        envelope = Envelope.sign(answer.SerializeToString(), IMAGES_TYPE, self._receipting.signer)
        receipt = self._receipting.receipt_for(
            checked,
            sender,
            envelope,
            kind=READ_IMAGES,
            peer_ip=peer_ip,
            details={
                "answers": query.exchange_id,
                "read_ids": [read_id for read_id, _ in sent],
                "bytes": size,
                **({"remaining": len(remaining)} if remaining else {}),
            },
        )
        return envelope, receipt

    def _images_of(self, read: ReadRecord, reference: str) -> exchange_pb2.SharedImages:
        """The read's images as we hold them.

        Raises:
            ExchangeRefusedError: An image the read names is no longer kept.
        """
        images = exchange_pb2.SharedImages(read_reference=reference)
        for name, digest in (
            ("plate_image", read.plate_image_sha256),
            ("vehicle_image", read.vehicle_image_sha256),
        ):
            if digest:
                data = self._images.get(digest)
                if data is None:
                    raise ExchangeRefusedError(f"the {name} of read {reference} is no longer held")
                setattr(images, name, data)
        return images

    # Asking.

    async def ask(self, request: ImageRequest, *, user: str, deadline: float) -> ImagesReply:
        """Ask a partner for the images of reads it listed in one of its answers to us.

        The request goes under the agreement that answer came under, stating `request`'s
        purpose and case (the partner checks they are its query's).

        Raises:
            ValidationError: The references or the deadline are not acceptable.
            NotFoundError: The partner answered us no plate query under that exchange id.
            PreconditionError: The agreement that answer came under is no longer in force
                or no longer lets us ask the partner.
        """
        check_references(request.references)
        check_deadline(deadline)
        sent = await asyncio.to_thread(self._sign, request, user)
        asked = await self._receipting.ask(
            sent,
            kind=READ_IMAGES,
            call=lambda carried: self._client.get_read_images(
                sent.peer, sent.envelope, carried, timeout=deadline
            ),
            accept=lambda answer, receipt: self._accept(sent, answer, receipt),
        )
        exchange_id = sent.request.exchange_id
        if asked.answer is None:
            return ImagesReply(request.partner_ori, asked.outcome, exchange_id=exchange_id,
                               detail=asked.detail)  # fmt: skip
        return ImagesReply(
            request.partner_ori,
            asked.outcome,
            list(asked.answer.images),
            list(asked.answer.remaining_references),
            exchange_id,
        )

    def _sign(self, request: ImageRequest, user: str) -> SentRequest:
        """Our signed request, under the agreement of the answer it is about."""
        original = self._ledger.asked(request.partner_ori, request.exchange_id)
        if original is None or original.kind != PLATE_QUERY:
            raise NotFoundError(
                f"{request.partner_ori} answered us no plate query {request.exchange_id!r}"
            )
        peer = self._peers.get(request.partner_ori)
        agreement = self._agreements.get(original.agreement_id)
        if (
            peer is None
            or agreement is None
            or not agreement.in_force(self._receipting.clock())
            or Grant.ASK_PLATE_QUERIES not in agreement.terms.grants_by(peer.ori)
        ):
            raise PreconditionError(
                f"agreement {original.agreement_id}, which that answer came under, "
                f"no longer lets us ask {request.partner_ori}"
            )
        return self._receipting.sign(
            peer,
            agreement,
            user=user,
            purpose=request.purpose,
            case_number=request.case_number,
            query=exchange_pb2.ImageQuery(
                exchange_id=request.exchange_id, read_references=request.references
            ),
        )

    def _accept(
        self, sent: SentRequest, answer: Envelope, receipt: Envelope
    ) -> tuple[exchange_pb2.ImageAnswer, Envelope]:
        """Verify the answer and its receipt, then acknowledge; nothing unverified is used."""
        images, answer_digest = self._receipting.verified(
            sent, answer, receipt, answer_type=IMAGES_TYPE, message=exchange_pb2.ImageAnswer
        )
        asked = sent.request.images.read_references
        given = [image.read_reference for image in images.images]
        if sorted([*given, *images.remaining_references]) != sorted(asked):
            raise InvalidEnvelopeError("the answer does not account for exactly the reads asked")
        size = sum(_size(image) for image in images.images)
        if size > MAX_IMAGE_BYTES or any(
            len(image.plate_image) > MAX_PLATE_IMAGE or len(image.vehicle_image) > MAX_VEHICLE_IMAGE
            for image in images.images
        ):
            raise InvalidEnvelopeError("the answer's images pass the limits")
        acknowledgement = self._receipting.acknowledge(
            sent,
            receipt,
            answer_digest,
            kind=READ_IMAGES,
            details={
                "answers": sent.request.images.exchange_id,
                "references": given,
                "bytes": size,
                **({"remaining": list(images.remaining_references)}
                   if images.remaining_references else {}),
            },
        )  # fmt: skip
        return images, acknowledgement


def _allowed(
    checked: CheckedRequest, sender: Peer, shared: SharedRead | None, reference: str
) -> ReadRecord:
    """The read `reference` names, once shown sent to `sender` on the request's terms.

    Raises:
        ExchangeRefusedError: That answer did not send the sender such a read, was sent
            under another agreement, or to a query of another purpose or case; or the
            read is no longer held or archived (RET-2). The partner sees the uniform
            denial (SHR-6); the reason goes to our audit log.
    """
    header = checked.request
    where = f"read {reference} of exchange {header.images.exchange_id}"
    if shared is None or shared.shared.partner_ori != sender.ori:
        why = f"was not sent to {sender.ori}"
    elif shared.shared.agreement_id != checked.agreement.id:
        why = f"was sent under agreement {shared.shared.agreement_id}, not the one asked under"
    elif (shared.shared.purpose, shared.shared.case_number) != (
        header.purpose,
        header.case_number,
    ):
        why = "was sent for another purpose or case than the request states"
    elif shared.read is None:
        why = "is no longer held"
    elif shared.read.archived_at is not None:
        why = "is archived (RET-2)"
    else:
        return shared.read
    raise ExchangeRefusedError(f"{where} {why}")


def _size(images: exchange_pb2.SharedImages) -> int:
    return len(images.plate_image) + len(images.vehicle_image)
