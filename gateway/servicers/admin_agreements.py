"""AdminService's agreement RPCs: operators draft, propose, accept, revoke and renew agreements.

Proposals, acceptances and revocations travel to the partner through its
FederationService; our side changes state only once the partner took them, except
revocation, which stops flow on our side at once whether or not the partner hears.
"""

from __future__ import annotations

import asyncio

from alpr.admin.v1 import agreements_pb2 as pb
from alpr.federation.v1 import agreement_pb2
from federation.agreements import Agreement, ComplianceReview
from federation.envelope import Envelope
from federation.errors import FederationError
from federation.peers import Peer
from federation.terms import Grant
from gateway.interceptors import Context, current_caller, peer_ip
from gateway.servicers.paging import page
from gateway.servicers.times import required_time, timestamp
from gateway.services import Services
from node.errors import UnavailableError, ValidationError
from node.store.sharing import AgreementState

_STATE = {
    AgreementState.DRAFT: pb.AGREEMENT_STATE_DRAFT,
    AgreementState.PROPOSED: pb.AGREEMENT_STATE_PROPOSED,
    AgreementState.ACTIVE: pb.AGREEMENT_STATE_ACTIVE,
    AgreementState.EXPIRED: pb.AGREEMENT_STATE_EXPIRED,
    AgreementState.REVOKED: pb.AGREEMENT_STATE_REVOKED,
}


def agreement_to_proto(agreement: Agreement, our_ori: str) -> pb.Agreement:
    """An agreement on the wire, seen from our side."""
    terms = agreement.terms
    partner = terms.partner_of(our_ori)
    return pb.Agreement(
        agreement_id=agreement.id,
        partner_ori=partner,
        we_proposed=agreement.we_proposed,
        state=_STATE[agreement.state],
        term=terms.term,
        renews_agreement_id=terms.renews_agreement_id,
        starts_at=timestamp(terms.starts_at),
        sunsets_at=timestamp(terms.sunsets_at),
        we_grant=sorted(g.value for g in terms.grants_by(our_ori)),
        they_grant=sorted(g.value for g in terms.grants_by(partner)),
        purposes=terms.purposes,
        clauses=terms.clauses,
        signature_count=len(agreement.envelope.signatures),
        revoked_reason=agreement.revoked_reason,
        compliance_review=agreement.compliance_review,
    )


def _grants(values: list[agreement_pb2.Grant.ValueType], field: str) -> set[Grant]:
    try:
        return {Grant(value) for value in values}
    except ValueError as error:
        raise ValidationError(field, "holds an unspecified or unknown grant") from error


def _required(value: str, field: str) -> str:
    if not value:
        raise ValidationError(field, "is required")
    return value


class AgreementAdmin:
    """The agreement RPCs of AdminService, mixed into its servicer."""

    services: Services

    def _proto(self, agreement: Agreement) -> pb.Agreement:
        return agreement_to_proto(agreement, self.services.identity.ori)

    def _audit(self, kind: str, agreement_id: str, context: Context, **details: object) -> None:
        caller = current_caller()
        self.services.audit.append(
            kind,
            actor=caller.spiffe_id,
            agency=caller.ori,
            peer_ip=peer_ip(context),
            details={"agreement_id": agreement_id, **details},
        )

    def CreateAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.CreateAgreementRequest, context: Context
    ) -> pb.CreateAgreementResponse:
        """Draft an agreement, signed by us."""
        agreement = self.services.agreements.create(
            partner_ori=_required(request.partner_ori, "partner_ori"),
            starts_at=required_time(request, "starts_at"),
            sunsets_at=required_time(request, "sunsets_at"),
            we_grant=_grants(list(request.we_grant), "we_grant"),
            they_grant=_grants(list(request.they_grant), "they_grant"),
            purposes=list(request.purposes),
            extra_clauses=list(request.extra_clauses),
        )
        self._audit("agreement.drafted", agreement.id, context, partner=request.partner_ori)
        return pb.CreateAgreementResponse(agreement=self._proto(agreement))

    async def ProposeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.ProposeAgreementRequest, context: Context
    ) -> pb.ProposeAgreementResponse:
        """Send a draft to the partner."""
        book = self.services.agreements

        def draft() -> tuple[Agreement, Peer]:
            agreement = book.our_draft(_required(request.agreement_id, "agreement_id"))
            return agreement, self.services.peers.require(agreement.terms.accepter_ori)

        agreement, partner = await asyncio.to_thread(draft)
        await self.services.partners.propose_agreement(partner, agreement.envelope)

        def proposed() -> Agreement:
            marked = book.mark_proposed(agreement.id)
            self._audit("agreement.proposed", agreement.id, context, partner=partner.ori)
            return marked

        return pb.ProposeAgreementResponse(agreement=self._proto(await asyncio.to_thread(proposed)))

    async def AcceptAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.AcceptAgreementRequest, context: Context
    ) -> pb.AcceptAgreementResponse:
        """Countersign a partner's proposal; it becomes active once the partner has it too."""
        book = self.services.agreements
        agreement_id = _required(request.agreement_id, "agreement_id")

        def countersigned() -> tuple[Envelope, Peer]:
            signed = book.countersign(agreement_id)
            proposer = book.require(agreement_id).terms.proposer_ori
            return signed, self.services.peers.require(proposer)

        both, partner = await asyncio.to_thread(countersigned)
        await self.services.partners.accept_agreement(partner, both)

        def activated() -> Agreement:
            active = book.activate(agreement_id, both)
            self._audit("agreement.accepted", agreement_id, context, partner=partner.ori)
            return active

        return pb.AcceptAgreementResponse(agreement=self._proto(await asyncio.to_thread(activated)))

    async def RevokeAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.RevokeAgreementRequest, context: Context
    ) -> pb.RevokeAgreementResponse:
        """Revoke at once on our side, then tell the partner.

        A partner that cannot be told now is told by the `notify_revocations` job.
        """
        book = self.services.agreements
        agreement_id = _required(request.agreement_id, "agreement_id")

        def revoke() -> tuple[Envelope, Agreement, Peer]:
            notice = book.revoke(agreement_id, request.reason)
            revoked = book.require(agreement_id)
            self._audit("agreement.revoked", agreement_id, context, reason=request.reason)
            partner_ori = revoked.terms.partner_of(self.services.identity.ori)
            return notice, revoked, self.services.peers.require(partner_ori)

        notice, revoked, partner = await asyncio.to_thread(revoke)
        try:
            await self.services.partners.revoke_agreement(partner, notice)
        except (UnavailableError, FederationError) as error:
            return pb.RevokeAgreementResponse(
                agreement=self._proto(revoked), partner_notified=False, partner_error=str(error)
            )
        await asyncio.to_thread(book.notice_taken, agreement_id)
        return pb.RevokeAgreementResponse(agreement=self._proto(revoked), partner_notified=True)

    def RenewAgreement(  # noqa: N802 (gRPC method name)
        self, request: pb.RenewAgreementRequest, context: Context
    ) -> pb.RenewAgreementResponse:
        """Draft the next term after the compliance review and SB 34 check (SHR-4)."""
        review = ComplianceReview(reviewer=request.reviewer, summary=request.review_summary)
        renewal = self.services.agreements.renew(
            _required(request.agreement_id, "agreement_id"),
            starts_at=required_time(request, "starts_at"),
            sunsets_at=required_time(request, "sunsets_at"),
            review=review,
        )
        self._audit("agreement.renewal_drafted", renewal.id, context, renews=request.agreement_id)
        return pb.RenewAgreementResponse(agreement=self._proto(renewal))

    def ListAgreements(  # noqa: N802 (gRPC method name)
        self, request: pb.ListAgreementsRequest, context: Context
    ) -> pb.ListAgreementsResponse:
        """List agreements, oldest first, a page at a time."""
        agreements, token = page(
            self.services.agreements.list(request.partner_ori),
            request.page_size,
            request.page_token,
            "agreements",
        )
        return pb.ListAgreementsResponse(
            agreements=[self._proto(agreement) for agreement in agreements],
            next_page_token=token,
        )

    def ImportNonComplianceList(  # noqa: N802 (gRPC method name)
        self, request: pb.ImportNonComplianceListRequest, context: Context
    ) -> pb.ImportNonComplianceListResponse:
        """Replace the Attorney General's SB 34 non-compliance list."""
        source = _required(request.source, "source")
        count = self.services.agreements.import_noncompliance(
            [(agency.name, agency.ori) for agency in request.agencies], source
        )
        self._audit("sb34.imported", "", context, source=source, agencies=count)
        return pb.ImportNonComplianceListResponse(imported=count)
