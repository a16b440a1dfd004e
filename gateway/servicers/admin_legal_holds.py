"""AdminService's legal-hold RPCs: reads kept past every retention limit for a case (RET-4)."""

from __future__ import annotations

from alpr.admin.v1 import legal_holds_pb2 as pb
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.servicers.times import required_time
from gateway.services import Services
from node.retention import NewHold
from node.store.capture_models import LegalHoldRecord


class LegalHoldAdmin:
    """The legal-hold RPCs of AdminService, mixed into its servicer; each is audited."""

    services: Services

    def PlaceLegalHold(  # noqa: N802 (gRPC method name)
        self, request: pb.PlaceLegalHoldRequest, context: Context
    ) -> pb.PlaceLegalHoldResponse:
        """Place a hold on the reads of a plate in a window."""
        wanted = request.hold
        placed = self.services.holds.place(
            NewHold(
                plate=wanted.plate,
                since=required_time(wanted, "since"),
                until=required_time(wanted, "until"),
                case_number=wanted.case_number,
                reason=wanted.reason,
                investigator_contact=wanted.investigator_contact,
                supervisor_approval=wanted.supervisor_approval,
            ),
            user=current_caller().spiffe_id,
        )
        self._audit_hold("legal_hold.placed", placed, context)
        return pb.PlaceLegalHoldResponse(hold=self._hold(placed))

    def ListLegalHolds(  # noqa: N802 (gRPC method name)
        self, request: pb.ListLegalHoldsRequest, context: Context
    ) -> pb.ListLegalHoldsResponse:
        """The holds in force, oldest first."""
        holds = self.services.holds.active()
        return pb.ListLegalHoldsResponse(holds=[self._hold(hold) for hold in holds])

    def ReviewLegalHold(  # noqa: N802 (gRPC method name)
        self, request: pb.ReviewLegalHoldRequest, context: Context
    ) -> pb.ReviewLegalHoldResponse:
        """Record a hold's two-yearly review."""
        reviewed = self.services.holds.review(request.hold_id)
        self._audit_hold("legal_hold.reviewed", reviewed, context)
        return pb.ReviewLegalHoldResponse(hold=self._hold(reviewed))

    def ReleaseLegalHold(  # noqa: N802 (gRPC method name)
        self, request: pb.ReleaseLegalHoldRequest, context: Context
    ) -> pb.ReleaseLegalHoldResponse:
        """Release a hold: its reads go at the next retention run."""
        released = self.services.holds.release(request.hold_id, user=current_caller().spiffe_id)
        self._audit_hold("legal_hold.released", released, context)
        return pb.ReleaseLegalHoldResponse()

    def _hold(self, hold: LegalHoldRecord) -> pb.LegalHold:
        due = {record.id for record in self.services.holds.due_for_review()}
        message = pb.LegalHold(
            hold_id=hold.id,
            plate=hold.plate,
            case_number=hold.case_number,
            reason=hold.reason,
            investigator_contact=hold.investigator_contact,
            supervisor_approval=hold.supervisor_approval,
            placed_by=hold.placed_by,
            review_due=hold.id in due,
        )
        message.since.FromDatetime(hold.since)
        message.until.FromDatetime(hold.until)
        message.place_time.FromDatetime(hold.placed_at)
        message.review_time.FromDatetime(hold.reviewed_at)
        return message

    def _audit_hold(self, kind: str, hold: LegalHoldRecord, context: Context) -> None:
        caller = current_caller()
        self.services.audit.append(
            kind,
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            case_number=hold.case_number,
            details={"hold_id": hold.id, "plate": hold.plate},
        )
