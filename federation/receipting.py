"""What both ends of every exchange do around it: audit, receipt, acknowledgement, witness.

Hotlist pulls and plate queries differ in what they carry and share the rest (DESIGN.md,
"Exchanges between agencies"; AUD-6, AUD-7):

- the responder appends its audit event, signs a checkpoint of its log at that event,
  signs a receipt over the digests of the request and its answer, and keeps it
  (`Receipting.receipt_for`);
- the requester, once the answer and the receipt verify and the answer is used, appends
  its own event holding the receipt, signs an acknowledgement and keeps both
  (`Receipting.acknowledge`), then gives the acknowledgement to the responder and
  witnesses the checkpoint the receipt carries, neither of which may fail the exchange:
  an undelivered acknowledgement is flagged by the responder's ledger, an unwitnessed
  checkpoint is asked for again by the scheduled job.

`Receipting.ask` is the requester's whole round for an answer we wait on (plate queries,
read images), in one call to the partner: the request carries the acknowledgements we
owe it and the size of its log we witnessed (`Receipting.served` is the responder's
side), and the answer carries the consistency proof from that size to the receipt's.
Our acknowledgement of it is owed until the next request to the partner carries it, or
a second passes (`OwedAcknowledgements`); the checkpoint is witnessed in the background
with the proof that came (`Receipting.settled` waits for both). Each partner is
reported by its `Outcome`. A hotlist pull closes at once instead (`Receipting.close`):
its acknowledgement and witnessing go in calls of their own, batched per partner.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlmodel import Session

from alpr.federation.v1 import exchange_pb2
from federation.acknowledgements import OwedAcknowledgements
from federation.agreements import Agreement
from federation.client import (
    Answered,
    Carried,
    PartnerClient,
    PartnerRefusedError,
    PartnerTimeoutError,
)
from federation.envelope import Envelope, parse_payload
from federation.errors import InvalidEnvelopeError
from federation.exchange import (
    MAX_BATCH,
    CheckedRequest,
    ExchangeLedger,
    Query,
    digest,
    sign_acknowledgement,
    sign_receipt,
    sign_request,
    verify_receipt,
)
from federation.peers import Peer
from federation.witness import Span, Witness, Witnessed
from node.audit import AuditLog, AuditRecord, TreeHead
from node.audit_checkpoints import CheckpointStore
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.errors import NodeError, UnavailableError, ValidationError
from node.store.engine import write_transaction

DEFAULT_DEADLINE = 5.0
MAX_DEADLINE = 30.0
_Accepted = TypeVar("_Accepted")
_Answer = TypeVar("_Answer", exchange_pb2.ReadAnswer, exchange_pb2.ImageAnswer)
log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What became of a request at one partner."""

    ANSWERED = "answered"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    TIMED_OUT = "timed out"
    INVALID = "invalid"
    PENDING_APPROVAL = "pending approval"


@dataclass(frozen=True)
class Asked(Generic[_Accepted]):
    """What became of one request to a partner: its answer, verified, when it answered."""

    outcome: Outcome
    answer: _Accepted | None = None
    detail: str = ""


def check_deadline(deadline: float) -> None:
    """Check how long an investigator waits for partners.

    Raises:
        ValidationError: The deadline is not in (0, `MAX_DEADLINE`] seconds.
    """
    if not 0 < deadline <= MAX_DEADLINE:
        raise ValidationError("deadline_ms", f"must be 1 to {int(MAX_DEADLINE * 1000)}")


@dataclass(frozen=True)
class SentRequest:
    """A request we signed and sent to a partner, and on whose behalf."""

    peer: Peer
    agreement: Agreement
    request: exchange_pb2.ExchangeRequest
    envelope: Envelope
    user: str

    @property
    def purpose(self) -> str:
        """The purpose the request states."""
        return self.request.purpose

    @property
    def case_number(self) -> str:
        """The case number (or schedule) the request states."""
        return self.request.case_number


@dataclass(frozen=True)
class Closed:
    """How an exchange ended for the requester, past its answer."""

    acknowledged: bool
    witnessed: Witnessed | None


@dataclass(frozen=True)
class ToClose:
    """An exchange we asked for, answered and acknowledged, that the partner must be told of.

    Attributes:
        receipt: The partner's receipt; the checkpoint it carries is to be witnessed.
        acknowledgement: Ours of it, to give the partner.
        proved: The consistency paths of the partner's log that came with its answer, by
            their (old, new) sizes (`proved`), unverified: none need be asked for again.
    """

    receipt: Envelope
    acknowledgement: Envelope
    proved: Mapping[Span, Sequence[bytes]] = field(default_factory=dict)


def proved(
    witnessed_size: int, receipt: Envelope, path: Sequence[bytes] | None
) -> dict[Span, Sequence[bytes]]:
    """The consistency `path` an answer carried, by the span it proves; none if it carried none.

    The span runs from the size of the partner's log we said we witnessed to the size its
    `receipt` names.
    """
    if path is None:
        return {}
    return {(witnessed_size, parse_payload(exchange_pb2.Receipt, receipt.payload).tree_size): path}


BatchHandler = Callable[[Peer, Sequence[ToClose]], Awaitable[list[Closed]]]
"""Closes a batch of one partner's exchanges."""


class ClosingBatches:
    """Exchanges to close, per partner, in batches: one batch per partner at a time.

    `put` queues an item for a partner and waits for its result. If no batch is under
    way for that partner, one starts with whatever is queued (at most `MAX_BATCH`);
    items that arrive meanwhile form the next.
    """

    def __init__(self) -> None:
        """Nothing queued."""
        self._queued: dict[str, list[_Queued]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}

    async def put(
        self,
        peer: Peer,
        item: ToClose,
        handle: BatchHandler,
    ) -> Closed:
        """Queue `item` for `peer`; its result once `handle` has done its batch."""
        queued = _Queued(item, asyncio.get_running_loop().create_future())
        self._queued.setdefault(peer.ori, []).append(queued)
        if peer.ori not in self._draining:
            self._draining[peer.ori] = asyncio.create_task(self._drain(peer, handle))
        return await queued.result

    async def _drain(
        self,
        peer: Peer,
        handle: BatchHandler,
    ) -> None:
        batch: list[_Queued] = []
        try:
            while queued := self._queued.get(peer.ori):
                batch, self._queued[peer.ori] = queued[:MAX_BATCH], queued[MAX_BATCH:]
                try:
                    results = await handle(peer, [q.item for q in batch])
                except Exception as error:  # each waiter gets it
                    for q in batch:
                        if not q.result.done():  # its waiter may have been cancelled
                            q.result.set_exception(error)
                else:
                    for q, result in zip(batch, results, strict=True):
                        if not q.result.done():
                            q.result.set_result(result)
                batch = []
        finally:
            # Left when the drain itself was cancelled: no waiter may wait forever.
            for q in [*batch, *self._queued.pop(peer.ori, [])]:
                q.result.cancel()
            del self._draining[peer.ori]


@dataclass(frozen=True)
class _Queued:
    item: ToClose
    result: asyncio.Future[Closed]


@dataclass(frozen=True, kw_only=True)
class Receipting:
    """The receipts, acknowledgements and witnessing of one node's exchanges."""

    ori: str
    signer: Ed25519Signer
    audit: AuditLog
    checkpoints: CheckpointStore
    ledger: ExchangeLedger
    witness: Witness
    client: PartnerClient
    owed: OwedAcknowledgements
    clock: Clock
    _batches: ClosingBatches = field(default_factory=ClosingBatches, init=False, compare=False)
    _closing: set[asyncio.Task[None]] = field(default_factory=set, init=False, compare=False)

    def sign(
        self,
        peer: Peer,
        agreement: Agreement,
        *,
        user: str,
        purpose: str,
        case_number: str,
        query: Query,
    ) -> SentRequest:
        """A fresh request to `peer` under `agreement`, signed by us for `user`."""
        request, envelope = sign_request(
            self.signer,
            agreement=agreement,
            requesting_ori=self.ori,
            requesting_user=user,
            purpose=purpose,
            case_number=case_number,
            now=self.clock(),
            query=query,
        )
        return SentRequest(peer, agreement, request, envelope, user)

    def transaction(self) -> AbstractContextManager[Session]:
        """A write transaction in our store: what an answer puts on file joins its receipt's."""
        return write_transaction(self.ledger.engine)

    def receipt_for(
        self,
        checked: CheckedRequest,
        sender: Peer,
        answer: Envelope,
        *,
        kind: str,
        peer_ip: str,
        details: Mapping[str, object],
        session: Session | None = None,
    ) -> Envelope:
        """As responder: audit the answer to `checked`, sign its receipt, keep it.

        The audit event, the checkpoint the receipt carries and the ledger's row commit
        in one transaction (`session`, the caller's, if given), so no receipt is ever
        given without its event and checkpoint kept.

        Args:
            checked: The request, checked.
            sender: The partner that sent it.
            answer: Our signed answer.
            kind: The exchange's kind (``hotlist``, ``plate_query``); the audit event is
                ``exchange.<kind>_served``.
            peer_ip: Where the request came from.
            details: What the audit event records of the answer.
            session: The caller's transaction, holding what the answer put on file.
        """
        request_digest, response_digest = digest(checked.payload), digest(answer.payload)
        with write_transaction(self.ledger.engine, session) as writing:
            event = self.audit.append(
                f"exchange.{kind}_served",
                actor=checked.request.requesting_user,
                agency=sender.ori,
                peer_ip=peer_ip,
                purpose=checked.request.purpose,
                case_number=checked.request.case_number,
                details={
                    "exchange_id": checked.request.exchange_id,
                    "agreement_id": checked.agreement.id,
                    **details,
                    "request_digest": request_digest.hex(),
                    "response_digest": response_digest.hex(),
                },
                session=writing,
            )
            checkpoint = self.checkpoints.sign(TreeHead(event.tree_size, event.root), writing)
            receipt = sign_receipt(
                self.signer,
                checked=checked,
                response_digest=response_digest,
                audit=event,
                checkpoint=checkpoint,
                now=self.clock(),
            )
            self.ledger.record(
                exchange_id=checked.request.exchange_id,
                partner_ori=sender.ori,
                we_responded=True,
                kind=kind,
                agreement_id=checked.agreement.id,
                request_digest=request_digest,
                response_digest=response_digest,
                receipt=receipt,
                session=writing,
            )
        return receipt

    def served(
        self, carried: Carried, requester: Peer, serve: Callable[[], tuple[Envelope, Envelope]]
    ) -> Answered:
        """As responder: keep what a request carried, answer it by `serve`, prove our log.

        The carried acknowledgements are kept first, each on its own as AcknowledgeReceipts
        keeps them, whatever becomes of the request; the answer comes with the consistency
        path from the size of our log the requester witnessed to the receipt's, so it
        witnesses our checkpoint without a call of its own (AUD-6, AUD-7).

        Raises:
            NodeError: `serve` refused the request.
        """
        refused: list[tuple[int, str]] = []
        if carried.acknowledgements:
            try:
                refused = self.ledger.accept_acknowledgements(carried.acknowledgements, requester)
            except ValidationError as error:  # too many: none kept, the request still served
                refused = [(i, error.diagnostics()) for i in range(len(carried.acknowledgements))]
        answer, receipt = serve()
        return Answered(answer, receipt, self.proof_for(carried.witnessed_size, receipt), refused)

    def proof_for(self, witnessed_size: int, receipt: Envelope) -> tuple[bytes, ...] | None:
        """As responder: the consistency path from our log at `witnessed_size` to `receipt`'s.

        None when the requester witnessed nothing yet (0) or names a size past the receipt's.
        """
        tree_size = parse_payload(exchange_pb2.Receipt, receipt.payload).tree_size
        if not 0 < witnessed_size <= tree_size:
            return None
        return self.audit.consistency_proof(witnessed_size, tree_size).hashes

    def acknowledge(
        self,
        sent: SentRequest,
        receipt: Envelope,
        response_digest: bytes,
        *,
        kind: str,
        details: Mapping[str, object],
        session: Session | None = None,
    ) -> Envelope:
        """As requester, once answer and receipt verified: audit, sign and keep our acknowledgement.

        The audit event is ``exchange.<kind>_received`` and holds the receipt's digest; it
        and the ledger's row, with the receipt and our acknowledgement, commit in one
        transaction (`session`, the caller's, if given: what the answer put on file).
        """
        with write_transaction(self.ledger.engine, session) as writing:
            event = self._audit_sent(
                sent,
                f"exchange.{kind}_received",
                {**details, "receipt_digest": digest(receipt.payload).hex()},
                session=writing,
            )
            acknowledgement = sign_acknowledgement(
                self.signer, receipt=receipt, requester_ori=self.ori, audit=event, now=self.clock()
            )
            self.ledger.record(
                exchange_id=sent.request.exchange_id,
                partner_ori=sent.peer.ori,
                we_responded=False,
                kind=kind,
                agreement_id=sent.agreement.id,
                request_digest=digest(sent.envelope.payload),
                response_digest=response_digest,
                receipt=receipt,
                acknowledgement=acknowledgement,
                session=writing,
            )
        return acknowledgement

    def verified(
        self, sent: SentRequest, answer: Envelope, receipt: Envelope, *, answer_type: str,
        message: type[_Answer],
    ) -> tuple[_Answer, bytes]:  # fmt: skip
        """As requester: the partner's answer to `sent`, verified with its receipt; its digest.

        Raises:
            InvalidEnvelopeError: The answer is not signed by the partner, not of
                `answer_type`, not to this request from it, or the receipt does not cover
                exactly these bytes.
        """
        payload = answer.verify([sent.peer.key], 1, answer_type).payload
        parsed = parse_payload(message, payload)
        if (parsed.exchange_id, parsed.responder_ori) != (
            sent.request.exchange_id,
            sent.peer.ori,
        ):
            raise InvalidEnvelopeError("the answer is not to this request from this partner")
        response_digest = digest(payload)
        verify_receipt(
            receipt,
            sent.peer,
            request=sent.request,
            request_payload=sent.envelope.payload,
            response_digest=response_digest,
        )
        return parsed, response_digest

    async def ask(
        self,
        sent: SentRequest,
        *,
        kind: str,
        call: Callable[[Carried], Awaitable[Answered]],
        accept: Callable[[Envelope, Envelope], tuple[_Accepted, Envelope]],
    ) -> Asked[_Accepted]:
        """Send `sent` by `call` and take its answer by `accept`; what became of it.

        Args:
            sent: The signed request.
            kind: The exchange's kind, as the audit events name it.
            call: Sends the request with what it carries to the partner: the
                acknowledgements we owe it and the size of its log we witnessed; the
                partner's answer and receipt, unverified, and what came with them.
            accept: Run in a worker thread: verifies the answer and its receipt, then
                acknowledges (`acknowledge`); the answer as used and our acknowledgement.
                An `InvalidEnvelopeError` from it is audited (`reject`): nothing is used.

        Our acknowledgement is owed to the partner (`OwedAcknowledgements`): it rides the
        next request to it, or goes within a second. The partner's checkpoint is witnessed
        in the background with the consistency proof its answer carried. Neither fails
        anything.
        """
        witnessed_size = await self.witness.held_size(sent.peer.ori)
        carried = Carried(self.owed.take(sent.peer), witnessed_size)
        try:
            try:
                answered = await call(carried)
            except BaseException:
                self.owed.owe(sent.peer, carried.acknowledgements)  # they rode no request
                raise
            self.owed.delivered(sent.peer, carried.acknowledgements, answered.refused)
            accepted, acknowledgement = await asyncio.to_thread(
                accept, answered.answer, answered.receipt
            )
        except PartnerTimeoutError:
            return Asked(Outcome.TIMED_OUT)
        except UnavailableError as error:
            return Asked(Outcome.UNAVAILABLE, detail=error.diagnostics())
        except PartnerRefusedError:
            return Asked(Outcome.REFUSED)
        except InvalidEnvelopeError as error:
            await asyncio.to_thread(self.reject, sent, kind=kind, problem=error.diagnostics())
            return Asked(Outcome.INVALID, detail=error.diagnostics())
        self.owed.owe(sent.peer, [acknowledgement])
        given = proved(witnessed_size, answered.receipt, answered.consistency)
        witnessing = asyncio.create_task(self._witness(sent.peer, answered.receipt, given))
        self._closing.add(witnessing)
        witnessing.add_done_callback(self._closing.discard)
        return Asked(Outcome.ANSWERED, accepted)

    async def _witness(
        self, peer: Peer, receipt: Envelope, given: Mapping[Span, Sequence[bytes]]
    ) -> None:
        """Witness the checkpoint `receipt` carries with the proofs `given` (or asked for).

        A failure only leaves it to the scheduled job.
        """
        note = parse_payload(exchange_pb2.Receipt, receipt.payload).checkpoint
        try:
            await self.witness.observe_many(peer, [note], given)
        except NodeError as error:  # unreachable, refused, or a checkpoint not its own
            log.warning("checkpoint of %s not witnessed: %s", peer.ori, error.diagnostics())

    async def settled(self) -> None:
        """Deliver every acknowledgement owed now; wait until witnessing under way is done."""
        await self.owed.flush()
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def reject(self, sent: SentRequest, *, kind: str, problem: str) -> None:
        """As requester: audit that a partner's answer failed verification; nothing was used.

        The audit event is ``exchange.<kind>_rejected`` and names what failed.
        """
        self._audit_sent(sent, f"exchange.{kind}_rejected", {"reason": problem})

    def _audit_sent(
        self,
        sent: SentRequest,
        kind: str,
        details: Mapping[str, object],
        session: Session | None = None,
    ) -> AuditRecord:
        """An audit event of ours about an exchange we asked for (in `session`, if given)."""
        return self.audit.append(
            kind,
            actor=sent.user,
            agency=self.ori,
            purpose=sent.purpose,
            case_number=sent.case_number,
            details={
                "exchange_id": sent.request.exchange_id,
                "partner": sent.peer.ori,
                "agreement_id": sent.agreement.id,
                **details,
            },
            session=session,
        )

    async def close(self, peer: Peer, exchange: ToClose) -> Closed:
        """Give `peer` our acknowledgement and witness its checkpoint; neither fails the call.

        Exchanges with one partner close in batches: while one batch is under way, those
        that arrive wait and then go together, each acknowledgement and checkpoint of
        a batch in one call (AcknowledgeReceipts, and GetConsistencyProofs unless the
        answers carried the proofs), the two at once, so a busy partner costs one round
        trip a batch instead of two an exchange.
        """
        return await self._batches.put(peer, exchange, self._close_batch)

    async def _close_batch(self, peer: Peer, exchanges: Sequence[ToClose]) -> list[Closed]:
        # Both run to their end, each failure kept from the other and from the exchanges,
        # which were taken already: the partner's ledger flags an acknowledgement it did
        # not get, and the scheduled job witnesses what was not.
        acknowledged, witnessed = await asyncio.gather(
            self._deliver(peer, [exchange.acknowledgement for exchange in exchanges]),
            self._witness_batch(peer, exchanges),
            return_exceptions=True,
        )
        for outcome in (acknowledged, witnessed):
            if isinstance(outcome, Exception):
                log.error("closing exchanges with %s failed", peer.ori, exc_info=outcome)
            elif isinstance(outcome, BaseException):
                raise outcome  # cancelled: the batch's waiters are cancelled too
        if isinstance(acknowledged, BaseException):
            acknowledged = [False] * len(exchanges)
        if isinstance(witnessed, BaseException):
            witnessed = [None] * len(exchanges)
        return [Closed(a, w) for a, w in zip(acknowledged, witnessed, strict=True)]

    async def _deliver(self, peer: Peer, given: Sequence[Envelope]) -> list[bool]:
        """Give `peer` the acknowledgements `given` in one call; whether it kept each."""
        try:
            refused = await self.client.acknowledge_receipts(peer, given)
        except (PartnerRefusedError, UnavailableError) as error:
            if isinstance(error, PartnerRefusedError) and error.final:
                self.owed.delivered(peer, given, [])  # for good: the partner's ledger flags them
            else:
                self.owed.owe(peer, given)  # delivered later, as a query's are
            return [False] * len(given)
        acknowledged = [True] * len(given)
        for index, _ in refused:
            if 0 <= index < len(given):  # the partner's word: bounds checked
                acknowledged[index] = False
        self.owed.delivered(peer, given, refused)
        return acknowledged

    async def _witness_batch(
        self, peer: Peer, exchanges: Sequence[ToClose]
    ) -> Sequence[Witnessed | None]:
        """Witness the checkpoints of `exchanges`' receipts at once; None for each if it failed."""
        notes = [
            parse_payload(exchange_pb2.Receipt, exchange.receipt.payload).checkpoint
            for exchange in exchanges
        ]
        given = {span: path for exchange in exchanges for span, path in exchange.proved.items()}
        try:
            return await self.witness.observe_many(peer, notes, given)
        except NodeError as error:  # unreachable, refused, or a checkpoint not its own
            log.warning("checkpoints of %s not witnessed: %s", peer.ori, error.diagnostics())
            return [None] * len(exchanges)  # the scheduled witnessing job asks again
