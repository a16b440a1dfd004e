"""FederationService: what partner nodes call."""

from __future__ import annotations

from alpr.federation.v1 import federation_service_pb2 as pb
from alpr.federation.v1 import federation_service_pb2_grpc as pb_grpc
from gateway.interceptors import Context
from gateway.servicers.identity import NodeIdentityView


class FederationServicer(pb_grpc.FederationServiceServicer):
    """Serves partner nodes."""

    def __init__(self, identity: NodeIdentityView) -> None:
        """Serve for the node `identity` describes."""
        self._identity = identity

    async def GetNodeInfo(  # noqa: N802 (gRPC method name)
        self, request: pb.GetNodeInfoRequest, context: Context
    ) -> pb.GetNodeInfoResponse:
        """Describe this node, so a partner can pin its key after an out-of-band check."""
        return pb.GetNodeInfoResponse(node=self._identity.to_proto())
