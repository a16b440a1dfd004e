"""A partner node whose answers a test scripts: a real mTLS gRPC server on loopback.

In the spirit of python-tuf's `RepositorySimulator`: the requester under test calls it
as it would any partner (the simulator presents the partner's own node certificate),
and the test decides what comes back. By default each call is passed on to the real
partner node, as the requester's node, and its answer returned unchanged; a test
replaces `answer_hotlist` (`answer_query`, `answer_images`) to alter an answer in transit
or to serve one of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from alpr.federation.v1 import federation_service_pb2 as pb
from alpr.federation.v1 import federation_service_pb2_grpc as pb_grpc
from gateway.tls import TLSConfig
from node.identity import PrincipalKind
from tests.support.agencies import Agency
from tests.support.nodes import RunningNode
from tests.support.pki import Federation

FORWARD_TIMEOUT = 30
_T = TypeVar("_T")
HotlistAnswer = Callable[[pb.GetHotlistRequest], Iterable[pb.GetHotlistResponse]]
QueryAnswer = Callable[[pb.QueryReadsRequest], pb.QueryReadsResponse]
ImagesAnswer = Callable[[pb.GetReadImagesRequest], pb.GetReadImagesResponse]


def _forwarded(name: str) -> Callable[..., Any]:
    """A servicer method that passes the call on to the real partner, as the requester."""

    def forward(simulator: PartnerSimulator, request: Any, context: grpc.ServicerContext) -> Any:
        method = getattr(simulator.upstream, name)
        return _passing_refusals_on(context, lambda: method(request, timeout=FORWARD_TIMEOUT))

    forward.__name__ = name
    return forward


class PartnerSimulator(pb_grpc.FederationServiceServicer):
    """Stands between a requester and the real partner node `upstream`.

    Attributes:
        upstream: The real partner's FederationService, called as the requester's node.
        answer_hotlist: What GetHotlist answers; by default, the partner's own answer.
        answer_query: What QueryReads answers; by default, the partner's own answer.
        answer_images: What GetReadImages answers; by default, the partner's own answer.
    """

    def __init__(self, upstream: pb_grpc.FederationServiceStub) -> None:
        """Pass calls on to `upstream` until a test scripts otherwise."""
        self.upstream = upstream
        self.answer_hotlist: HotlistAnswer = self.forward_hotlist
        self.answer_query: QueryAnswer = self.forward_query
        self.answer_images: ImagesAnswer = self.forward_images

    def forward_hotlist(self, request: pb.GetHotlistRequest) -> list[pb.GetHotlistResponse]:
        """The real partner's answer to `request`, every message of its stream."""
        return list(self.upstream.GetHotlist(request, timeout=FORWARD_TIMEOUT))

    def forward_query(self, request: pb.QueryReadsRequest) -> pb.QueryReadsResponse:
        """The real partner's answer to `request`."""
        return self.upstream.QueryReads(request, timeout=FORWARD_TIMEOUT)

    def forward_images(self, request: pb.GetReadImagesRequest) -> pb.GetReadImagesResponse:
        """The real partner's answer to `request`."""
        return self.upstream.GetReadImages(request, timeout=FORWARD_TIMEOUT)

    def GetReadImages(  # noqa: N802 (gRPC method name)
        self, request: pb.GetReadImagesRequest, context: grpc.ServicerContext
    ) -> pb.GetReadImagesResponse:
        """Answer as the test scripted; a refusal upstream is passed on as it came."""
        return _passing_refusals_on(context, lambda: self.answer_images(request))

    def QueryReads(  # noqa: N802 (gRPC method name)
        self, request: pb.QueryReadsRequest, context: grpc.ServicerContext
    ) -> pb.QueryReadsResponse:
        """Answer as the test scripted; a refusal upstream is passed on as it came."""
        return _passing_refusals_on(context, lambda: self.answer_query(request))

    def GetHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.GetHotlistRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetHotlistResponse]:
        """Answer as the test scripted; a refusal upstream is passed on as it came.

        Every other method is passed on to the real partner (see `_forwarded`).
        """
        return iter(_passing_refusals_on(context, lambda: self.answer_hotlist(request)))

    GetNodeInfo = _forwarded("GetNodeInfo")
    ProposeAgreement = _forwarded("ProposeAgreement")
    AcceptAgreement = _forwarded("AcceptAgreement")
    RevokeAgreement = _forwarded("RevokeAgreement")
    AcknowledgeReceipts = _forwarded("AcknowledgeReceipts")
    GetCheckpoint = _forwarded("GetCheckpoint")
    GetConsistencyProofs = _forwarded("GetConsistencyProofs")
    GetInclusionProof = _forwarded("GetInclusionProof")
    CosignCheckpoint = _forwarded("CosignCheckpoint")
    ReportInconsistency = _forwarded("ReportInconsistency")


def _passing_refusals_on(context: grpc.ServicerContext, call: Callable[[], _T]) -> _T:
    try:
        return call()
    except grpc.RpcError as error:
        context.abort(error.code(), error.details() or "")


@contextmanager
def simulating(
    partner: RunningNode, requester: TLSConfig
) -> Iterator[tuple[PartnerSimulator, str]]:
    """Serve a simulator of `partner` until the block ends; it and the target to dial.

    Args:
        partner: The real partner node: the simulator presents its certificate and
            passes calls on to it.
        requester: The requester's node credentials, which the simulator calls the
            partner with.
    """
    config = partner.config
    tls = TLSConfig.from_files(ca=config.tls_ca, cert=config.tls_cert, key=config.tls_key)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    with partner.channel(requester) as channel:
        simulator = PartnerSimulator(pb_grpc.FederationServiceStub(channel))
        pb_grpc.add_FederationServiceServicer_to_server(simulator, server)
        port = server.add_secure_port("127.0.0.1:0", tls.server_credentials())
        server.start()
        try:
            yield simulator, f"localhost:{port}"
        finally:
            server.stop(None)


@contextmanager
def through_simulator(
    requester: Agency, partner: Agency, federation: Federation
) -> Iterator[PartnerSimulator]:
    """`requester`'s calls to `partner` go through a simulator of `partner` for the block."""
    credentials = federation.client(requester.ori, PrincipalKind.NODE, "")
    with simulating(partner.node, credentials) as (simulator, target):
        requester.node.services.peers.update(partner.ori, {"endpoint": target})
        yield simulator
