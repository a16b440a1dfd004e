"""An agreement in force with a partner, written straight to a store: for tests of the store.

A partner's list is used only while the agreement it came under is in force (SHR-2), so
a test of partner lists that makes no agreement through the exchange writes one here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from node.store.sharing import AgreementRecord, AgreementState, PeerRecord
from tests.support.clock import START


def agreement_in_force(
    engine: Engine,
    partner_ori: str,
    agreement_id: str = "a-1",
    *,
    starts_at: datetime = START - timedelta(days=1),
    sunsets_at: datetime = START + timedelta(days=90),
) -> None:
    """Register `partner_ori` and an active agreement with it, `agreement_id`, in `engine`."""
    with Session(engine) as session:
        if session.get(PeerRecord, partner_ori) is None:
            session.add(
                PeerRecord(
                    ori=partner_ori,
                    name=partner_ori,
                    endpoint="localhost:1",
                    spiffe_id=f"spiffe://test.alpr/agency/{partner_ori}",
                    signing_public_key=b"k" * 32,
                    created_at=starts_at,
                    updated_at=starts_at,
                )
            )
            session.flush()  # the agreement's foreign key names it
        session.add(
            AgreementRecord(
                id=agreement_id,
                partner_ori=partner_ori,
                we_proposed=False,
                state=AgreementState.ACTIVE.value,
                term=1,
                starts_at=starts_at,
                sunsets_at=sunsets_at,
                terms=b"",
                envelope=b"",
                created_at=starts_at,
                updated_at=starts_at,
            )
        )
        session.commit()
