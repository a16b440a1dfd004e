"""The responder's door: whatever fails inside a partner's call is the uniform denial (SHR-6)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine

from federation.gate import DENIED, ExchangeGate
from federation.peers import PeerRegistry
from node.audit import AuditLog
from node.errors import NotFoundError, PermissionDeniedError
from node.identity import Principal, PrincipalKind
from tests.support.clock import ManualClock
from tests.support.pki import FEDERATION, LAPD, LASD

CALLER = Principal(FEDERATION, LAPD, PrincipalKind.NODE)


@pytest.fixture
def audit(engine: Engine, clock: ManualClock) -> AuditLog:
    return AuditLog(engine, clock=clock)


@pytest.fixture
def gate(engine: Engine, clock: ManualClock, audit: AuditLog) -> ExchangeGate:
    return ExchangeGate(PeerRegistry(engine, clock=clock), audit, ori=LASD)


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (NotFoundError("no read r-1"), "no read r-1"),
        (PermissionDeniedError("not your exchange"), "not your exchange"),
        (OSError(13, "Permission denied: images/ab/cd"), "internal error: PermissionError"),
    ],
    ids=["refusal", "inner permission error", "unexpected failure"],
)
def test_shr6_whatever_fails_inside_is_the_uniform_denial_with_the_reason_audited(
    gate: ExchangeGate, audit: AuditLog, raised: Exception, reason: str
) -> None:
    with (
        pytest.raises(PermissionDeniedError) as denied,
        gate.guard(CALLER, method="GetReadImages", peer_ip="10.0.0.7"),
    ):
        raise raised
    assert str(denied.value) == DENIED
    [event] = audit.events(kinds=["exchange.denied"])
    assert json.loads(event.details)["reason"].startswith(reason)
