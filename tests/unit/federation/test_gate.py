"""The responder's door: whatever fails inside a partner's call is the uniform denial (SHR-6)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from federation.gate import DENIED, ExchangeGate
from federation.peers import PeerRegistry
from node.audit import AuditLog
from node.errors import NotFoundError, PermissionDeniedError, UnavailableError
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


def test_a_failure_of_our_database_is_no_denial_but_unavailable_to_try_again(
    gate: ExchangeGate, audit: AuditLog
) -> None:
    """A denial is final to the partner: it would drop the acknowledgements it came to give."""
    locked = OperationalError("INSERT INTO exchange ...", {}, sqlite3.OperationalError("locked"))
    with (
        pytest.raises(UnavailableError, match="try again"),
        gate.guard(CALLER, method="AcknowledgeReceipts", peer_ip="10.0.0.7"),
    ):
        raise locked
    assert audit.events(kinds=["exchange.denied"]) == []


@pytest.mark.parametrize("failing", ["reading the peer", "auditing the denial"])
def test_a_denial_the_database_fails_is_answered_as_any_call_it_fails(
    gate: ExchangeGate, audit: AuditLog, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Were it INTERNAL, while admitted calls get UNAVAILABLE, a caller would learn it is denied."""
    locked = OperationalError("SELECT ...", {}, sqlite3.OperationalError("locked"))

    def fail(*args: object, **kwargs: object) -> None:
        raise locked

    if failing == "reading the peer":
        monkeypatch.setattr(PeerRegistry, "get", fail)
    else:
        monkeypatch.setattr(audit, "append", fail)
    with pytest.raises(UnavailableError, match="try again"):
        gate.admit(CALLER, method="GetHotlist", peer_ip="10.0.0.7")  # LAPD: no such peer
