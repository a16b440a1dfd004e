"""AdminService's peer RPCs: operators register the partner nodes they deal with.

Each change is audited (AUD-1) with the key's fingerprint before and after: a peer
record is what every exchange with that partner is trusted by.
"""

from __future__ import annotations

from alpr.admin.v1 import peers_pb2
from federation.peers import Peer, PeerRegistry
from gateway.interceptors import Context, audit_call
from gateway.servicers.identity import NodeIdentityView
from gateway.servicers.times import timestamp
from node.audit import AuditLog
from node.errors import ValidationError
from node.identity import Principal, PrincipalKind


def peer_to_proto(peer: Peer) -> peers_pb2.Peer:
    """A peer on the wire."""
    return peers_pb2.Peer(
        ori=peer.ori,
        name=peer.name,
        endpoint=peer.endpoint,
        spiffe_id=peer.spiffe_id,
        signing_public_key=peer.signing_public_key,
        signing_key_fingerprint=peer.fingerprint,
        create_time=timestamp(peer.created_at),
        update_time=timestamp(peer.updated_at),
    )


class PeerAdmin:
    """The peer RPCs of AdminService, mixed into its servicer."""

    peers: PeerRegistry
    _identity: NodeIdentityView
    audit: AuditLog

    def _partner_san(self, ori: str, spiffe_id: str) -> str:
        """The SAN of agency `ori`'s node in our federation; `spiffe_id`, if given, must be it.

        Our identity interceptor refuses a caller of any other trust domain, and the
        partner's certificate names its node as `Principal.spiffe_id` does: a record with
        any other SAN looks registered, yet no exchange with that partner could succeed.

        Raises:
            ValidationError: ``peer.spiffe_id``: it is given and is another SAN.
        """
        expected = Principal(self._identity.federation, ori, PrincipalKind.NODE).spiffe_id
        if spiffe_id and spiffe_id != expected:
            raise ValidationError(
                "peer.spiffe_id",
                f"{spiffe_id!r} is not the node of {ori} in federation "
                f"{self._identity.federation}: it is {expected!r}",
            )
        return expected

    def _peer_from_proto(self, message: peers_pb2.Peer) -> Peer:
        """The peer an operator sent to register, never our own agency.

        Raises:
            ValidationError: The ORI is ours, the SAN is not its node's, or a field is
                malformed.
        """
        if message.ori == self._identity.ori:
            raise ValidationError(
                "peer.ori", f"{message.ori} is this node's own agency; a node is not its partner"
            )
        return Peer(
            ori=message.ori,
            name=message.name,
            endpoint=message.endpoint,
            spiffe_id=self._partner_san(message.ori, message.spiffe_id),
            signing_public_key=message.signing_public_key,
        )

    def AddPeer(  # noqa: N802 (gRPC method name)
        self, request: peers_pb2.AddPeerRequest, context: Context
    ) -> peers_pb2.AddPeerResponse:
        """Register a partner."""
        if not request.HasField("peer"):
            raise ValidationError("peer", "is required")
        peer = self.peers.add(self._peer_from_proto(request.peer))
        audit_call(self.audit, "peer.added", context, ori=peer.ori, name=peer.name,
                   endpoint=peer.endpoint, spiffe_id=peer.spiffe_id,
                   fingerprint=peer.fingerprint)  # fmt: skip
        return peers_pb2.AddPeerResponse(peer=peer_to_proto(peer))

    def ListPeers(  # noqa: N802 (gRPC method name)
        self, request: peers_pb2.ListPeersRequest, context: Context
    ) -> peers_pb2.ListPeersResponse:
        """List partners a page at a time."""
        page = self.peers.list(page_size=request.page_size, page_token=request.page_token)
        return peers_pb2.ListPeersResponse(
            peers=[peer_to_proto(peer) for peer in page.peers],
            next_page_token=page.next_page_token,
        )

    def UpdatePeer(  # noqa: N802 (gRPC method name)
        self, request: peers_pb2.UpdatePeerRequest, context: Context
    ) -> peers_pb2.UpdatePeerResponse:
        """Change the fields the update mask names."""
        if not request.HasField("peer") or not request.peer.ori:
            raise ValidationError("peer.ori", "is required")
        paths = list(request.update_mask.paths)
        if not paths:
            raise ValidationError("update_mask", "names no field to change")
        changes = {
            path: getattr(request.peer, path)
            for path in paths
            if path in peers_pb2.Peer.DESCRIPTOR.fields_by_name
        }
        unknown = sorted(set(paths) - set(changes))
        if unknown:
            raise ValidationError("update_mask", f"no such field: {', '.join(unknown)}")
        before = self.peers.require(request.peer.ori)
        if "spiffe_id" in changes:
            changes["spiffe_id"] = self._partner_san(before.ori, request.peer.spiffe_id)
        peer = self.peers.update(request.peer.ori, changes)
        audit_call(self.audit, "peer.updated", context, ori=peer.ori, fields=sorted(changes),
                   endpoint=peer.endpoint, spiffe_id=peer.spiffe_id,
                   fingerprint_before=before.fingerprint,
                   fingerprint=peer.fingerprint)  # fmt: skip
        return peers_pb2.UpdatePeerResponse(peer=peer_to_proto(peer))

    def RemovePeer(  # noqa: N802 (gRPC method name)
        self, request: peers_pb2.RemovePeerRequest, context: Context
    ) -> peers_pb2.RemovePeerResponse:
        """Forget a partner."""
        if not request.ori:
            raise ValidationError("ori", "is required")
        removed = self.peers.require(request.ori)
        self.peers.remove(request.ori)
        audit_call(self.audit, "peer.removed", context, ori=removed.ori,
                   fingerprint=removed.fingerprint)  # fmt: skip
        return peers_pb2.RemovePeerResponse()
