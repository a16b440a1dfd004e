"""Receipts carry the responder's signed checkpoint at the tree head they name (AUD-6, AUD-7)."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest

from alpr.federation.v1 import exchange_pb2
from federation.agreements import Agreement
from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from federation.exchange import CheckedRequest, sign_receipt, verify_receipt
from federation.peers import Peer
from node.audit import AuditRecord, TreeHead
from node.audit_checkpoints import signed_checkpoint
from node.checkpoint import Checkpoint, NoteVerifier, log_origin, open_checkpoint
from node.ed25519 import Ed25519Signer
from tests.support.clock import START
from tests.support.pki import FEDERATION, LAPD, LASD

RESPONDER, STRANGER = Ed25519Signer.generate(), Ed25519Signer.generate()
PEER = Peer(
    ori=LASD,
    name="LASD",
    endpoint="localhost:1",
    spiffe_id=f"spiffe://{FEDERATION}/agency/{LASD}",
    signing_public_key=RESPONDER.public_key.public_bytes,
)
REQUEST = exchange_pb2.ExchangeRequest(
    exchange_id="x-1", requesting_ori=LAPD, responding_ori=LASD, requesting_user="u"
)
PAYLOAD = REQUEST.SerializeToString()
HEAD = AuditRecord(seq=7, recorded_at=START, leaf_hash=b"\x01" * 32, tree_size=7, root=b"\x02" * 32)


def sign_checkpoint(
    signer: Ed25519Signer, *, federation: str, ori: str, audit: AuditRecord
) -> bytes:
    return signed_checkpoint(
        signer, log_origin(federation, ori), TreeHead(audit.tree_size, audit.root)
    )


def receipt(checkpoint: bytes) -> Envelope:
    checked = CheckedRequest(REQUEST, PAYLOAD, cast(Agreement, None))
    return sign_receipt(
        RESPONDER,
        checked=checked,
        response_digest=b"\x03" * 32,
        audit=HEAD,
        checkpoint=checkpoint,
        now=START + timedelta(seconds=1),
    )


def verify(envelope: Envelope) -> exchange_pb2.Receipt:
    return verify_receipt(
        envelope,
        PEER,
        request=REQUEST,
        request_payload=PAYLOAD,
        response_digest=b"\x03" * 32,
    )


class TestReceiptCheckpoint:
    def test_aud6_succeeds_with_the_responders_checkpoint_at_its_head(self) -> None:
        note = sign_checkpoint(RESPONDER, federation=FEDERATION, ori=LASD, audit=HEAD)
        held = verify(receipt(note))
        origin = log_origin(FEDERATION, LASD)
        checkpoint, _ = open_checkpoint(
            held.checkpoint, origin, NoteVerifier(origin, RESPONDER.public_key)
        )
        assert checkpoint == Checkpoint(origin, 7, b"\x02" * 32)

    @pytest.mark.parametrize(
        ("note", "match"),
        [
            (sign_checkpoint(STRANGER, federation=FEDERATION, ori=LASD, audit=HEAD), "checkpoint"),
            (sign_checkpoint(RESPONDER, federation=FEDERATION, ori=LAPD, audit=HEAD), "checkpoint"),
            (
                sign_checkpoint(
                    RESPONDER,
                    federation=FEDERATION,
                    ori=LASD,
                    audit=AuditRecord(8, START, b"\x01" * 32, 8, b"\x04" * 32),
                ),
                "another tree head",
            ),
            (b"not a note", "checkpoint"),
        ],
        ids=["signed by another key", "another agency's log", "another tree head", "garbage"],
    )
    def test_aud7_fails_when_the_checkpoint_is_not_the_responders_at_the_head(
        self, note: bytes, match: str
    ) -> None:
        with pytest.raises(InvalidEnvelopeError, match=match):
            verify(receipt(note))
