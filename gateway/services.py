"""The node's services, built once per process from an opened node directory."""

from __future__ import annotations

from dataclasses import dataclass

from federation.agreements import AgreementBook
from federation.client import PartnerClient
from federation.gate import ExchangeGate
from federation.peers import PeerRegistry
from gateway.node_dir import OpenedNode
from gateway.servicers.identity import NodeIdentityView
from node.audit import AuditLog
from node.clock import Clock


@dataclass(frozen=True)
class Services:
    """What the servicers call; each is safe to share between concurrent calls."""

    identity: NodeIdentityView
    clock: Clock
    audit: AuditLog
    peers: PeerRegistry
    agreements: AgreementBook
    gate: ExchangeGate
    partners: PartnerClient

    @classmethod
    def build(cls, node: OpenedNode, *, clock: Clock) -> Services:
        """Wire the services of `node`, all reading time from `clock`."""
        config = node.config
        peers = PeerRegistry(node.engine, clock=clock)
        audit = AuditLog(node.engine, clock=clock)
        agreements = AgreementBook(
            node.engine,
            ori=config.ori,
            federation=config.federation,
            signer=node.signer,
            peers=peers,
            clock=clock,
        )
        return cls(
            identity=node.identity,
            clock=clock,
            audit=audit,
            peers=peers,
            agreements=agreements,
            gate=ExchangeGate(peers, audit, ori=config.ori),
            partners=PartnerClient(node.tls.channel_credentials()),
        )
