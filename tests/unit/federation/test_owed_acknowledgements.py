"""Our acknowledgements kept on file until partners take them, on SQLite and PostgreSQL (AUD-6)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy.engine import Engine

from alpr.federation.v1 import exchange_pb2
from federation import acknowledgements
from federation.acknowledgements import OwedAcknowledgements
from federation.client import PartnerClient
from federation.envelope import Envelope
from federation.exchange import ACKNOWLEDGEMENT_TYPE, RECEIPT_TYPE, ExchangeLedger
from federation.peers import PeerRegistry
from node.ed25519 import Ed25519Signer
from tests.support.clock import ManualClock
from tests.support.pki import LASD, SPD, partner_peer

US, PARTNER = Ed25519Signer.generate(), Ed25519Signer.generate()


def record(ledger: ExchangeLedger, exchange_id: str, partner_ori: str) -> Envelope:
    """Keep an exchange we asked `partner_ori` for, with our acknowledgement; the latter."""
    receipt = Envelope.sign(exchange_id.encode(), RECEIPT_TYPE, PARTNER)
    acknowledgement = Envelope.sign(
        exchange_pb2.Acknowledgement(exchange_id=exchange_id).SerializeToString(),
        ACKNOWLEDGEMENT_TYPE,
        US,
    )
    ledger.record(
        exchange_id=exchange_id,
        partner_ori=partner_ori,
        we_responded=False,
        kind="query",
        agreement_id="a-1",
        request_digest=b"\x01" * 32,
        response_digest=b"\x02" * 32,
        receipt=receipt,
        acknowledgement=acknowledgement,
    )
    return acknowledgement


class TestOnFile:
    def test_aud6_owed_until_delivered_however_many_at_once(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        ledger = ExchangeLedger(engine, clock=clock)
        given = [record(ledger, f"x-{n:04d}", LASD) for n in range(1200)]  # over a statement's
        assert len(ledger.owed()) == 1200
        ledger.delivered(given[:1100])
        assert ledger.owed() == [(LASD, acknowledgement) for acknowledgement in given[1100:]]

    def test_aud6_a_restart_owes_each_partner_what_is_on_file_and_keeps_the_unregistered(
        self, engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(acknowledgements, "FLUSH_AFTER", 3600.0)  # nothing sent here
        ledger = ExchangeLedger(engine, clock=clock)
        peers = PeerRegistry(engine, clock=clock)
        peers.add(partner_peer(LASD, PARTNER.public_key.public_bytes))
        to_lasd = [record(ledger, f"x-{n}", LASD) for n in range(3)]
        to_spd = record(ledger, "x-spd", SPD)  # SPD is no longer a peer

        async def restart() -> list[Envelope]:
            owed = OwedAcknowledgements(PartnerClient(grpc.ssl_channel_credentials()), ledger)
            owed.restore(peers)
            taken = owed.take(peers.require(LASD))
            await owed.flush()  # what the stop does: nothing left to deliver
            return taken

        assert asyncio.run(restart()) == to_lasd
        assert (SPD, to_spd) in ledger.owed()  # kept for when SPD is registered again
