"""Agencies with real nodes on loopback, each reached through its operator's admin stub."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import Session, col, select

from alpr.admin.v1 import admin_service_pb2, admin_service_pb2_grpc, agreements_pb2, peers_pb2
from alpr.federation.v1 import agreement_pb2
from node.store import create_engine
from node.store.models import AuditEvent
from tests.support.clock import START, ManualClock
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.pki import Federation

TIMEOUT = 10


def stamp(delta: timedelta) -> Timestamp:
    """`START` + `delta` on the wire."""
    result = Timestamp()
    result.FromDatetime(START + delta)
    return result


@dataclass
class Agency:
    """One agency: its running node and its operator's admin stub."""

    ori: str
    node: RunningNode
    admin: admin_service_pb2_grpc.AdminServiceStub
    node_key: bytes

    def add_peer(self, other: Agency) -> None:
        """Register `other` as a partner, as an operator would."""
        self.admin.AddPeer(
            peers_pb2.AddPeerRequest(
                peer=peers_pb2.Peer(
                    ori=other.ori,
                    name=f"Agency {other.ori}",
                    endpoint=other.node.target,
                    signing_public_key=other.node_key,
                )
            ),
            timeout=TIMEOUT,
        )

    def agreement(self, agreement_id: str) -> agreements_pb2.Agreement:
        """The agreement as this agency holds it."""
        listed = self.admin.ListAgreements(agreements_pb2.ListAgreementsRequest(), timeout=TIMEOUT)
        [found] = [a for a in listed.agreements if a.agreement_id == agreement_id]
        return found

    def audit_events(self, kind: str) -> list[AuditEvent]:
        """This agency's audit events of one kind, in order."""
        engine = create_engine(self.node.config.store_url)
        with Session(engine) as session:
            query = select(AuditEvent).where(col(AuditEvent.kind) == kind)
            events = list(session.exec(query.order_by(col(AuditEvent.seq))).all())
        engine.dispose()
        return events


@contextmanager
def running_agencies(
    federation: Federation,
    directory: Path,
    clock: ManualClock,
    oris: tuple[str, ...],
    store_urls: dict[str, str] | None = None,
    profiles: dict[str, str] | None = None,
) -> Iterator[dict[str, Agency]]:
    """Serve a node per ORI (on its own database, under LAPD's profile or the one named)."""
    with ExitStack() as stack:
        found = {}
        for ori in oris:
            url = (store_urls or {}).get(ori, "")
            profile = (profiles or {}).get(ori, "lapd")
            config = make_node(federation, directory / ori, ori, store_url=url, profile=profile)
            node = stack.enter_context(serving(config, clock=clock))
            channel = stack.enter_context(node.channel(federation.client(ori)))
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            info = admin.GetNodeInfo(admin_service_pb2.GetNodeInfoRequest(), timeout=TIMEOUT)
            found[ori] = Agency(ori, node, admin, info.node.signing_public_key)
        yield found


def agree(
    proposer: Agency,
    accepter: Agency,
    *,
    we_grant: list[agreement_pb2.Grant.ValueType],
    they_grant: list[agreement_pb2.Grant.ValueType],
    days: int = 90,
    purposes: tuple[str, ...] = ("stolen vehicle recovery",),
) -> str:
    """Propose and accept an agreement through both operators; its id."""
    created = proposer.admin.CreateAgreement(
        agreements_pb2.CreateAgreementRequest(
            partner_ori=accepter.ori,
            starts_at=stamp(timedelta(0)),
            sunsets_at=stamp(timedelta(days=days)),
            we_grant=we_grant,
            they_grant=they_grant,
            purposes=list(purposes),
        ),
        timeout=TIMEOUT,
    ).agreement
    agreement_id = created.agreement_id
    proposer.admin.ProposeAgreement(
        agreements_pb2.ProposeAgreementRequest(agreement_id=agreement_id), timeout=TIMEOUT
    )
    accepter.admin.AcceptAgreement(
        agreements_pb2.AcceptAgreementRequest(agreement_id=agreement_id), timeout=TIMEOUT
    )
    return agreement_id
