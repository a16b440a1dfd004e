"""AdminService: what the agency's operators call."""

from __future__ import annotations

from alpr.admin.v1 import admin_service_pb2 as pb
from alpr.admin.v1 import admin_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context, current_caller
from gateway.servicers.identity import NodeIdentityView, principal_to_proto


class AdminServicer(pb_grpc.AdminServiceServicer):
    """Serves the node's operators."""

    def __init__(self, identity: NodeIdentityView) -> None:
        """Serve for the node `identity` describes."""
        self._identity = identity

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
