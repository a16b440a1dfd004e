"""What an operator's call that asked a partner answers when the partner's answer fails it."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from federation.client import PartnerFailedError, PartnerRefusedError
from federation.errors import InvalidEnvelopeError
from federation.gate import DENIED
from gateway.interceptors import status_for


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (
            PartnerRefusedError(f"partner CA0190000 refused: PERMISSION_DENIED {DENIED}"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "PARTNER_REFUSED",
        ),
        (
            PartnerFailedError("partner CA0190000 refused: INTERNAL quote error id 1a2b"),
            grpc.StatusCode.UNAVAILABLE,
            "PARTNER_UNAVAILABLE",
        ),
        (
            InvalidEnvelopeError("the snapshot's signatures do not verify"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXCHANGE_FAILED",
        ),
    ],
    ids=["refused", "failed on its side", "answer not verifying"],
)
def test_is_a_precise_status_with_the_partners_word_not_internal(
    error: Exception, code: grpc.StatusCode, reason: str
) -> None:
    status, error_id = status_for(error)
    assert error_id is None
    assert (status.code, status.message) == (getattr(code_pb2, code.name), str(error))
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == reason


def test_a_refusal_is_final_and_a_failure_on_the_partners_side_is_not() -> None:
    assert PartnerRefusedError("x").final
    assert not PartnerFailedError("x").final
