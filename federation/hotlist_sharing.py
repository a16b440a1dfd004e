"""Sharing hotlists under agreements: answering a partner's pull, and pulling a partner's list."""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from sqlmodel import Session

from alpr.federation.v1 import exchange_pb2
from alpr.federation.v1.federation_service_pb2 import GetHotlistResponse
from federation.agreements import AgreementBook
from federation.client import PartnerClient
from federation.envelope import Envelope
from federation.errors import ExchangeRefusedError, InvalidEnvelopeError
from federation.exchange import RequestChecker, verify_receipt
from federation.hotlist_exchange import (
    MAX_DELTA_ENTRIES,
    OpenedSnapshot,
    SignedSnapshot,
    SnapshotReader,
    sign_snapshot,
)
from federation.peers import Peer, PeerRegistry
from federation.receipting import Closed, Receipting, SentRequest, ToClose, proved
from federation.terms import Grant
from federation.witness import Span, Witnessed
from node.audit import AuditLog
from node.clock import Clock
from node.ed25519 import Ed25519Signer
from node.errors import PreconditionError
from node.hotlists.partner_store import (
    IncomingList,
    PartnerHotlists,
    StagedBatch,
)
from node.hotlists.store import CHUNKS_A_READ, HotlistStore

HOTLIST = "hotlist"
SCHEDULED = "scheduled hotlist refresh"
# Chunks received and waiting to be opened: about 3 MB of a snapshot at most.
CHUNKS_IN_FLIGHT = 16
# Batches of opened chunks waiting to be written (`STAGED_A_TRANSACTION` chunks each).
BATCHES_IN_FLIGHT = 2
# A list being sent stops within this many chunks of its agreement's end: one read of it
# each `CHUNKS_A_READ` chunks (16,000 entries), 62 for a million-entry list.
IN_FORCE_CHECKED_EVERY = CHUNKS_A_READ

_Accepted = tuple[OpenedSnapshot, Envelope, PreconditionError | None]
"""The list taken, our acknowledgement, and why the list was not taken, if it was not."""


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
    witnessed now (the partner was unreachable or refused a proof, or the checkpoint is
    not its own): the scheduled witnessing job looks again."""


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
    _pulling: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, compare=False)
    _closing: set[asyncio.Task[Closed]] = field(default_factory=set, init=False, compare=False)

    def serve(
        self, request: Envelope, sender: Peer, peer_ip: str
    ) -> tuple[SignedSnapshot, Envelope]:
        """Answer a partner's signed pull with a signed snapshot or delta, and a receipt.

        The receipt, and the audit event it carries, are made before a single chunk is
        sent: a partner that drops the stream halfway has still been served on the record.

        Raises:
            NodeError: Any check failed (the gate turns it into the uniform denial).
        """
        checked = self.checker.check(request, sender, Grant.RECEIVE_HOTLISTS)
        if checked.request.WhichOneof("query") != "hotlist":
            raise InvalidEnvelopeError("the request is not a hotlist pull")
        since = checked.request.hotlist.since_version
        if since > self.own.version():
            since = 0  # a version we never issued: send everything
        elif since and self.own.added_since(since) > MAX_DELTA_ENTRIES:
            since = 0  # too large a delta to hold: send everything, which streams
        changes = self.own.outgoing_since(since)
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
            snapshot.manifest,
            kind=HOTLIST,
            peer_ip=peer_ip,
            details={
                "version": changes.version,
                "since_version": since,
                "entries": changes.entry_count,
                "ended": len(changes.ended),
            },
        )
        chunks = self._while_in_force(checked.agreement.id, snapshot.chunks)
        return replace(snapshot, chunks=chunks), receipt

    def _while_in_force(self, agreement_id: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """`chunks`, ended once the agreement they are sent under is no longer in force.

        Checked every `IN_FORCE_CHECKED_EVERY` chunks: revoked while a million-entry list
        streams (a minute to a slow partner), the rest is not sent (SHR-2).

        Raises:
            ExchangeRefusedError: The agreement ended midway; the gate denies it uniformly.
        """
        for sent, chunk in enumerate(chunks):
            if sent and sent % IN_FORCE_CHECKED_EVERY == 0:
                agreement = self.agreements.get(agreement_id)
                if agreement is None or not agreement.in_force(self.clock()):
                    raise ExchangeRefusedError(
                        f"agreement {agreement_id} ended after {sent} chunks of its list were sent"
                    )
            yield chunk

    def _open(self, sent: SentRequest, snapshot: Envelope, receipt: Envelope) -> SnapshotReader:
        """Verify the snapshot's manifest (HOT-7), then the receipt over its digest."""
        reader = SnapshotReader(
            snapshot,
            issuer=sent.peer,
            recipient=self.signer,
            recipient_ori=self.ori,
            agreement_id=sent.agreement.id,
            sunsets_at=sent.agreement.terms.sunsets_at,
            now=self.clock(),
        )
        verify_receipt(
            receipt,
            sent.peer,
            request=sent.request,
            request_payload=sent.envelope.payload,
            response_digest=reader.received.digest,
        )
        return reader

    def _accept(
        self, sent: SentRequest, reader: SnapshotReader, incoming: IncomingList, receipt: Envelope
    ) -> _Accepted:
        """Take the list once every chunk came and matched, audit refusals; our acknowledgement.

        The list, the audit events of entries refused and of the exchange, and our
        acknowledgement commit in one transaction: no list is held that our log does not
        show received, and none is acknowledged that we did not take.

        A verified answer is acknowledged even when the list held changed while it came
        (another pull took a newer version, or the purge took the list), so that it
        could not be taken: the partner answered, and our audit event says why nothing
        was kept. That reason is returned, to raise once the acknowledgement is sent.
        """
        try:
            opened = reader.finish()
            with self.receipting.transaction() as writing:
                try:
                    taken = incoming.take(writing, opened.ended)
                except PreconditionError as error:
                    acknowledgement = self._acknowledge(
                        sent, receipt, opened, writing, taken=False, why=str(error)
                    )
                    not_taken: PreconditionError | None = error
                else:
                    for entry_id, plate, reason in opened.refused:
                        self.audit.append(
                            "hotlist.refused",
                            actor=sent.user,
                            agency=self.ori,
                            details={
                                "issuer": sent.peer.ori,
                                "entry_id": entry_id,
                                "plate": plate,
                                "reason": reason,
                            },
                            session=writing,
                        )
                    acknowledgement = self._acknowledge(sent, receipt, opened, writing, taken=True)
                    not_taken = None
        except BaseException:
            incoming.discard()
            raise
        if not_taken is not None:
            incoming.discard()
        else:
            incoming.use(taken)
        return opened, acknowledgement, not_taken

    def _acknowledge(
        self,
        sent: SentRequest,
        receipt: Envelope,
        opened: OpenedSnapshot,
        session: Session,
        *,
        taken: bool,
        why: str = "",
    ) -> Envelope:
        """Our audit event of the list received, and our acknowledgement, in `session`."""
        details: dict[str, object] = {"version": opened.received.version, "taken": taken}
        if taken:
            details |= {
                "entries": opened.kept,
                "ended": len(opened.ended),
                "refused": len(opened.refused),
            }
        else:
            details["why"] = why
        return self.receipting.acknowledge(
            sent, receipt, opened.received.digest, kind=HOTLIST, details=details, session=session
        )

    async def pull(self, partner_ori: str, *, requesting_user: str = "") -> PullResult:
        """Fetch a partner's list under the agreement in force, verify it, store it, acknowledge.

        Raises:
            NotFoundError: The partner is not registered.
            PreconditionError: No agreement in force lets us receive its hotlists; or the
                list we hold changed while the answer came (another process's pull took a
                newer version, or the purge took it), so it was acknowledged but not taken.
            UnavailableError: The partner cannot be reached.
            PartnerRefusedError: The partner refused.
            InvalidEnvelopeError: The snapshot or receipt does not verify; nothing was stored,
                and the rejection is audited as ``exchange.hotlist_rejected``.

        Pulls of one partner in this process run one at a time up to taking the list: one
        asked for while another is under way (an operator's during the scheduled one)
        waits, then asks only for what changed since, instead of fetching the same list
        only to find it taken. Acknowledging and witnessing come after, outside that
        turn, so pulls that end together close in one batch. A pull cancelled once the
        list was taken (an operator's call timing out) still closes the exchange.
        """
        peer = await asyncio.to_thread(self.peers.require, partner_ori)
        self.client.connect(peer)  # the handshake, while we read what we hold and sign
        async with self._pulling.setdefault(partner_ori, asyncio.Lock()):
            fetched = await self._fetch(peer, requesting_user)
        closed = await self.receipting.close(peer, fetched.to_close)
        if fetched.not_taken is not None:
            raise fetched.not_taken
        opened = fetched.opened
        return PullResult(
            partner_ori,
            fetched.exchange_id,
            opened.received.version,
            opened.kept,
            len(opened.ended),
            len(opened.refused),
            closed.acknowledged,
            closed.witnessed,
        )

    def _close_once_accepted(
        self,
        peer: Peer,
        receipt: Envelope,
        paths: dict[Span, Sequence[bytes]],
        accepting: asyncio.Future[_Accepted],
    ) -> None:
        """Close the exchange of a pull cancelled while its list was taken, once acknowledged.

        Our acknowledgement is committed with the list taken; left undelivered, it would
        wait for the node's next start while the partner flags the exchange (AUD-6).
        """
        if accepting.cancelled() or accepting.exception() is not None:
            return  # nothing acknowledged
        _, acknowledgement, _ = accepting.result()
        closing = asyncio.ensure_future(
            self.receipting.close(peer, ToClose(receipt, acknowledgement, paths))
        )
        self._closing.add(closing)  # held until done: the loop keeps only weak references
        closing.add_done_callback(self._closing.discard)

    def _request(self, peer: Peer, requesting_user: str) -> SentRequest:
        """Our signed request for what changed in `peer`'s list since the version we hold.

        Raises:
            PreconditionError: No agreement in force lets us receive its lists.
        """
        agreement = self.agreements.in_force(peer.ori, Grant.RECEIVE_HOTLISTS, grantor=peer.ori)
        if agreement is None:
            raise PreconditionError(f"no agreement in force lets us receive {peer.ori}'s lists")
        return self.receipting.sign(
            peer,
            agreement,
            user=requesting_user or self.spiffe_id,
            purpose=agreement.terms.purposes[0],
            case_number=SCHEDULED,
            query=exchange_pb2.HotlistQuery(
                since_version=self.partner_lists.held_version(peer.ori)
            ),
        )

    async def _fetch(self, peer: Peer, requesting_user: str) -> _Fetched:
        """Ask `peer` for its list, verify, store and acknowledge it: what is left to close."""
        sent = await asyncio.to_thread(self._request, peer, requesting_user)
        witnessed_size = await self.receipting.witness.held_size(peer.ori)
        responses = self.client.get_hotlist(peer, sent.envelope, witnessed_size)
        try:
            first = await anext(responses, None)
            if first is None or not first.HasField("snapshot"):
                raise InvalidEnvelopeError("the answer does not begin with a signed snapshot")
            receipt = Envelope.from_proto(first.receipt)
            path = tuple(first.consistency.hashes) if first.HasField("consistency") else None
            # Verifying, decrypting and storing a large list takes seconds: not on the event loop.
            reader = await asyncio.to_thread(
                self._open, sent, Envelope.from_proto(first.snapshot), receipt
            )
            incoming = self.partner_lists.receiving(reader.received)
            try:
                await _read_chunks(responses, reader, incoming)
            except BaseException:
                await asyncio.to_thread(incoming.discard)  # its writer thread is done
                raise
            # Runs to its end even if the pull is cancelled meanwhile: a list taken is
            # acknowledged (AUD-6), and the exchange then closed all the same.
            accepting = asyncio.ensure_future(
                asyncio.to_thread(self._accept, sent, reader, incoming, receipt)
            )
            try:
                opened, acknowledgement, not_taken = await asyncio.shield(accepting)
            except asyncio.CancelledError:
                paths = proved(witnessed_size, receipt, path)
                accepting.add_done_callback(
                    functools.partial(self._close_once_accepted, peer, receipt, paths)
                )
                raise
        except InvalidEnvelopeError as error:
            await asyncio.to_thread(
                self.receipting.reject, sent, kind=HOTLIST, problem=error.diagnostics()
            )
            raise
        finally:
            await responses.aclose()
        to_close = ToClose(receipt, acknowledgement, proved(witnessed_size, receipt, path))
        return _Fetched(sent.request.exchange_id, opened, to_close, not_taken)


class _Fetched(NamedTuple):
    """A list fetched, verified and acknowledged: taken, unless `not_taken` says why not."""

    exchange_id: str
    opened: OpenedSnapshot
    to_close: ToClose
    not_taken: PreconditionError | None


async def _read_chunks(
    responses: AsyncIterator[GetHotlistResponse], reader: SnapshotReader, incoming: IncomingList
) -> None:
    """Open and index chunks in one worker thread, write them to the store in another.

    Both work while the next chunks arrive. Opening is mostly Python, and writing mostly
    the database's and the cipher's C code, which runs while the other thread holds the
    interpreter. At most `CHUNKS_IN_FLIGHT` chunks wait to be opened and
    `BATCHES_IN_FLIGHT` batches to be written, which bounds the memory a fast sender can
    make us hold.

    Raises:
        InvalidEnvelopeError: A message is not a chunk, or a chunk fails its checks.
    """
    loop = asyncio.get_running_loop()
    opening: deque[asyncio.Future[StagedBatch | None]] = deque()
    writing: deque[asyncio.Future[None]] = deque()

    def open_chunk(data: bytes) -> StagedBatch | None:
        return incoming.add(reader.add(data))

    async def write_next() -> None:
        batch = await opening.popleft()
        if batch is not None:
            writing.append(loop.run_in_executor(writer, incoming.write, batch))
        if len(writing) >= BATCHES_IN_FLIGHT:
            await writing.popleft()

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotlist-chunks") as opener,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotlist-writes") as writer,
    ):
        try:
            async for response in responses:
                if not response.chunk or response.HasField("snapshot"):
                    raise InvalidEnvelopeError("the answer holds a message that is no chunk")
                opening.append(loop.run_in_executor(opener, open_chunk, response.chunk))
                if len(opening) >= CHUNKS_IN_FLIGHT:
                    await write_next()
            while opening:
                await write_next()
            if (rest := incoming.rest()) is not None:
                writing.append(loop.run_in_executor(writer, incoming.write, rest))
            while writing:
                await writing.popleft()
        finally:
            for opened in opening:
                opened.cancel()
            for written in writing:
                written.cancel()
