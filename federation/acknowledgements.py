"""Acknowledgements we owe partners, delivered on the next request or within a bound (AUD-6).

An acknowledgement is signed and kept in our ledger, with our audit event, before the
answer it acknowledges is used (`Receipting.acknowledge`); what is left is to give it to
the partner. It is not a call of its own per exchange: it rides our next request that
carries acknowledgements to that partner (QueryReads, GetReadImages), and those still
owed `FLUSH_AFTER` seconds after the first of them was owed go together in one
AcknowledgeReceipts call. So a busy partner gets its acknowledgements for free, and an
idle one within about a second, far inside the window after which an exchange left
unacknowledged is flagged on its side.

Nothing owed is dropped: one whose request failed is owed again, and a batch the partner
could not take (unreachable, or busy) goes with the next request to it or is tried again
alone, each wait twice the last up to a minute (`flush`, which the node's stop awaits,
delivers everything owed at once). The ledger keeps each
acknowledgement owed until the partner took or refused it, so what a node that stopped
without delivering still owed is owed again when it starts (`restore`). The partner
keeps an acknowledgement given twice once (one delivered just before a crash may go
again); one it refuses is flagged in its ledger, as an undelivered one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from federation.client import PartnerClient, PartnerRefusedError
from federation.envelope import Envelope
from federation.exchange import MAX_BATCH, ExchangeLedger
from federation.peers import Peer, PeerRegistry
from node.errors import UnavailableError

FLUSH_AFTER = 1.0
"""Seconds an owed acknowledgement waits for a request to ride before it is sent alone."""
RETRY_AT_MOST = 60.0
"""The longest wait, in seconds, before owed acknowledgements are tried again."""
log = logging.getLogger(__name__)


class OwedAcknowledgements:
    """Our acknowledgements not yet given to each partner, and their delivery."""

    def __init__(self, client: PartnerClient, ledger: ExchangeLedger) -> None:
        """Deliver through `client` what no request carried within `FLUSH_AFTER` seconds.

        `ledger` keeps what is owed across restarts.
        """
        self._client = client
        self._ledger = ledger
        self._owed: dict[str, list[Envelope]] = {}
        self._peers: dict[str, Peer] = {}
        self._flushes: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._given: list[Envelope] = []  # delivered, still owed in the ledger
        self._forgetting: tuple[asyncio.Task[None], asyncio.Event] | None = None

    def restore(self, peers: PeerRegistry) -> None:
        """Owe again what the ledger holds owed: a run that stopped without delivering it.

        Called once as the node starts, on its event loop. What is owed to a partner no
        longer registered stays in the ledger, for when it is registered again.
        """
        held: dict[str, list[Envelope]] = {}
        for ori, acknowledgement in self._ledger.owed():
            held.setdefault(ori, []).append(acknowledgement)
        for ori, acknowledgements in held.items():
            peer = peers.get(ori)
            if peer is None:
                log.warning(
                    "%d acknowledgements owed to %s, no longer a peer", len(acknowledgements), ori
                )
                continue
            self.owe(peer, acknowledgements)

    def take(self, peer: Peer) -> list[Envelope]:
        """Up to `MAX_BATCH` of those owed to `peer`, for a request to carry."""
        owed = self._owed.get(peer.ori, [])
        taken, self._owed[peer.ori] = owed[:MAX_BATCH], owed[MAX_BATCH:]
        return taken

    def owe(self, peer: Peer, acknowledgements: Sequence[Envelope]) -> None:
        """Owe `peer` `acknowledgements` (new, or taken by a request that failed)."""
        if acknowledgements:
            self._put(peer, acknowledgements)
            self._flush_later(peer)

    def delivered(
        self, peer: Peer, acknowledgements: Sequence[Envelope], refused: Sequence[tuple[int, str]]
    ) -> None:
        """Owe `peer` no more `acknowledgements`: it took them, but those `refused`.

        A refused one is flagged in the partner's ledger; giving it again would not help.
        """
        for index, reason in refused:
            log.warning("acknowledgement %d not kept by %s: %s", index, peer.ori, reason)
        if acknowledgements:
            self._given.extend(acknowledgements)
            if self._forgetting is None:
                hurry = asyncio.Event()
                self._forgetting = (asyncio.create_task(self._forget(hurry)), hurry)

    async def _forget(self, hurry: asyncio.Event) -> None:
        """Delete from the ledger what was delivered, at most one write each `FLUSH_AFTER`.

        Late is harmless: only a crash meanwhile makes us give some again.
        """
        try:
            while True:
                await _bound(hurry)  # at once once `flush` hurried it
                if not self._given:
                    break
                given, self._given = self._given, []
                try:
                    await asyncio.to_thread(self._ledger.delivered, given)
                except Exception:  # given again at the next start: the partner keeps it once
                    log.exception("delivered acknowledgements still on file as owed")
        finally:
            self._forgetting = None

    async def flush(self) -> None:
        """Deliver everything owed now, each partner's in batches; wait until done."""
        for ori, owed in self._owed.items():
            if owed:
                self._flush_later(self._peers[ori])
        flushes = list(self._flushes.values())
        for _, hurry in flushes:
            hurry.set()
        await asyncio.gather(*(task for task, _ in flushes), return_exceptions=True)
        if self._forgetting is not None:
            forgetting, hurry = self._forgetting
            hurry.set()
            await forgetting

    def _put(self, peer: Peer, acknowledgements: Sequence[Envelope]) -> None:
        self._owed.setdefault(peer.ori, []).extend(acknowledgements)
        self._peers[peer.ori] = peer

    def _flush_later(self, peer: Peer) -> None:
        """Deliver what is owed to `peer` after the bound, unless a flush is under way."""
        if peer.ori not in self._flushes:
            hurry = asyncio.Event()
            self._flushes[peer.ori] = (asyncio.create_task(self._flush(peer.ori, hurry)), hurry)

    async def _flush(self, ori: str, hurry: asyncio.Event) -> None:
        """Deliver what is owed to `ori` after `FLUSH_AFTER` seconds, trying again until done.

        A partner that could not take them (unreachable, or its database busy) is tried
        again after twice the last wait, up to `RETRY_AT_MOST` seconds, and so well
        within the window after which it flags an exchange left unacknowledged. The
        node's stop tries once more, at once; what is still owed then stays in the ledger.
        """
        wait = FLUSH_AFTER
        try:
            await _bound(hurry, wait)
            while not await self._deliver_owed(self._peers[ori]) and not hurry.is_set():
                wait = min(2 * wait, RETRY_AT_MOST)
                await _bound(hurry, wait)
        finally:
            del self._flushes[ori]

    async def _deliver_owed(self, peer: Peer) -> bool:
        """Give `peer` all it is owed; False if it could not take them now.

        `peer` as the latest request to it knew it: its endpoint may have changed.
        """
        while batch := self.take(peer):
            try:
                refused = await self._client.acknowledge_receipts(peer, batch)
            except (PartnerRefusedError, UnavailableError) as error:
                if isinstance(error, PartnerRefusedError) and error.final:
                    # All of them, for good: its ledger flags them.
                    log.warning("acknowledgements refused by %s: %s", peer.ori,
                                error.diagnostics())  # fmt: skip
                    self.delivered(peer, batch, [])
                    continue
                log.warning("acknowledgements not delivered to %s: %s", peer.ori,
                            error.diagnostics())  # fmt: skip
                self._put(peer, batch)  # for the next request to it, or the next try
                return False
            self.delivered(peer, batch, refused)
        return True


async def _bound(hurry: asyncio.Event, seconds: float = FLUSH_AFTER) -> None:
    """Wait `seconds`, or less if `flush` hurries it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hurry.wait(), seconds)
