"""Protobuf views of the node's identity, shared by the admin and federation servicers."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from alpr.common.v1 import identity_pb2
from node.ed25519 import fingerprint
from node.identity import Principal, PrincipalKind

_KIND = {
    PrincipalKind.NODE: identity_pb2.PRINCIPAL_KIND_NODE,
    PrincipalKind.USER: identity_pb2.PRINCIPAL_KIND_USER,
    PrincipalKind.DEVICE: identity_pb2.PRINCIPAL_KIND_DEVICE,
}


@dataclass(frozen=True, kw_only=True)
class NodeIdentityView:
    """What a node says about itself."""

    ori: str
    name: str
    federation: str
    signing_public_key: bytes

    def to_proto(self) -> identity_pb2.NodeDescription:
        """The node's description on the wire."""
        return identity_pb2.NodeDescription(
            ori=self.ori,
            name=self.name,
            federation=self.federation,
            signing_public_key=self.signing_public_key,
            signing_key_fingerprint=fingerprint(self.signing_public_key),
            software_version=version("alpr-federation"),
        )


def principal_to_proto(principal: Principal) -> identity_pb2.Principal:
    """A principal on the wire."""
    return identity_pb2.Principal(
        spiffe_id=principal.spiffe_id,
        federation=principal.federation,
        ori=principal.ori,
        kind=_KIND[principal.kind],
        name=principal.name,
    )
