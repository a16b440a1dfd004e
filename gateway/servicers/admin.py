"""AdminService: what the agency's operators call."""

from __future__ import annotations

from alpr.admin.v1 import admin_service_pb2 as pb
from alpr.admin.v1 import admin_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller
from gateway.servicers.admin_agreements import AgreementAdmin
from gateway.servicers.admin_hotlists import HotlistAdmin
from gateway.servicers.admin_legal_holds import LegalHoldAdmin
from gateway.servicers.admin_partner_hotlists import PartnerHotlistAdmin
from gateway.servicers.admin_partner_requests import PartnerRequestAdmin
from gateway.servicers.admin_peers import PeerAdmin
from gateway.servicers.admin_records import RecordsAdmin
from gateway.servicers.admin_users import UserAdmin
from gateway.servicers.identity import principal_to_proto
from gateway.services import Services


class AdminServicer(
    PeerAdmin,
    AgreementAdmin,
    HotlistAdmin,
    PartnerHotlistAdmin,
    PartnerRequestAdmin,
    LegalHoldAdmin,
    RecordsAdmin,
    UserAdmin,
    pb_grpc.AdminServiceServicer,
):
    """Serves the node's operators; each area of RPCs is a mixin in its own module."""

    def __init__(self, services: Services) -> None:
        """Serve with the node's `services`."""
        self.services = services
        self._identity = services.identity
        self.peers = services.peers
        self.audit = services.audit

    async def GetNodeInfo(  # noqa: N802 (gRPC method name)
        self, request: pb.GetNodeInfoRequest, context: Context
    ) -> pb.GetNodeInfoResponse:
        """Describe this node."""
        return pb.GetNodeInfoResponse(node=self._identity.to_proto())

    async def WhoAmI(  # noqa: N802 (gRPC method name)
        self, request: pb.WhoAmIRequest, context: Context
    ) -> pb.WhoAmIResponse:
        """Tell the caller who its certificate says it is."""
        return pb.WhoAmIResponse(principal=principal_to_proto(current_caller()))
