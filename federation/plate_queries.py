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
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alpr.federation.v1 import exchange_pb2
from federation.agreements import Agreement, AgreementBook
from federation.client import PartnerClient, PartnerRefusedError, PartnerTimeoutError
from federation.envelope import Envelope, parse_payload
from federation.errors import ExchangeRefusedError, InvalidEnvelopeError
from federation.exchange import RequestChecker, digest, verify_receipt
from federation.peers import Peer, PeerRegistry
from federation.receipting import Closed, Receipting, SentRequest
from federation.terms import Grant
from node.errors import UnavailableError, ValidationError
from node.search import ReadSearch, forbidden_reason
from node.store.capture_models import ReadRecord

ANSWER_TYPE = "application/vnd.alpr.read-answer.v1+protobuf"
PLATE_QUERY = "plate_query"
MAX_SHARED_READS = 500
QUERIES_PER_MINUTE = 60
DEFAULT_DEADLINE = 5.0
MAX_DEADLINE = 30.0


class Outcome(enum.Enum):
    """What became of a query at one partner."""

    ANSWERED = "answered"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    TIMED_OUT = "timed out"
    INVALID = "invalid"


@dataclass(frozen=True)
class PartnerReply:
    """One partner's part of a federated query."""

    partner_ori: str
    outcome: Outcome
    reads: list[exchange_pb2.SharedRead] = field(default_factory=list)
    truncated: bool = False
    exchange_id: str = ""
    detail: str = ""


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
        per_minute: int = QUERIES_PER_MINUTE,
    ) -> None:
        """Ask and answer for agency `ori`."""
        self._ori = ori
        self._peers = peers
        self._agreements = agreements
        self._checker = checker
        self._search = search
        self._receipting = receipting
        self._client = client
        self._per_minute = per_minute
        self._limit = RateLimit(per_minute)
        self._closing: set[asyncio.Task[Closed]] = set()

    # Answering.

    def serve(self, request: Envelope, sender: Peer, peer_ip: str) -> tuple[Envelope, Envelope]:
        """Answer a partner's signed plate query with our signed answer and a receipt.

        Raises:
            NodeError: Any check failed (the gate turns it into the uniform denial).
        """
        checked = self._checker.check(request, sender, Grant.ASK_PLATE_QUERIES)
        if checked.request.WhichOneof("query") != "reads":
            raise InvalidEnvelopeError("the request is not a plate query")
        query = checked.request.reads
        reason = forbidden_reason(checked.request.purpose, query.judicial_warrant)
        if reason is not None:
            raise ExchangeRefusedError(reason)
        if not self._limit.admit(sender.ori):
            raise ExchangeRefusedError(f"more than {self._per_minute} queries a minute")
        reads, truncated = self._search.find(
            query.plate,
            query.since.ToDatetime(UTC),
            query.until.ToDatetime(UTC),
            MAX_SHARED_READS,
        )
        answer = exchange_pb2.ReadAnswer(
            exchange_id=checked.request.exchange_id,
            responder_ori=self._ori,
            truncated=truncated,
            reads=[_shared(read) for read in reads],
        )
        envelope = Envelope.sign(answer.SerializeToString(), ANSWER_TYPE, self._receipting.signer)
        receipt = self._receipting.receipt_for(
            checked,
            sender,
            envelope,
            kind=PLATE_QUERY,
            peer_ip=peer_ip,
            details={
                "plate": query.plate,
                "results": len(reads),
                "truncated": truncated,
                **({"judicial_warrant": query.judicial_warrant} if query.judicial_warrant else {}),
            },
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
        if not 0 < deadline <= MAX_DEADLINE:
            raise ValidationError("deadline_ms", f"must be 1 to {int(MAX_DEADLINE * 1000)}")
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
        exchange_id = sent.request.exchange_id
        try:
            answer, receipt = await self._client.query_reads(peer, sent.envelope, timeout=deadline)
            read_answer, acknowledgement = await asyncio.to_thread(
                self._accept, sent, answer, receipt
            )
        except PartnerTimeoutError:
            return PartnerReply(peer.ori, Outcome.TIMED_OUT, exchange_id=exchange_id)
        except UnavailableError as error:
            return PartnerReply(peer.ori, Outcome.UNAVAILABLE, exchange_id=exchange_id,
                                detail=error.diagnostics())  # fmt: skip
        except PartnerRefusedError:
            return PartnerReply(peer.ori, Outcome.REFUSED, exchange_id=exchange_id)
        except InvalidEnvelopeError as error:
            self._receipting.reject(sent, kind=PLATE_QUERY, problem=error.diagnostics())
            return PartnerReply(peer.ori, Outcome.INVALID, exchange_id=exchange_id,
                                detail=error.diagnostics())  # fmt: skip
        # The acknowledgement and the witnessing of the partner's checkpoint take three more
        # round trips and fail nothing: they go on after the investigator has the answer.
        closing = asyncio.create_task(self._receipting.close(peer, receipt, acknowledgement))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        return PartnerReply(
            peer.ori,
            Outcome.ANSWERED,
            list(read_answer.reads),
            read_answer.truncated,
            exchange_id,
        )

    async def settled(self) -> None:
        """Wait until every acknowledgement and witnessing still under way is done."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _accept(
        self, sent: SentRequest, answer: Envelope, receipt: Envelope
    ) -> tuple[exchange_pb2.ReadAnswer, Envelope]:
        """Verify the answer and its receipt, then acknowledge; nothing unverified is used."""
        payload = answer.verify([sent.peer.key], 1, ANSWER_TYPE).payload
        read_answer = parse_payload(exchange_pb2.ReadAnswer, payload)
        if (read_answer.exchange_id, read_answer.responder_ori) != (
            sent.request.exchange_id,
            sent.peer.ori,
        ):
            raise InvalidEnvelopeError("the answer is not to this request from this partner")
        verify_receipt(
            receipt,
            sent.peer,
            request=sent.request,
            request_payload=sent.envelope.payload,
            response_digest=digest(payload),
        )
        acknowledgement = self._receipting.acknowledge(
            sent,
            receipt,
            digest(payload),
            kind=PLATE_QUERY,
            details={"plate": sent.request.reads.plate, "results": len(read_answer.reads)},
        )
        return read_answer, acknowledgement


def _shared(read: ReadRecord) -> exchange_pb2.SharedRead:
    message = exchange_pb2.SharedRead(
        plate=read.plate,
        latitude=read.latitude or 0.0,
        longitude=read.longitude or 0.0,
        camera_id=read.camera_id,
        confidence=read.confidence,
    )
    message.captured_at.FromDatetime(read.captured_at)
    return message
