"""The responder's door for partner calls: identity, then uniform denials (SEC-1, SHR-6).

Every refusal of a partner's call is answered the same way, PERMISSION_DENIED with
the same message, whatever the reason: unknown peer, a certificate that does not
match the peer record, a bad signature, no agreement, wrong scope, expiry,
revocation or replay. The real reason is kept in our own audit log. A failure of our
own database is no refusal: the partner is told to try again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from federation.peers import Peer, PeerRegistry
from node.audit import AuditLog
from node.errors import NodeError, PermissionDeniedError, UnavailableError
from node.identity import Principal, PrincipalKind

DENIED = "the request was denied"
BUSY = "the node cannot answer now; try again"
log = logging.getLogger(__name__)


class ExchangeGate:
    """Admits partner nodes and denies everything else uniformly, auditing each denial."""

    def __init__(self, peers: PeerRegistry, audit: AuditLog, *, ori: str) -> None:
        """Admit by `peers`, audit into `audit` on behalf of agency `ori`."""
        self._peers = peers
        self._audit = audit
        self._ori = ori

    def admit(self, caller: Principal, *, method: str, peer_ip: str) -> Peer:
        """The registered peer the caller's certificate names.

        Raises:
            PermissionDeniedError: It names no registered peer, or not the SAN on record.
            UnavailableError: The database failed reading the peer, or auditing the denial.
        """
        with _busy_if_the_database_fails(method, caller, "reading the peer"):
            peer = self._peers.get(caller.ori) if caller.kind is PrincipalKind.NODE else None
        if peer is None:
            self.deny(caller, method=method, peer_ip=peer_ip, reason="no such peer")
        if peer.spiffe_id != caller.spiffe_id:
            self.deny(
                caller,
                method=method,
                peer_ip=peer_ip,
                reason=f"certificate names {caller.spiffe_id}, peer record {peer.spiffe_id}",
            )
        return peer

    @contextmanager
    def guard(self, caller: Principal, *, method: str, peer_ip: str) -> Iterator[None]:
        """Turn anything raised inside into the uniform, audited denial.

        Not only refusals: an unexpected failure (a disk error reading an image) answered
        as INTERNAL would tell the partner that there was something to read. A failure of
        our database is answered UNAVAILABLE (`BUSY`): passing, and the same for any call.

        Raises:
            PermissionDeniedError: The uniform denial, for anything raised but that.
            UnavailableError: The database failed (locked, or its server unreachable).
        """
        try:
            yield
        except PermissionDeniedError as error:
            if str(error) == DENIED:
                raise  # denied already, and audited
            self.deny(caller, method=method, peer_ip=peer_ip, reason=error.diagnostics())
        except NodeError as error:
            self.deny(caller, method=method, peer_ip=peer_ip, reason=error.diagnostics())
        except (OperationalError, PoolTimeoutError) as error:
            _busy(method, caller, "answering", error)
        except Exception as error:
            log.exception("%s for %s failed", method, caller.spiffe_id)
            reason = f"internal error: {type(error).__name__}: {error}"
            self.deny(caller, method=method, peer_ip=peer_ip, reason=reason)

    def deny(self, caller: Principal, *, method: str, peer_ip: str, reason: str) -> NoReturn:
        """Audit the real reason, then refuse with the uniform denial.

        Raises:
            PermissionDeniedError: Once the denial is audited.
            UnavailableError: The database failed to audit it: answered as any call that
                meets a failing database, the denial would tell the caller it was refused.
        """
        with _busy_if_the_database_fails(method, caller, f"auditing a denial ({reason})"):
            self._audit.append(
                "exchange.denied",
                actor=caller.spiffe_id,
                agency=caller.ori,
                peer_ip=peer_ip,
                details={"method": method, "reason": reason, "responder": self._ori},
            )
        raise PermissionDeniedError(DENIED)


@contextmanager
def _busy_if_the_database_fails(method: str, caller: Principal, doing: str) -> Iterator[None]:
    """Turn a failure of our database inside into `UnavailableError` (`BUSY`).

    Raises:
        UnavailableError: The database failed.
    """
    try:
        yield
    except (OperationalError, PoolTimeoutError) as error:
        _busy(method, caller, doing, error)


def _busy(method: str, caller: Principal, doing: str, error: Exception) -> NoReturn:
    """Log that our database failed `doing` a call, and answer that the node is busy.

    Our database failed, not the partner's call: its write lock held by another process,
    its server unreachable. Said so, the partner tries again; a denial is final to it (it
    would drop the acknowledgements it came to give). Any call may meet this, answered or
    refused: it tells nothing of what we hold.

    Raises:
        UnavailableError: Always.
    """
    log.warning("%s for %s: the database failed %s: %s", method, caller.spiffe_id, doing, error)
    raise UnavailableError(BUSY) from error
