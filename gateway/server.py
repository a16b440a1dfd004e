"""Assembling the gRPC server, and running it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from alpr.admin.v1 import admin_service_pb2, admin_service_pb2_grpc
from alpr.capture.v1 import capture_service_pb2, capture_service_pb2_grpc
from alpr.federation.v1 import federation_service_pb2, federation_service_pb2_grpc
from alpr.patrol.v1 import patrol_service_pb2, patrol_service_pb2_grpc
from alpr.search.v1 import search_service_pb2, search_service_pb2_grpc
from gateway import logs
from gateway.config import NodeConfig
from gateway.interceptors import (
    Access,
    AccessLogInterceptor,
    Audience,
    AuthorizationInterceptor,
    ErrorInterceptor,
    IdentityInterceptor,
    Login,
)
from gateway.jobs import start_scheduler, stop_scheduler
from gateway.logs import fields
from gateway.node_dir import OpenedNode, open_node
from gateway.servicers.admin import AdminServicer
from gateway.servicers.capture import CaptureServicer
from gateway.servicers.federation import FederationServicer
from gateway.servicers.patrol import PatrolServicer
from gateway.servicers.search import SearchServicer
from gateway.services import Services
from node.capture.frames import CaptureUnavailableError
from node.clock import Clock, system_clock
from node.profile import APPROVER_ROLES, Role

log = logging.getLogger("alpr.server")
BACKGROUND_GRACE_SECONDS = 5.0
WORKER_THREAD_NAME = "node-worker"
HealthServicer = Any  # grpc_health ships no types

_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]
_FEDERATION = federation_service_pb2.DESCRIPTOR.services_by_name["FederationService"]
_CAPTURE = capture_service_pb2.DESCRIPTOR.services_by_name["CaptureService"]
_PATROL = patrol_service_pb2.DESCRIPTOR.services_by_name["PatrolService"]
_SEARCH = search_service_pb2.DESCRIPTOR.services_by_name["SearchService"]
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION = "grpc.reflection.v1alpha.ServerReflection"

_ANYONE = frozenset(Role)
_ADMINISTRATORS = frozenset({Role.SYSTEM_ADMINISTRATOR})
_RECORDS = frozenset({Role.SYSTEM_ADMINISTRATOR, Role.CUSTODIAN_OF_RECORDS})
_DATA = frozenset({Role.SYSTEM_ADMINISTRATOR, Role.DATA_USER})
_REVIEWERS = frozenset({Role.SYSTEM_ADMINISTRATOR, Role.AUDITOR, Role.CUSTODIAN_OF_RECORDS})
_HITS = frozenset({Role.SYSTEM_ADMINISTRATOR, Role.DATA_USER, Role.PATROL})


def _rules(service: ServiceDescriptor, access: Access, *names: str) -> dict[str, Access]:
    """`access` for the methods `names` of `service`, or for all of them when none is named."""
    methods = names or tuple(method.name for method in service.methods)
    return {f"/{service.full_name}/{name}": access for name in methods}


def _admin(roles: frozenset[Role], login: Login, *names: str) -> dict[str, Access]:
    return _rules(_ADMIN, Access(Audience.OWN_USERS, roles, login), *names)


# The one table of who may call each method: the certificate's audience and, for methods
# behind a login, the roles of ACC-1 that may. A method missing here is refused to everyone.
# AdminService is for the agency's operators (WhoAmI, Login and ChangePassword, whose
# password is the proof, for any of its users and devices); FederationService for partner
# nodes; CaptureService for the agency's cameras and PatrolService for its patrol clients;
# SearchService for its users. Managing users and deciding partners' requests always need a
# session; the rest of AdminService, SearchService and PatrolService does when the node's
# [access] require_login is true.
ACCESS: dict[str, Access] = {
    **_rules(_HEALTH, Access(Audience.ANY_PRINCIPAL)),
    f"/{_REFLECTION}/ServerReflectionInfo": Access(Audience.ANY_PRINCIPAL),
    **_admin(_ADMINISTRATORS, Login.CONFIGURED),
    **_admin(_ANYONE, Login.CONFIGURED, "GetNodeInfo"),
    **_rules(_ADMIN, Access(Audience.OWN_AGENCY), "WhoAmI", "Login", "ChangePassword"),
    **_admin(_RECORDS, Login.CONFIGURED, "AddPeer", "ListPeers", "UpdatePeer", "RemovePeer"),
    **_admin(
        _RECORDS,
        Login.CONFIGURED,
        *(name for name in _ADMIN.methods_by_name if "Agreement" in name),
        "ImportNonComplianceList",
    ),
    **_admin(
        _DATA,
        Login.CONFIGURED,
        *(name for name in _ADMIN.methods_by_name if "HotlistEntr" in name),
        "CreateHotlist",
        "ListHotlists",
        "ImportHotlist",
    ),
    **_admin(
        _ADMINISTRATORS,
        Login.ALWAYS,
        "CreateUser",
        "ListUsers",
        "DeactivateUser",
        "ReactivateUser",
        "RecordUserStep",
        "ResetPassword",
    ),
    **_admin(_REVIEWERS, Login.ALWAYS, "ListRefusedLogins"),
    # Any role that may approve; the profile's sharing.approver_roles narrow it (SHR-5).
    **_admin(
        APPROVER_ROLES,
        Login.ALWAYS,
        "ListPartnerRequests",
        "ApprovePartnerRequest",
        "DenyPartnerRequest",
    ),
    **_rules(_FEDERATION, Access(Audience.PARTNER_NODES)),
    **_rules(_CAPTURE, Access(Audience.OWN_AGENCY)),
    **_rules(_PATROL, Access(Audience.OWN_AGENCY, _HITS, Login.CONFIGURED)),
    # Each investigator lists their own held queries; a system administrator's session
    # lists everyone's (gateway.servicers.search).
    **_rules(_SEARCH, Access(Audience.OWN_USERS, _DATA, Login.CONFIGURED)),
}
SERVICE_NAMES = tuple(
    service.full_name for service in (_ADMIN, _FEDERATION, _CAPTURE, _PATROL, _SEARCH)
)


def create_server(
    node: OpenedNode,
    *,
    access: Mapping[str, Access] = ACCESS,
    extra_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]] = (),
    services: Services | None = None,
    clock: Clock = system_clock,
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """Build the node's server, bound but not started.

    Args:
        node: The opened node directory.
        access: Who may call each method; tests widen it for their own handlers.
        extra_handlers: More services to serve behind the same interceptors (tests).
        services: The node's services, if the caller built them; else built here.
        clock: Where time comes from when the services are built here.

    Returns:
        The server, the port it is bound to, and its health servicer.
    """
    config = node.config
    services = services or Services.build(node, clock=clock)
    server = grpc.aio.server(
        interceptors=[
            AccessLogInterceptor(),
            ErrorInterceptor(),
            IdentityInterceptor(config.federation),
            AuthorizationInterceptor(
                config.ori,
                access,
                sessions=services.sessions,
                watch=services.watch,
                require_login=config.require_login,
                gate=services.gate,
            ),
        ],
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            # What we send is ours (a whole hotlist snapshot can be large); what we take is bounded.
            ("grpc.max_send_message_length", -1),
        ],
    )
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(services), server)
    federation_service_pb2_grpc.add_FederationServiceServicer_to_server(
        FederationServicer(services), server
    )
    capture_service_pb2_grpc.add_CaptureServiceServicer_to_server(CaptureServicer(services), server)
    patrol_service_pb2_grpc.add_PatrolServiceServicer_to_server(
        PatrolServicer(services, heartbeat_seconds=config.heartbeat_seconds), server
    )
    search_service_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(services), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, _HEALTH.full_name, _REFLECTION), server)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    port = server.add_secure_port(config.listen, node.tls.server_credentials())
    return server, port, health_servicer


def use_worker_threads(threads: int) -> None:
    """Run the node's work off the event loop on `threads` threads of its own.

    That work is every `asyncio.to_thread`, every servicer method that is a plain
    function, and every scheduled job, all of which use the loop's default executor.
    asyncio's own default, ``min(32, cores + 4)`` threads, follows the machine the node
    happens to run on; the node's database pool follows `[server] worker_threads`, and
    so does this. Call it on the running loop before the server starts.
    """
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=WORKER_THREAD_NAME)
    asyncio.get_running_loop().set_default_executor(executor)


def start_background(services: Services) -> list[asyncio.Task[None]]:
    """Start the node's background work on the running loop.

    The hit broker, the sweep that ends open calls of sessions ended by another process
    (ACC-5), on PostgreSQL the listener that wakes the broker when another process
    serving the agency commits a hit, and the delivery of acknowledgements a previous
    run still owed partners (AUD-6).
    """
    services.receipting.owed.restore(services.peers)
    tasks = [
        asyncio.create_task(services.broker.run(), name="hit-broker"),
        asyncio.create_task(services.watch.run(services.users.get), name="session-watch"),
    ]
    if services.notices is not None:
        tasks.append(asyncio.create_task(services.notices.run(), name="hit-notices"))
    return tasks


async def stop_background(services: Services, tasks: Sequence[asyncio.Task[None]]) -> None:
    """Let acknowledgements under way finish, then cancel what `start_background` started.

    A task still busy after `BACKGROUND_GRACE_SECONDS` (a database driver's cleanup that
    never returns) is left behind rather than holding up the stop.
    """
    await services.queries.settled()
    for task in tasks:
        task.cancel()
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=BACKGROUND_GRACE_SECONDS)
        for task in stuck:
            log.warning("background task did not stop", extra=fields(task=task.get_name()))


async def _set_serving(health_servicer: HealthServicer, *, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", *SERVICE_NAMES):
        await health_servicer.set(service, status)


def _check_capture(services: Services) -> None:
    """Load the capture models once: a bad one stops start-up; a missing extra only warns.

    Raises:
        ModelError: A configured (or shipped) model is missing or of the wrong shape.
    """
    try:
        services.frames.check()
    except CaptureUnavailableError as error:
        log.warning("frames will be refused", extra=fields(reason=str(error)))


async def serve(config: NodeConfig) -> None:
    """Open the node, serve until SIGTERM or SIGINT, then drain in-flight calls and stop.

    Raises:
        ConfigError: The node cannot be opened (see `open_node`).
        ModelError: A capture model is missing or of the wrong shape.
    """
    node = open_node(config, now=datetime.now(UTC))
    logs.configure()
    services = Services.build(node, clock=system_clock)
    _check_capture(services)
    server, port, health_servicer = create_server(node, services=services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    use_worker_threads(config.worker_threads)
    await server.start()
    background = start_background(services)
    scheduler = start_scheduler(services, node.engine)
    await _set_serving(health_servicer, serving=True)
    host = config.listen.rpartition(":")[0]
    log.info(
        "serving",
        extra=fields(
            ori=config.ori,
            federation=config.federation,
            address=f"{host}:{port}",
            port=port,
            store=node.engine.url.get_backend_name(),
        ),
    )
    await stop.wait()
    log.info("stopping", extra=fields(grace_seconds=config.shutdown_grace_seconds))
    await _set_serving(health_servicer, serving=False)
    await stop_scheduler(scheduler)
    await server.stop(config.shutdown_grace_seconds)
    await stop_background(services, background)
    await services.partners.close()
    services.frames.close()
    node.engine.dispose()
    log.info("stopped")
