"""Exchanges with one partner close in batches, one batch at a time (AUD-6, AUD-7)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from federation.envelope import Envelope
from federation.exchange import MAX_BATCH
from federation.peers import Peer
from federation.receipting import Closed, ClosingBatches, ToClose
from tests.support.pki import LAPD, LASD
from tests.support.pki import partner_peer as partner


def exchange(n: int) -> ToClose:
    """A stand-in exchange to close, told apart by its payload."""
    envelope = Envelope(payload=str(n).encode(), payload_type="t", signatures=())
    return ToClose(envelope, envelope)


def number(item: ToClose) -> int:
    return int(item.receipt.payload)


class Recorder:
    """A batch handler that records each batch and waits for the test to release it."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()

    async def __call__(self, peer: Peer, items: Sequence[ToClose]) -> list[Closed]:
        self.batches.append((peer.ori, [number(item) for item in items]))
        await self.release.wait()
        if peer.ori == LAPD:
            raise ConnectionError("the handler failed")
        # Each result tells which exchange it is for: acknowledged iff the number is even.
        return [Closed(number(item) % 2 == 0, None) for item in items]


async def close_many(
    batches: ClosingBatches, recorder: Recorder, numbers: Sequence[int], ori: str = LASD
) -> list[Closed | BaseException]:
    """Close `numbers` with `ori` at once, then release the batches."""
    tasks = [asyncio.create_task(batches.put(partner(ori), exchange(n), recorder)) for n in numbers]
    await asyncio.sleep(0)  # the first put started a batch, which waits for the release
    recorder.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


class TestClosingBatches:
    def test_aud6_what_arrives_while_a_batch_is_under_way_goes_in_the_next_one(self) -> None:
        async def scenario() -> tuple[Recorder, list[Closed | BaseException]]:
            batches, recorder = ClosingBatches(), Recorder()
            first = asyncio.create_task(batches.put(partner(LASD), exchange(0), recorder))
            while not recorder.batches:  # exchange 0's batch is under way, held by the test
                await asyncio.sleep(0)
            rest = await close_many(batches, recorder, [1, 2, 3])
            return recorder, [await first, *rest]

        recorder, results = asyncio.run(scenario())
        assert recorder.batches == [(LASD, [0]), (LASD, [1, 2, 3])]
        # Every waiter gets the result for its own exchange.
        assert results == [Closed(True, None), Closed(False, None), Closed(True, None),
                           Closed(False, None)]  # fmt: skip

    def test_aud6_a_batch_holds_at_most_max_batch_exchanges(self) -> None:
        async def scenario() -> Recorder:
            batches, recorder = ClosingBatches(), Recorder()
            await close_many(batches, recorder, range(MAX_BATCH + 5))
            return recorder

        recorder = asyncio.run(scenario())
        assert [len(numbers) for _, numbers in recorder.batches] == [MAX_BATCH, 5]

    def test_aud7_partners_close_apart_and_a_failed_batch_fails_only_its_waiters(self) -> None:
        async def scenario() -> tuple[Recorder, list[Closed | BaseException]]:
            batches, recorder = ClosingBatches(), Recorder()
            lapd = [asyncio.create_task(batches.put(partner(LAPD), exchange(n), recorder))
                    for n in (10, 11)]  # fmt: skip
            lasd = await close_many(batches, recorder, [20, 21])
            return recorder, [*await asyncio.gather(*lapd, return_exceptions=True), *lasd]

        recorder, results = asyncio.run(scenario())
        assert sorted(recorder.batches) == [(LASD, [20, 21]), (LAPD, [10, 11])]
        assert [type(result) for result in results[:2]] == [ConnectionError] * 2
        assert results[2:] == [Closed(True, None), Closed(False, None)]

    def test_a_drain_ends_when_its_partner_has_nothing_left(self) -> None:
        async def scenario() -> tuple[Recorder, Closed]:
            batches, recorder = ClosingBatches(), Recorder()
            recorder.release.set()
            await batches.put(partner(LASD), exchange(0), recorder)
            await asyncio.sleep(0)
            # A later exchange starts a new drain rather than waiting on a finished one.
            later = await asyncio.wait_for(batches.put(partner(LASD), exchange(2), recorder), 5)
            return recorder, later

        recorder, later = asyncio.run(scenario())
        assert recorder.batches == [(LASD, [0]), (LASD, [2])]
        assert later == Closed(True, None)

    def test_aud6_a_waiter_cancelled_mid_batch_leaves_the_others_their_results(self) -> None:
        async def scenario() -> tuple[list[Closed | BaseException], bool]:
            batches, recorder = ClosingBatches(), Recorder()
            tasks = [
                asyncio.create_task(batches.put(partner(LASD), exchange(n), recorder))
                for n in (0, 2, 4)
            ]
            while not recorder.batches:  # the batch of all three is under way
                await asyncio.sleep(0)
            tasks[1].cancel()  # e.g. a hotlist pull whose client went away
            recorder.release.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
            # The drain survived: a later exchange is closed too.
            later = await asyncio.wait_for(batches.put(partner(LASD), exchange(6), recorder), 5)
            return results, later == Closed(True, None)

        results, later_closed = asyncio.run(scenario())
        assert results[0] == results[2] == Closed(True, None)
        assert isinstance(results[1], asyncio.CancelledError)
        assert later_closed
