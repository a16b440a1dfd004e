"""Plate queries across the federation: both ends (SHR-5, SHR-6, SHR-7, ACC-7, AUD-6).

Asking: `PlateQueries.ask` sends one signed query to every partner whose agreement in
force lets us ask it plate queries, all at once, and waits up to a deadline. Each
partner is reported as answered (with its reads), refused, unavailable, timed out, or
invalid (its answer or receipt did not verify, so nothing of it is used). Every answer
is receipted as any exchange is, and acknowledged: the receipt is verified and our
acknowledgement signed and kept before the answer is returned; delivering it and
witnessing the partner's checkpoint follow in the background (`settled` waits for them).

Answering: `PlateQueries.serve` answers a partner's signed query after the exchange
checks (identity, agreement and grant, purpose in the agreement, nonce, time) and our
own rules: a commercial purpose, or civil immigration enforcement without a judicial
warrant, is refused (ACC-7); a partner asking more often than `QUERIES_PER_MINUTE` is
refused. Every refusal reaches the partner as the uniform denial (SHR-6). The request
is kept on file with the requesting agency, person, purpose and case (the audit event
of the answer, SHR-5, SHR-7). An answer holds at most `MAX_SHARED_READS` reads and says
when it was cut.

Held for approval (SHR-5): where our profile approves each request, a query that passed
every check above is filed as pending (`PartnerRequests`) and answered, signed and
receipted as any answer, with a reference and no reads: nothing is searched, so nothing
tells whether data exists (SHR-6). Once our approver decides, the partner collects with a
new signed request (`CollectQuery`, `PlateQueries.collect`): approved, it gets the reads
of the held window searched then; still pending, the held answer again; denied or
unknown, the uniform denial. The asking side keeps each held query (`HeldQueries`).

Every read an answer sends is put on file (`SharedReads`) under a reference fresh for that
answer; the partner names it by that reference to ask for its images (`read_images`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alpr.federation.v1 import exchange_pb2
from federation.agreements import Agreement, AgreementBook
from federation.client import PartnerClient
from federation.envelope import Envelope
from federation.errors import ExchangeRefusedError, InvalidEnvelopeError
from federation.exchange import CheckedRequest, RequestChecker
from federation.peers import Peer, PeerRegistry
from federation.receipting import (
    DEFAULT_DEADLINE,
    Outcome,
    Receipting,
    SentRequest,
    check_deadline,
)
from federation.terms import Grant
from node.errors import PermissionDeniedError, PreconditionError
from node.partner_requests import FiledRequest, HeldQueries, PartnerRequests, RequestState
from node.search import ReadQuery, ReadSearch, check_query, forbidden_reason
from node.shared_reads import SharedReads
from node.store.capture_models import ReadRecord

ANSWER_TYPE = "application/vnd.alpr.read-answer.v1+protobuf"
PLATE_QUERY = "plate_query"
MAX_SHARED_READS = 500
QUERIES_PER_MINUTE = 60


@dataclass(frozen=True)
class PartnerReply:
    """One partner's part of a federated query."""

    partner_ori: str
    outcome: Outcome
    reads: list[exchange_pb2.SharedRead] = field(default_factory=list)
    truncated: bool = False
    exchange_id: str = ""
    detail: str = ""
    approval_reference: str = ""


@dataclass(frozen=True, kw_only=True)
class PlateQuery:
    """What an investigator asks every partner: a plate, a window, a purpose and a case."""

    plate: str
    since: datetime
    until: datetime
    purpose: str
    case_number: str
    judicial_warrant: str = ""

    def to_proto(self) -> exchange_pb2.ReadQuery:
        """The query as partners receive it."""
        message = exchange_pb2.ReadQuery(plate=self.plate, judicial_warrant=self.judicial_warrant)
        message.since.FromDatetime(self.since)
        message.until.FromDatetime(self.until)
        return message


class RateLimit:
    """At most `per_minute` queries from each partner in any sliding minute."""

    def __init__(self, per_minute: int) -> None:
        """Allow each partner `per_minute` queries in any sliding minute."""
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, partner_ori: str) -> bool:
        """Whether `partner_ori` may ask now; counts the query if so."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(partner_ori, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self._per_minute:
                return False
            seen.append(now)
            return True


class PlateQueries:
    """Both ends of plate queries for one node."""

    def __init__(
        self,
        *,
        ori: str,
        peers: PeerRegistry,
        agreements: AgreementBook,
        checker: RequestChecker,
        search: ReadSearch,
        receipting: Receipting,
        client: PartnerClient,
        requests: PartnerRequests,
        held: HeldQueries,
        shared: SharedReads,
        approve_each_request: bool = False,
        per_minute: int = QUERIES_PER_MINUTE,
    ) -> None:
        """Ask and answer for agency `ori`; hold each query for approval if the profile says so."""
        self._ori = ori
        self._peers = peers
        self._agreements = agreements
        self._checker = checker
        self._search = search
        self._receipting = receipting
        self._client = client
        self._requests = requests
        self._held = held
        self._shared = shared
        self._approve_each_request = approve_each_request
        self._per_minute = per_minute
        self._limit = RateLimit(per_minute)

    # Answering.

    def serve(self, request: Envelope, sender: Peer, peer_ip: str) -> tuple[Envelope, Envelope]:
        """Answer a partner's signed plate query, or its collection, with our answer and a receipt.

        Raises:
            NodeError: Any check failed (the gate turns it into the uniform denial).
        """
        checked = self._checker.check(request, sender, Grant.ASK_PLATE_QUERIES)
        asked = checked.request.WhichOneof("query")
        if asked not in ("reads", "collect"):
            raise InvalidEnvelopeError("the request is not a plate query")
        if asked == "reads":
            query = checked.request.reads
            reason = forbidden_reason(checked.request.purpose, query.judicial_warrant)
            if reason is not None:
                raise ExchangeRefusedError(reason)
        if not self._limit.admit(sender.ori):
            raise ExchangeRefusedError(f"more than {self._per_minute} queries a minute")
        if asked == "collect":
            return self._collected(checked, sender, peer_ip)
        filed = _filed(checked)
        if self._approve_each_request:
            record = self._requests.file(filed)
            return self._answer(checked, sender, peer_ip, filed, held=record.reference)
        return self._answer(checked, sender, peer_ip, filed)

    def _collected(
        self, checked: CheckedRequest, sender: Peer, peer_ip: str
    ) -> tuple[Envelope, Envelope]:
        """Answer the collection of a held query: its reads once approved, else held again.

        Raises:
            NodeError: It is not the partner's, states another purpose or case than the
                query held, or was denied or collected already.
        """
        header = checked.request
        reference = header.collect.approval_reference
        record = self._requests.collect(
            reference,
            partner_ori=sender.ori,
            requesting_user=header.requesting_user,
            purpose=header.purpose,
            case_number=header.case_number,
            exchange_id=header.exchange_id,
        )
        filed = FiledRequest(
            exchange_id=record.exchange_id,
            partner_ori=record.partner_ori,
            agreement_id=record.agreement_id,
            requesting_user=record.requesting_user,
            purpose=record.purpose,
            case_number=record.case_number,
            judicial_warrant=record.judicial_warrant,
            plate=record.plate,
            since=record.since,
            until=record.until,
        )
        held = reference if record.state == RequestState.PENDING else ""
        return self._answer(checked, sender, peer_ip, filed, held=held, collects=reference)

    def _answer(
        self,
        checked: CheckedRequest,
        sender: Peer,
        peer_ip: str,
        query: FiledRequest,
        *,
        held: str = "",
        collects: str = "",
    ) -> tuple[Envelope, Envelope]:
        """Our signed answer to `query` and its receipt: its reads, or held under `held`.

        A held answer searches nothing, so it cannot tell whether data exists (SHR-6).
        """
        reads: list[ReadRecord] = []
        truncated = False
        if not held:
            reads, truncated = self._search.find(
                query.plate, query.since, query.until, MAX_SHARED_READS
            )
        optional = {
            "judicial_warrant": query.judicial_warrant,
            "held_for_approval": held,
            "collects": collects,
        }
        # The reads put on file, the audit event, checkpoint and receipt: one transaction.
        with self._receipting.transaction() as session:
            references = self._shared.record(
                exchange_id=checked.request.exchange_id,
                partner_ori=sender.ori,
                agreement_id=checked.agreement.id,
                purpose=checked.request.purpose,
                case_number=checked.request.case_number,
                read_ids=[read.id for read in reads],
                session=session,
            )
            answer = exchange_pb2.ReadAnswer(
                exchange_id=checked.request.exchange_id,
                responder_ori=self._ori,
                truncated=truncated,
                reads=[
                    _shared(read, reference)
                    for read, reference in zip(reads, references, strict=True)
                ],
                approval_reference=held,
            )
            envelope = Envelope.sign(
                answer.SerializeToString(), ANSWER_TYPE, self._receipting.signer
            )
            receipt = self._receipting.receipt_for(
                checked,
                sender,
                envelope,
                kind=PLATE_QUERY,
                peer_ip=peer_ip,
                details={
                    "plate": query.plate,
                    **({} if held else {"results": len(reads), "truncated": truncated}),
                    **{name: value for name, value in optional.items() if value},
                },
                session=session,
            )
        return envelope, receipt

    # Asking.

    def partners(self) -> list[tuple[Peer, Agreement]]:
        """Each registered partner whose agreement in force lets us ask it, with the agreement."""
        found: list[tuple[Peer, Agreement]] = []
        for peer in self._peers.every():
            agreement = self._agreements.in_force(
                peer.ori, Grant.ASK_PLATE_QUERIES, grantor=peer.ori
            )
            if agreement is not None:
                found.append((peer, agreement))
        return found

    async def ask(
        self, query: PlateQuery, *, user: str, deadline: float = DEFAULT_DEADLINE
    ) -> list[PartnerReply]:
        """Ask every partner that answers our plate queries, in parallel, within `deadline`.

        Raises:
            ValidationError: The deadline is not in (0, `MAX_DEADLINE`] seconds.
        """
        check_deadline(deadline)
        asked = await asyncio.to_thread(self.partners)
        replies = await asyncio.gather(
            *(self._ask_one(peer, agreement, query, user, deadline) for peer, agreement in asked)
        )
        return sorted(replies, key=lambda reply: reply.partner_ori)

    async def _ask_one(
        self, peer: Peer, agreement: Agreement, query: PlateQuery, user: str, deadline: float
    ) -> PartnerReply:
        if query.purpose not in agreement.terms.purposes:
            return PartnerReply(
                peer.ori, Outcome.REFUSED, detail="the purpose is not in our agreement with it"
            )
        sent = self._receipting.sign(
            peer,
            agreement,
            user=user,
            purpose=query.purpose,
            case_number=query.case_number,
            query=query.to_proto(),
        )
        reply = await self._exchange(sent, query.plate, deadline)
        if reply.outcome is Outcome.PENDING_APPROVAL:
            await asyncio.to_thread(
                self._held.keep,
                exchange_id=reply.exchange_id,
                partner_ori=peer.ori,
                reference=reply.approval_reference,
                requesting_user=user,
                purpose=query.purpose,
                case_number=query.case_number,
                plate=query.plate,
                since=query.since,
                until=query.until,
            )
        return reply

    async def collect(
        self, partner_ori: str, reference: str, *, user: str, deadline: float = DEFAULT_DEADLINE
    ) -> PartnerReply:
        """Collect the answer to a query of ours that `partner_ori` held for approval (SHR-5).

        A new signed request, under the agreement in force now, stating the held query's
        purpose and case; its answer is receipted and acknowledged as any (AUD-6). Once the
        partner answered or refused, the held query is closed.

        Raises:
            ValidationError: The deadline is not in (0, `MAX_DEADLINE`] seconds.
            NotFoundError: The partner holds no query of ours under `reference`.
            PreconditionError: Its answer was collected already, or no agreement in force
                lets us ask the partner now.
        """
        check_deadline(deadline)
        held = await asyncio.to_thread(self._held.open, partner_ori, reference)
        if held.requesting_user != user:
            # The partner's approver released it for that investigator's case (SHR-5).
            raise PermissionDeniedError("only the investigator who asked collects the answer")
        found = [
            (peer, agreement)
            for peer, agreement in await asyncio.to_thread(self.partners)
            if peer.ori == partner_ori
        ]
        if not found:
            raise PreconditionError(f"no agreement in force lets us ask {partner_ori} now")
        [(peer, agreement)] = found
        sent = self._receipting.sign(
            peer,
            agreement,
            user=user,
            purpose=held.purpose,
            case_number=held.case_number,
            query=exchange_pb2.CollectQuery(approval_reference=reference),
        )
        reply = await self._exchange(sent, held.plate, deadline)
        if reply.outcome is Outcome.PENDING_APPROVAL and reply.approval_reference != reference:
            reply = PartnerReply(peer.ori, Outcome.INVALID, exchange_id=reply.exchange_id,
                                 detail="the partner held it under another reference")  # fmt: skip
        if reply.outcome in (Outcome.ANSWERED, Outcome.REFUSED):
            await asyncio.to_thread(self._held.close, held.exchange_id, reply.outcome.value)
        return reply

    async def _exchange(self, sent: SentRequest, plate: str, deadline: float) -> PartnerReply:
        """Send a signed request, verify the answer and its receipt, acknowledge; the reply."""
        asked = await self._receipting.ask(
            sent,
            kind=PLATE_QUERY,
            call=lambda carried: self._client.query_reads(
                sent.peer, sent.envelope, carried, timeout=deadline
            ),
            accept=lambda answer, receipt: self._accept(sent, answer, receipt, plate),
        )
        peer, exchange_id, read_answer = sent.peer, sent.request.exchange_id, asked.answer
        if read_answer is None:
            return PartnerReply(peer.ori, asked.outcome, exchange_id=exchange_id,
                                detail=asked.detail)  # fmt: skip
        if read_answer.approval_reference:
            return PartnerReply(
                peer.ori,
                Outcome.PENDING_APPROVAL,
                exchange_id=exchange_id,
                approval_reference=read_answer.approval_reference,
            )
        return PartnerReply(
            peer.ori,
            Outcome.ANSWERED,
            list(read_answer.reads),
            read_answer.truncated,
            exchange_id,
        )

    async def settled(self) -> None:
        """Wait until every acknowledgement and witnessing still under way is done."""
        await self._receipting.settled()

    def _accept(
        self, sent: SentRequest, answer: Envelope, receipt: Envelope, plate: str
    ) -> tuple[exchange_pb2.ReadAnswer, Envelope]:
        """Verify the answer and its receipt, then acknowledge; nothing unverified is used."""
        read_answer, answer_digest = self._receipting.verified(
            sent, answer, receipt, answer_type=ANSWER_TYPE, message=exchange_pb2.ReadAnswer
        )
        if read_answer.approval_reference and read_answer.reads:
            raise InvalidEnvelopeError("the answer is held for approval and yet holds reads")
        held = read_answer.approval_reference
        acknowledgement = self._receipting.acknowledge(
            sent,
            receipt,
            answer_digest,
            kind=PLATE_QUERY,
            details={
                "plate": plate,
                **({"held_for_approval": held} if held else {"results": len(read_answer.reads)}),
                **({"collects": sent.request.collect.approval_reference}
                   if sent.request.HasField("collect") else {}),
            },
        )  # fmt: skip
        return read_answer, acknowledgement


def _filed(checked: CheckedRequest) -> FiledRequest:
    """A partner's plate query as it is put on file, once well formed.

    Raises:
        ValidationError: The plate, window, case number or warrant is malformed.
    """
    header, query = checked.request, checked.request.reads
    since, until = query.since.ToDatetime(UTC), query.until.ToDatetime(UTC)
    pattern = check_query(
        ReadQuery(
            plate=query.plate,
            since=since,
            until=until,
            purpose=header.purpose,
            case_number=header.case_number,
            judicial_warrant=query.judicial_warrant,
        )
    )
    return FiledRequest(
        exchange_id=header.exchange_id,
        partner_ori=header.requesting_ori,
        agreement_id=checked.agreement.id,
        requesting_user=header.requesting_user,
        purpose=header.purpose,
        case_number=header.case_number,
        judicial_warrant=query.judicial_warrant,
        plate=pattern.text,
        since=since,
        until=until,
    )


def _shared(read: ReadRecord, reference: str) -> exchange_pb2.SharedRead:
    message = exchange_pb2.SharedRead(
        plate=read.plate,
        latitude=read.latitude or 0.0,
        longitude=read.longitude or 0.0,
        camera_id=read.camera_id,
        confidence=read.confidence,
        reference=reference,
        has_plate_image=bool(read.plate_image_sha256),
        has_vehicle_image=bool(read.vehicle_image_sha256),
    )
    message.captured_at.FromDatetime(read.captured_at)
    return message
