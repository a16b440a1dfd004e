"""The shape every exchange between agencies shares: signed request, receipt, acknowledgement.

1. The requester signs an `ExchangeRequest` (agreement, agency, user, purpose, case
   number, nonce, time) in an envelope.
2. The responder checks it (`RequestChecker`), answers, appends an audit event and
   signs a `Receipt` over the digests of the request and response payloads, with its
   audit sequence number and tree head.
3. The requester verifies the receipt, appends its own audit event holding it, and
   signs an `Acknowledgement` the responder stores. Each side then holds the other's
   signature over the exchange (AUD-6); `ExchangeLedger` keeps them.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from alpr.federation.v1 import exchange_pb2
from federation.agreements import Agreement, AgreementBook
from federation.envelope import Envelope, parse_payload
from federation.errors import (
    ExchangeRefusedError,
    InvalidEnvelopeError,
    ReplayError,
    StaleRequestError,
)
from federation.peers import Peer, PeerRegistry
from federation.terms import Grant
from node.audit import AuditRecord
from node.checkpoint import (
    CheckpointError,
    NoteVerifier,
    log_origin,
    open_checkpoint,
)
from node.clock import Clock
from node.errors import NodeError, NotFoundError, ValidationError
from node.signing import Key, Signer
from node.store.engine import table_of, write_transaction
from node.store.models import utc
from node.store.sharing import ExchangeRecord, OwedAcknowledgementRecord, SeenNonce

REQUEST_TYPE = "application/vnd.alpr.exchange-request.v1+protobuf"
RECEIPT_TYPE = "application/vnd.alpr.receipt.v1+protobuf"
ACKNOWLEDGEMENT_TYPE = "application/vnd.alpr.acknowledgement.v1+protobuf"
ALLOWED_SKEW = timedelta(minutes=5)
UNACKNOWLEDGED = "no acknowledgement yet"
NONCE_BYTES = 16
MAX_BATCH = 100
"""The most acknowledgements, or checkpoints to witness, one call carries."""
# Core inserts, built once: both run on every exchange.
_INSERT_EXCHANGE = insert(table_of(ExchangeRecord))
_INSERT_NONCE = insert(table_of(SeenNonce))
_INSERT_OWED = insert(table_of(OwedAcknowledgementRecord))
_IDS_A_STATEMENT = 500  # well inside every database's limit on bound parameters
# What a request may ask: hotlists, reads, a held answer, or the images of reads sent.
Query = (
    exchange_pb2.HotlistQuery
    | exchange_pb2.ReadQuery
    | exchange_pb2.CollectQuery
    | exchange_pb2.ImageQuery
)


def digest(payload: bytes) -> bytes:
    """SHA-256 of signed payload bytes, as receipts name them."""
    return hashlib.sha256(payload).digest()


def sign_request(
    signer: Signer,
    *,
    agreement: Agreement,
    requesting_ori: str,
    requesting_user: str,
    purpose: str,
    case_number: str,
    now: datetime,
    query: Query,
) -> tuple[exchange_pb2.ExchangeRequest, Envelope]:
    """A fresh signed request to the partner of `agreement` asking `query`."""
    request = exchange_pb2.ExchangeRequest(
        exchange_id=str(uuid.uuid4()),
        agreement_id=agreement.id,
        requesting_ori=requesting_ori,
        responding_ori=agreement.terms.partner_of(requesting_ori),
        requesting_user=requesting_user,
        purpose=purpose,
        case_number=case_number,
        nonce=os.urandom(NONCE_BYTES),
    )
    if isinstance(query, exchange_pb2.HotlistQuery):
        request.hotlist.CopyFrom(query)
    elif isinstance(query, exchange_pb2.ReadQuery):
        request.reads.CopyFrom(query)
    elif isinstance(query, exchange_pb2.CollectQuery):
        request.collect.CopyFrom(query)
    else:
        request.images.CopyFrom(query)
    request.issued_at.FromDatetime(now)
    return request, Envelope.sign(request.SerializeToString(), REQUEST_TYPE, signer)


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check, with the agreement that covers it."""

    request: exchange_pb2.ExchangeRequest
    payload: bytes
    agreement: Agreement


class RequestChecker:
    """The responder's checks, in the design's order, after the caller was admitted by TLS."""

    def __init__(
        self, engine: Engine, *, ori: str, agreements: AgreementBook, clock: Clock
    ) -> None:
        """Check requests addressed to agency `ori`."""
        self._engine = engine
        self._ori = ori
        self._agreements = agreements
        self._clock = clock

    def check(self, envelope: Envelope, sender: Peer, grant: Grant) -> CheckedRequest:
        """Verify a request from `sender` for what `grant` covers.

        Raises:
            InvalidEnvelopeError: Not signed by the sender, malformed, or not from it to us.
            ExchangeRefusedError: No agreement in force covers it, or its purpose is not allowed.
            StaleRequestError: Its time is outside the allowed skew.
            ReplayError: Its nonce was used before.
        """
        payload = envelope.verify([sender.key], 1, REQUEST_TYPE).payload
        request = parse_payload(exchange_pb2.ExchangeRequest, payload)
        if (request.requesting_ori, request.responding_ori) != (sender.ori, self._ori):
            raise InvalidEnvelopeError("the request is not from its sender to us")
        agreement = self._covering(request.agreement_id, sender.ori, grant)
        if request.purpose not in agreement.terms.purposes:
            raise ExchangeRefusedError(f"purpose {request.purpose!r} is not in the agreement")
        if (
            not (request.requesting_user and request.case_number)
            or len(request.nonce) != NONCE_BYTES
        ):
            # SHR-5: the request names the person asking and the case; the nonce stops replays.
            raise InvalidEnvelopeError("the request lacks its user, case number or 16-byte nonce")
        now = self._clock()
        issued_at = request.issued_at.ToDatetime(UTC)
        if abs(now - issued_at) > ALLOWED_SKEW:
            raise StaleRequestError(f"request time {issued_at:%H:%M:%S} is outside the skew")
        self._remember_nonce(sender.ori, request.nonce, issued_at + ALLOWED_SKEW)
        return CheckedRequest(request, payload, agreement)

    def _covering(self, agreement_id: str, sender_ori: str, grant: Grant) -> Agreement:
        """The agreement a request names, once shown in force and granting `sender_ori` `grant`.

        The agreement the request names is the one checked, so a partner holding two terms
        (a renewal overlapping the old one) is answered under the one it asked under.

        Raises:
            ExchangeRefusedError: We hold no such agreement, it is with another agency, it is
                not in force, or under it we do not grant `grant` to the sender. The reason
                goes to our audit log only; the partner sees the uniform denial (SHR-6).
        """
        agreement = self._agreements.get(agreement_id) if agreement_id else None
        if agreement is None:
            why = "we hold no such agreement"
        elif agreement.terms.partner_of(self._ori) != sender_ori:
            why = f"it is with {agreement.terms.partner_of(self._ori)}"
        elif not agreement.in_force(self._clock()):
            why = f"it is {agreement.state.value} or outside its term"
        elif grant not in agreement.terms.grants_by(self._ori):
            why = f"under it we grant {sender_ori} no {grant.name.lower()}"
        else:
            return agreement
        raise ExchangeRefusedError(
            f"no agreement in force lets {sender_ori} {grant.name.lower()} "
            f"(asked under {agreement_id or 'none'}: {why})"
        )

    def _remember_nonce(self, partner_ori: str, nonce: bytes, expires_at: datetime) -> None:
        """Keep `nonce` until `expires_at`: the last instant its request passes the skew check.

        Raises:
            ReplayError: It is kept already.
        """
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _INSERT_NONCE,
                    {"partner_ori": partner_ori, "nonce": nonce, "expires_at": expires_at},
                )
        except IntegrityError as error:
            raise ReplayError(f"nonce {nonce.hex()} from {partner_ori} was used before") from error

    def forget_old_nonces(self) -> int:
        """Delete nonces whose requests the skew check now refuses; how many.

        Kept through `expires_at` itself, where the skew check still lets the request in.
        """
        with Session(self._engine) as session:
            result = session.exec(
                delete(SeenNonce).where(col(SeenNonce.expires_at) < self._clock())
            )
            session.commit()
            return int(result.rowcount or 0)


def sign_receipt(
    signer: Signer,
    *,
    checked: CheckedRequest,
    response_digest: bytes,
    audit: AuditRecord,
    checkpoint: bytes,
    now: datetime,
) -> Envelope:
    """The responder's signed receipt for an exchange it answered.

    Args:
        signer: The responder's key.
        checked: The request answered.
        response_digest: `digest` of the response payload, computed once by the caller
            (a large snapshot's payload is hundreds of megabytes).
        audit: The responder's audit event for the exchange, and the tree head after it.
        checkpoint: The responder's signed checkpoint at that tree head.
        now: When it is signed.
    """
    receipt = exchange_pb2.Receipt(
        exchange_id=checked.request.exchange_id,
        responder_ori=checked.request.responding_ori,
        requester_ori=checked.request.requesting_ori,
        request_digest=digest(checked.payload),
        response_digest=response_digest,
        audit_seq=audit.seq,
        tree_size=audit.tree_size,
        tree_root=audit.root,
        checkpoint=checkpoint,
    )
    receipt.issued_at.FromDatetime(now)
    return Envelope.sign(receipt.SerializeToString(), RECEIPT_TYPE, signer)


def verify_receipt(
    envelope: Envelope,
    responder: Peer,
    *,
    request: exchange_pb2.ExchangeRequest,
    request_payload: bytes,
    response_digest: bytes,
) -> exchange_pb2.Receipt:
    """Check a receipt is the responder's, for this exchange, over exactly these bytes.

    `response_digest` is `digest` of the response payload as received. The receipt's
    checkpoint must be the responder's log, signed by it, at the receipt's tree head.

    Raises:
        InvalidEnvelopeError: It is not signed by the responder, names other bytes, or its
            checkpoint does not verify or names another tree head.
    """
    receipt = parse_payload(
        exchange_pb2.Receipt, envelope.verify([responder.key], 1, RECEIPT_TYPE).payload
    )
    expected = (
        request.exchange_id,
        responder.ori,
        request.requesting_ori,
        digest(request_payload),
        response_digest,
    )
    found = (
        receipt.exchange_id,
        receipt.responder_ori,
        receipt.requester_ori,
        receipt.request_digest,
        receipt.response_digest,
    )
    if found != expected:
        raise InvalidEnvelopeError("the receipt does not cover this exchange's bytes")
    origin = log_origin(responder.federation, responder.ori)
    try:
        checkpoint, _ = open_checkpoint(
            receipt.checkpoint, origin, NoteVerifier(origin, responder.key)
        )
    except CheckpointError as error:
        raise InvalidEnvelopeError(f"the receipt's checkpoint: {error.diagnostics()}") from error
    if (checkpoint.size, checkpoint.root) != (receipt.tree_size, receipt.tree_root):
        raise InvalidEnvelopeError("the receipt's checkpoint names another tree head")
    return receipt


def sign_acknowledgement(
    signer: Signer, *, receipt: Envelope, requester_ori: str, audit: AuditRecord, now: datetime
) -> Envelope:
    """The requester's signed acknowledgement of a verified receipt."""
    parsed = parse_payload(exchange_pb2.Receipt, receipt.payload)
    acknowledgement = exchange_pb2.Acknowledgement(
        exchange_id=parsed.exchange_id,
        requester_ori=requester_ori,
        receipt_digest=digest(receipt.payload),
        audit_seq=audit.seq,
        tree_size=audit.tree_size,
        tree_root=audit.root,
    )
    acknowledgement.issued_at.FromDatetime(now)
    return Envelope.sign(acknowledgement.SerializeToString(), ACKNOWLEDGEMENT_TYPE, signer)


class ExchangeLedger:
    """Every exchange's receipt and acknowledgement, as this node holds them (AUD-6).

    Attributes:
        engine: The node's store, whose transactions an exchange's writes share.
    """

    def __init__(self, engine: Engine, *, clock: Clock) -> None:
        """Keep exchanges in `engine`'s database."""
        self.engine = engine
        self._clock = clock

    def record(
        self,
        *,
        exchange_id: str,
        partner_ori: str,
        we_responded: bool,
        kind: str,
        agreement_id: str,
        request_digest: bytes,
        response_digest: bytes,
        receipt: Envelope,
        acknowledgement: Envelope | None = None,
        session: Session | None = None,
    ) -> None:
        """Keep an exchange with its receipt (and our acknowledgement, as requester).

        In `session`, the caller's transaction, if given (with the exchange's audit
        event); in its own otherwise. Our acknowledgement is owed to the partner until
        `delivered` says it has it.
        """
        now = self._clock()
        with write_transaction(self.engine, session) as writing:
            writing.connection().execute(
                _INSERT_EXCHANGE,
                {
                    "id": exchange_id,
                    "partner_ori": partner_ori,
                    "we_responded": we_responded,
                    "kind": kind,
                    "agreement_id": agreement_id,
                    "request_digest": request_digest,
                    "response_digest": response_digest,
                    "receipt": receipt.to_bytes(),
                    "acknowledgement": acknowledgement.to_bytes() if acknowledgement else None,
                    "created_at": now,
                    "acknowledged_at": now if acknowledgement else None,
                },
            )
            if acknowledgement is not None:
                writing.connection().execute(_INSERT_OWED, {"exchange_id": exchange_id})

    def owed(self) -> list[tuple[str, Envelope]]:
        """Our acknowledgements not given yet: (partner ORI, acknowledgement), oldest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(ExchangeRecord.partner_ori, ExchangeRecord.acknowledgement)
                .join(
                    OwedAcknowledgementRecord,
                    col(OwedAcknowledgementRecord.exchange_id) == col(ExchangeRecord.id),
                )
                .order_by(col(ExchangeRecord.created_at))
            ).all()
        return [(ori, Envelope.from_bytes(ack)) for ori, ack in rows if ack is not None]

    def delivered(self, acknowledgements: Sequence[Envelope]) -> None:
        """Owe no more these acknowledgements of ours: the partner took or refused them."""
        exchange_ids = [
            parse_payload(exchange_pb2.Acknowledgement, envelope.payload).exchange_id
            for envelope in acknowledgements
        ]
        with write_transaction(self.engine) as writing:
            for start in range(0, len(exchange_ids), _IDS_A_STATEMENT):
                writing.exec(
                    delete(OwedAcknowledgementRecord).where(
                        col(OwedAcknowledgementRecord.exchange_id).in_(
                            exchange_ids[start : start + _IDS_A_STATEMENT]
                        )
                    )
                )

    def accept_acknowledgements(
        self, envelopes: Sequence[Envelope], requester: Peer
    ) -> list[tuple[int, str]]:
        """Store a requester's acknowledgements of receipts we gave, each once verified.

        One transaction for the batch; an acknowledgement that is not the requester's,
        not over our receipt, or of no exchange we answered it is left out, not the rest.

        Returns:
            Those left out: each one's position in `envelopes`, and why.

        Raises:
            ValidationError: `envelopes` is empty or holds more than `MAX_BATCH`.
        """
        if not 1 <= len(envelopes) <= MAX_BATCH:
            raise ValidationError("acknowledgements", f"give 1 to {MAX_BATCH} at once")
        refused: list[tuple[int, str]] = []
        with Session(self.engine) as session:
            for index, envelope in enumerate(envelopes):
                try:
                    record = self._acknowledged(session, envelope, requester)
                except NodeError as error:
                    refused.append((index, error.diagnostics()))
                    continue
                if record.acknowledgement is None:  # one given again keeps its first time
                    record.acknowledgement = envelope.to_bytes()
                    record.acknowledged_at = self._clock()
                    session.add(record)
            session.commit()
        return refused

    @staticmethod
    def _acknowledged(session: Session, envelope: Envelope, requester: Peer) -> ExchangeRecord:
        """The exchange `envelope` acknowledges, once it is verified as the requester's.

        Raises:
            InvalidEnvelopeError: It is not the requester's, or not over our receipt.
            NotFoundError: We answered no such exchange for the requester.
        """
        payload = envelope.verify([requester.key], 1, ACKNOWLEDGEMENT_TYPE).payload
        acknowledgement = parse_payload(exchange_pb2.Acknowledgement, payload)
        record = session.get(ExchangeRecord, acknowledgement.exchange_id)
        if record is None or not record.we_responded or record.partner_ori != requester.ori:
            raise NotFoundError(f"no exchange {acknowledgement.exchange_id} with {requester.ori}")
        receipt = Envelope.from_bytes(record.receipt)
        if acknowledgement.receipt_digest != digest(receipt.payload):
            raise InvalidEnvelopeError("the acknowledgement is not over our receipt")
        return record

    def exchanges(self, partner_ori: str = "") -> list[ExchangeRecord]:
        """Every exchange held, oldest first, or those with one partner."""
        with Session(self.engine) as session:
            query = select(ExchangeRecord).order_by(col(ExchangeRecord.created_at))
            if partner_ori:
                query = query.where(col(ExchangeRecord.partner_ori) == partner_ori)
            return list(session.exec(query).all())

    def answered(self, partner_ori: str, exchange_id: str) -> ExchangeRecord | None:
        """The exchange `exchange_id` we answered for `partner_ori`, if there is one."""
        return self._held(partner_ori, exchange_id, we_responded=True)

    def asked(self, partner_ori: str, exchange_id: str) -> ExchangeRecord | None:
        """The exchange `exchange_id` `partner_ori` answered for us, if there is one."""
        return self._held(partner_ori, exchange_id, we_responded=False)

    def _held(
        self, partner_ori: str, exchange_id: str, *, we_responded: bool
    ) -> ExchangeRecord | None:
        with Session(self.engine) as session:
            record = session.get(ExchangeRecord, exchange_id)
            if (
                record is None
                or record.we_responded != we_responded
                or record.partner_ori != partner_ori
            ):
                return None
            return record

    def unacknowledged(self, older_than: timedelta) -> list[ExchangeRecord]:
        """Exchanges we answered, unacknowledged after `older_than`, oldest first.

        Asked of the database, not of every exchange held: the purge job asks it every few
        minutes.
        """
        query = (
            select(ExchangeRecord)
            .where(
                col(ExchangeRecord.we_responded).is_(True),
                col(ExchangeRecord.acknowledgement).is_(None),
                col(ExchangeRecord.created_at) <= self._clock() - older_than,
            )
            .order_by(col(ExchangeRecord.created_at))
        )
        with Session(self.engine) as session:
            return list(session.exec(query).all())


@dataclass(frozen=True)
class ReceiptCheck:
    """The outcome of checking one exchange's signatures."""

    exchange_id: str
    partner_ori: str
    problems: Sequence[str]


def check_exchange(record: ExchangeRecord, *, ours: Key, theirs: Sequence[Key]) -> ReceiptCheck:
    """Check the receipt and acknowledgement of one exchange against both parties' keys.

    `theirs` are the keys the partner may have signed with when the exchange was made.
    """
    responder, requester = ([ours], theirs) if record.we_responded else (theirs, [ours])
    problems = []
    try:
        receipt = Envelope.from_bytes(record.receipt)
        parsed = parse_payload(
            exchange_pb2.Receipt, receipt.verify(responder, 1, RECEIPT_TYPE).payload
        )
        if (parsed.request_digest, parsed.response_digest) != (
            record.request_digest,
            record.response_digest,
        ):
            problems.append("the receipt names other request or response bytes")
    except InvalidEnvelopeError as error:
        problems.append(f"receipt: {error}")
        receipt = None
    if record.acknowledgement is None:
        problems.append(UNACKNOWLEDGED)
    elif receipt is not None:
        try:
            acknowledgement = parse_payload(
                exchange_pb2.Acknowledgement,
                Envelope.from_bytes(record.acknowledgement)
                .verify(requester, 1, ACKNOWLEDGEMENT_TYPE)
                .payload,
            )
            if acknowledgement.receipt_digest != digest(receipt.payload):
                problems.append("the acknowledgement is over another receipt")
        except InvalidEnvelopeError as error:
            problems.append(f"acknowledgement: {error}")
    return ReceiptCheck(record.id, record.partner_ori, problems)


def check_ledger(ledger: ExchangeLedger, *, ours: Key, peers: PeerRegistry) -> list[ReceiptCheck]:
    """Check every exchange held against our key and the keys its partner had then.

    Those are its current key and any our operator replaced since the exchange
    (`PeerRegistry.keys_in_force`): a partner's key rotation leaves what it signed
    before verifying. An exchange with a partner no longer registered is reported as such.
    """
    checks = []
    for record in ledger.exchanges():
        try:
            theirs = peers.keys_in_force(record.partner_ori, at=utc(record.created_at))
        except NotFoundError:
            checks.append(ReceiptCheck(record.id, record.partner_ori, ["partner not registered"]))
            continue
        checks.append(check_exchange(record, ours=ours, theirs=theirs))
    return checks
