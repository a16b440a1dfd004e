"""AdminService's partner-hotlist RPC: an operator pulls a partner's lists now."""

from __future__ import annotations

from alpr.admin.v1 import partner_hotlists_pb2 as pb
from gateway.interceptors import Context, current_caller
from gateway.services import Services
from node.errors import ValidationError


class PartnerHotlistAdmin:
    """The partner-hotlist RPCs of AdminService, mixed into its servicer."""

    services: Services

    async def PullPartnerHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.PullPartnerHotlistRequest, context: Context
    ) -> pb.PullPartnerHotlistResponse:
        """Pull a partner's hotlists under the agreement in force, on the operator's behalf."""
        if not request.partner_ori:
            raise ValidationError("partner_ori", "is required")
        result = await self.services.pull_partner(
            request.partner_ori, requesting_user=current_caller().spiffe_id
        )
        return pb.PullPartnerHotlistResponse(
            exchange_id=result.exchange_id,
            version=result.version,
            added=result.added,
            ended=result.ended,
            refused=result.refused,
            acknowledged=result.acknowledged,
        )
