"""AdminService's partner-request RPCs: the designated role approves partners' queries (SHR-5).

Only a logged-in user holding one of the profile's ``sharing.approver_roles`` may list,
approve or deny; the method table admits every role that may ever approve
(`node.profile.APPROVER_ROLES`), and the profile narrows it here. Each decision is
audited with who, when and why.
"""

from __future__ import annotations

from alpr.admin.v1 import partner_requests_pb2 as pb
from gateway.interceptors import Context, current_caller, current_user, peer_ip
from gateway.servicers.paging import page
from gateway.services import Services
from node.errors import PermissionDeniedError
from node.partner_requests import RequestState
from node.store.sharing import PartnerRequestRecord

_STATES = {
    RequestState.PENDING: pb.PARTNER_REQUEST_STATE_PENDING,
    RequestState.APPROVED: pb.PARTNER_REQUEST_STATE_APPROVED,
    RequestState.DENIED: pb.PARTNER_REQUEST_STATE_DENIED,
    RequestState.COLLECTED: pb.PARTNER_REQUEST_STATE_COLLECTED,
}


class PartnerRequestAdmin:
    """The partner-request RPCs of AdminService, mixed into its servicer."""

    services: Services

    def ListPartnerRequests(  # noqa: N802 (gRPC method name)
        self, request: pb.ListPartnerRequestsRequest, context: Context
    ) -> pb.ListPartnerRequestsResponse:
        """The partners' queries waiting for approval, oldest first."""
        self._approver()
        pending = self.services.requests.pending()
        shown, token = page(pending, request.page_size, request.page_token, "partner_requests")
        caller = current_caller()
        self.services.audit.append(  # partners' plates, purposes and cases (AUD-1)
            "partner_request.listed",
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            details={"shown": [r.reference for r in shown]},
        )
        return pb.ListPartnerRequestsResponse(
            requests=[_request(record) for record in shown], next_page_token=token
        )

    def ApprovePartnerRequest(  # noqa: N802 (gRPC method name)
        self, request: pb.ApprovePartnerRequestRequest, context: Context
    ) -> pb.ApprovePartnerRequestResponse:
        """Approve a held query: the partner collects its answer."""
        record = self._decide(request.reference, request.reason, context, approve=True)
        return pb.ApprovePartnerRequestResponse(request=_request(record))

    def DenyPartnerRequest(  # noqa: N802 (gRPC method name)
        self, request: pb.DenyPartnerRequestRequest, context: Context
    ) -> pb.DenyPartnerRequestResponse:
        """Deny a held query: the partner collects the uniform denial (SHR-6)."""
        record = self._decide(request.reference, request.reason, context, approve=False)
        return pb.DenyPartnerRequestResponse(request=_request(record))

    def _approver(self) -> None:
        """Refuse a caller without one of the profile's approver roles.

        Raises:
            PermissionDeniedError: It holds none.
        """
        user = current_user()
        allowed = self.services.profile.sharing.approver_roles
        if user is None or not user.roles & set(allowed):
            raise PermissionDeniedError(
                "only " + ", ".join(allowed) + " may decide partners' requests (SHR-5)"
            )

    def _decide(
        self, reference: str, reason: str, context: Context, *, approve: bool
    ) -> PartnerRequestRecord:
        self._approver()
        caller = current_caller()
        record = self.services.requests.decide(
            reference, approve=approve, user=caller.spiffe_id, reason=reason
        )
        self.services.audit.append(
            f"partner_request.{record.state}",
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            purpose=record.purpose,
            case_number=record.case_number,
            details={
                "reference": record.reference,
                "exchange_id": record.exchange_id,
                "partner": record.partner_ori,
                "requesting_user": record.requesting_user,
                "plate": record.plate,
                "reason": record.decision_reason,
            },
        )
        return record


def _request(record: PartnerRequestRecord) -> pb.PartnerRequest:
    message = pb.PartnerRequest(
        reference=record.reference,
        exchange_id=record.exchange_id,
        partner_ori=record.partner_ori,
        requesting_user=record.requesting_user,
        purpose=record.purpose,
        case_number=record.case_number,
        judicial_warrant=record.judicial_warrant,
        agreement_id=record.agreement_id,
        plate=record.plate,
        state=_STATES[RequestState(record.state)],
        decided_by=record.decided_by,
        decision_reason=record.decision_reason,
    )
    message.since.FromDatetime(record.since)
    message.until.FromDatetime(record.until)
    message.file_time.FromDatetime(record.filed_at)
    if record.decided_at is not None:
        message.decide_time.FromDatetime(record.decided_at)
    return message
