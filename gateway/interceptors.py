"""Server interceptors, one per concern: access log, error mapping, identity, authorization.

Each concern is an async context manager around the call (`ScopedInterceptor.scope`),
so the same code wraps unary and streaming handlers alike. The caller's identity comes
from the verified client certificate in `context.auth_context()` and nowhere else (SEC-1).
A scope may hand the call a `SessionGuard`: a call that stays open (a stream either way)
then runs only while the session that admitted it may be used (ACC-5).
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from federation.client import PartnerFailedError, PartnerRefusedError
from federation.errors import FederationError
from federation.gate import ExchangeGate
from gateway.logs import fields
from node.audit import AuditLog
from node.errors import (
    AlreadyExistsError,
    NodeError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)
from node.identity import Principal, PrincipalKind
from node.pki import principal_of
from node.profile import Role
from node.session_watch import SessionWatch
from node.sessions import Presenter, Sessions, SessionUse
from node.users import User

log = logging.getLogger("alpr.rpc")
ERROR_DOMAIN = "alpr.gateway"
SESSION_METADATA = "authorization"  # value: "Bearer <token from AdminService.Login>"
_BEARER = "Bearer "
_CALLER: contextvars.ContextVar[Principal] = contextvars.ContextVar("caller")
_CERTIFICATE: contextvars.ContextVar[str] = contextvars.ContextVar("certificate")
_USER: contextvars.ContextVar[User | None] = contextvars.ContextVar("user", default=None)

_T = TypeVar("_T")


@dataclass(frozen=True)
class SessionGuard:
    """Runs a long-lived call only while the session that admitted it may be used (ACC-5)."""

    watch: SessionWatch
    use: SessionUse

    def stream(self, responses: AsyncGenerator[_T, None]) -> AsyncIterator[_T]:
        """`responses`, until the session ends (then its error)."""
        return self.watch.stream(self.use, responses)

    async def result(self, step: Awaitable[_T]) -> _T:
        """What `step` gives, unless the session ends first (then its error)."""
        return await self.watch.result(self.use, step)


Context = grpc.aio.ServicerContext[Any, Any]
Scope = Callable[[str, Context], AbstractAsyncContextManager[SessionGuard | None]]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the runtime class is not generic
    _Interceptor = grpc.aio.ServerInterceptor


def current_caller() -> Principal:
    """The principal making the RPC being served, as its certificate names it."""
    return _CALLER.get()


def current_user() -> User | None:
    """The logged-in user making the RPC, when its method needed a session; else None."""
    return _USER.get()


def current_presenter(context: Context) -> Presenter:
    """The caller's certificate (what it names, its digest) and address, for logins."""
    return Presenter(current_caller(), _CERTIFICATE.get(), peer_ip(context))


def audit_call(audit: AuditLog, kind: str, context: Context, **details: object) -> None:
    """Audit an event done by the caller of the RPC being served (AUD-1)."""
    caller = current_caller()
    audit.append(
        kind, actor=caller.spiffe_id, agency=caller.ori, peer_ip=peer_ip(context), details=details
    )


def peer_ip(context: Context) -> str:
    """The caller's IP address, from gRPC's peer string (``ipv4:1.2.3.4:5678``)."""
    kind, _, rest = context.peer().partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return rest


class ScopedInterceptor(_Interceptor):
    """An interceptor whose concern is one async context manager around every call."""

    def scope(
        self, method: str, context: Context
    ) -> AbstractAsyncContextManager[SessionGuard | None]:
        """The context the call to `method` runs inside, and the guard it runs under, if any."""
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler of the method being called in `scope`."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return _wrap(handler, handler_call_details.method, self.scope)


def _wrap(handler: Handler, method: str, scope: Scope) -> Handler:
    serialization = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.response_streaming:
        inner_stream: Any = handler.unary_stream or handler.stream_stream
        make = (
            grpc.stream_stream_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_stream_rpc_method_handler
        )
        if not inspect.isasyncgenfunction(inner_stream):
            # A servicer that streams with `await context.write(...)` (grpc_health's Watch).
            return make(
                _unary_wrapper(inner_stream, method, scope, open_long=True), **serialization
            )

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:  # noqa: ANN401
            async with scope(method, context) as guard:
                responses = inner_stream(request, context)
                async for response in guard.stream(responses) if guard else responses:
                    yield response

        return make(streaming, **serialization)

    make_unary = (
        grpc.stream_unary_rpc_method_handler
        if handler.request_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    inner_unary: Any = handler.unary_unary or handler.stream_unary
    wrapper = _unary_wrapper(inner_unary, method, scope, open_long=handler.request_streaming)
    return make_unary(wrapper, **serialization)


def _unary_wrapper(
    inner: Callable[[Any, Context], Any], method: str, scope: Scope, *, open_long: bool
) -> Callable[[Any, Context], Awaitable[Any]]:
    """Run `inner` in `scope`; under its guard too when the call may stay open (`open_long`).

    A call with one request and one response is checked when it starts and is short; one
    that reads or writes a stream may stay open, so it runs under the guard.

    A servicer method that is a plain function (not a coroutine) runs in a worker thread,
    as gRPC's own threaded server would run it: its database work, which may wait on a
    lock or a network round trip, holds up none of the node's other calls.
    """
    in_thread = not open_long and not inspect.iscoroutinefunction(inner)

    async def unary(request: Any, context: Context) -> Any:  # noqa: ANN401
        async with scope(method, context) as guard:
            if in_thread:
                return await asyncio.to_thread(inner, request, context)
            response = inner(request, context)
            if not inspect.isawaitable(response):
                return response
            return await (guard.result(response) if guard and open_long else response)

    return unary


class AccessLogInterceptor(ScopedInterceptor):
    """Logs every call: method, peer, caller, status code and duration."""

    @asynccontextmanager
    async def scope(self, method: str, context: Context) -> AsyncIterator[None]:
        """Time the call and log how it ended."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        # Read the peer before the call runs: once a client cancels a stream, the call's
        # auth context is gone, and reading it then crashes the process (grpcio 1.85).
        caller, peer = _certificate_principal(context), context.peer()
        try:
            yield
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            log.info(
                "rpc",
                extra=fields(
                    method=method,
                    peer=peer,
                    caller=caller.spiffe_id if caller else None,
                    code=code.name if isinstance(code, grpc.StatusCode) else str(code),
                    ms=round((time.perf_counter() - started) * 1000, 2),
                ),
            )


def _certificate_principal(context: Context) -> Principal | None:
    """The principal the peer's verified certificate names, if it names one."""
    pems = list(context.auth_context().get("x509_pem_cert", []))
    try:
        return principal_of_pem(pems[0]) if pems else None
    except (ValueError, NodeError):
        return None


# The gRPC status each error maps to, with the ErrorInfo reason it carries (AIP-193).
STATUS_OF_ERROR: dict[type[NodeError], tuple[grpc.StatusCode, str]] = {
    ValidationError: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
    UnauthenticatedError: (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    PermissionDeniedError: (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
    NotFoundError: (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    AlreadyExistsError: (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
    PreconditionError: (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
    UnavailableError: (grpc.StatusCode.UNAVAILABLE, "PARTNER_UNAVAILABLE"),
    # A partner's answer, to an operator's call that asked it: refused, failed on its side
    # (may pass), or not verifying (nothing of it was used).
    PartnerRefusedError: (grpc.StatusCode.FAILED_PRECONDITION, "PARTNER_REFUSED"),
    PartnerFailedError: (grpc.StatusCode.UNAVAILABLE, "PARTNER_UNAVAILABLE"),
    FederationError: (grpc.StatusCode.FAILED_PRECONDITION, "EXCHANGE_FAILED"),
    RateLimitedError: (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"),
}


def status_for(error: Exception) -> tuple[status_pb2.Status, str | None]:
    """The rich status to answer `error` with, and the error id when it was unexpected.

    An unexpected error gets INTERNAL with a fresh error id and nothing of its text,
    which is logged locally with the trace under that id.
    """
    if isinstance(error, NodeError):
        for kind in type(error).__mro__:
            if kind in STATUS_OF_ERROR:
                code, reason = STATUS_OF_ERROR[kind]
                return _status(code, str(error), reason, error.metadata()), None
    error_id = uuid.uuid4().hex[:12]
    message = f"internal error; quote error id {error_id} to the node's operator"
    return _status(grpc.StatusCode.INTERNAL, message, "INTERNAL", {"errorId": error_id}), error_id


def _status(
    code: grpc.StatusCode, message: str, reason: str, metadata: Mapping[str, str]
) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(info)
    return status


class ErrorInterceptor(ScopedInterceptor):
    """Maps every exception a servicer raises to a precise status; never leaks a trace."""

    @asynccontextmanager
    async def scope(self, method: str, context: Context) -> AsyncIterator[None]:
        """Turn an exception from the call into an abort with a rich status."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            status, error_id = status_for(error)
            if error_id is not None:
                log.exception("unexpected error", extra=fields(method=method, error_id=error_id))
            grpc_status = rpc_status.to_status(status)
            await context.abort(
                grpc_status.code, grpc_status.details, grpc_status.trailing_metadata
            )


@lru_cache(maxsize=1024)
def principal_of_pem(pem: bytes) -> Principal:
    """The principal a PEM certificate names (cached: a client presents it on every call)."""
    return principal_of(x509.load_pem_x509_certificate(pem))


@lru_cache(maxsize=1024)
def certificate_sha256(pem: bytes) -> str:
    """The SHA-256 of a PEM certificate's DER, hex: what a session token is bound to."""
    certificate = x509.load_pem_x509_certificate(pem)
    return certificate.fingerprint(hashes.SHA256()).hex()


class IdentityInterceptor(ScopedInterceptor):
    """Reads the caller from its verified certificate and holds it for the call (SEC-1)."""

    def __init__(self, federation: str) -> None:
        """Accept only principals of `federation`."""
        self._federation = federation

    @asynccontextmanager
    async def scope(self, method: str, context: Context) -> AsyncIterator[None]:
        """Set `current_caller()` for the call, or refuse it UNAUTHENTICATED."""
        principal = _certificate_principal(context)
        if principal is None or principal.federation != self._federation:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "the client certificate names no principal of this federation",
            )
            return
        pem = next(iter(context.auth_context()["x509_pem_cert"]))
        caller, certificate = _CALLER.set(principal), _CERTIFICATE.set(certificate_sha256(pem))
        try:
            yield
        finally:
            _CERTIFICATE.reset(certificate)
            _CALLER.reset(caller)


class Audience(enum.Enum):
    """Who may call a method, relative to this node's agency."""

    ANY_PRINCIPAL = "any principal of the federation"
    OWN_AGENCY = "a user or device of this agency"
    OWN_USERS = "a user of this agency"
    PARTNER_NODES = "another agency's node"


class Login(enum.Enum):
    """Whether a method needs a logged-in user's session besides the certificate (ACC-3)."""

    NEVER = "the certificate alone"
    CONFIGURED = "a session when the node's [access] require_login is true"
    ALWAYS = "a session always"


@dataclass(frozen=True)
class Access:
    """Who may call one method: the audience of certificates, and behind a login, the roles.

    Attributes:
        audience: Which certificates may call it, relative to this node's agency.
        roles: The roles (ACC-1) that may call it when a session is needed; one suffices.
        login: When a session is needed.
    """

    audience: Audience
    roles: frozenset[Role] = frozenset()
    login: Login = Login.NEVER

    def __post_init__(self) -> None:
        """Refuse a rule that needs a login but names no role (no one could ever call it).

        Raises:
            ValueError: It does.
        """
        if self.login is not Login.NEVER and not self.roles:
            raise ValueError("a method behind a login must name the roles that may call it")


class AuthorizationInterceptor(ScopedInterceptor):
    """Checks every method against one table of method -> `Access`; the rest is denied.

    The certificate must be of the method's audience; where the method needs a session,
    the call must carry one (`SESSION_METADATA`) that `Sessions.authenticate` accepts for
    one of its roles, over the same certificate the session was issued to. A call that stays
    open runs under `watch`, which ends it when the session ends (ACC-5).
    """

    def __init__(
        self,
        ori: str,
        table: Mapping[str, Access],
        *,
        sessions: Sessions,
        watch: SessionWatch,
        require_login: bool,
        gate: ExchangeGate,
    ) -> None:
        """Authorize for the agency `ori` by `table` (full method name -> access).

        Args:
            ori: This node's agency.
            table: Who may call each method.
            sessions: Checks the sessions calls carry.
            watch: Ends the calls left open by a session that ends.
            require_login: Whether `Login.CONFIGURED` methods need a session.
            gate: Denies, uniformly and audited, a caller of a partners' method that is
                no partner's node (SHR-6).
        """
        self._ori = ori
        self._table = table
        self._sessions = sessions
        self._watch = watch
        self._require_login = require_login
        self._gate = gate

    def allows(self, method: str, caller: Principal) -> bool:
        """Whether `caller`'s certificate is of `method`'s audience."""
        own = caller.ori == self._ori
        access = self._table.get(method)
        match access.audience if access else None:
            case Audience.ANY_PRINCIPAL:
                return True
            case Audience.OWN_AGENCY:
                return own and caller.kind is not PrincipalKind.NODE
            case Audience.OWN_USERS:
                return own and caller.kind is PrincipalKind.USER
            case Audience.PARTNER_NODES:
                return not own and caller.kind is PrincipalKind.NODE
            case None:
                return False

    def needs_session(self, method: str) -> bool:
        """Whether a call to `method` must carry a logged-in user's session."""
        access = self._table.get(method)
        login = access.login if access else Login.NEVER
        return login is Login.ALWAYS or (login is Login.CONFIGURED and self._require_login)

    @asynccontextmanager
    async def scope(self, method: str, context: Context) -> AsyncIterator[SessionGuard | None]:
        """Refuse the call unless the table allows it; set `current_user()` for it.

        A partners' method is refused as the gate refuses a partner (SHR-6): a user's or a
        device's certificate, or our own node's, learns no more than an unknown peer, and
        the attempt is audited.
        """
        caller = current_caller()
        if not self.allows(method, caller):
            access = self._table.get(method)
            if access is not None and access.audience is Audience.PARTNER_NODES:
                await asyncio.to_thread(
                    self._gate.deny,
                    caller,
                    method=method.rsplit("/", 1)[-1],
                    peer_ip=peer_ip(context),
                    reason=f"{caller.spiffe_id} is no partner's node",
                )
            raise PermissionDeniedError(f"{method} is not open to this caller")
        use = None
        if self.needs_session(method):
            use = await asyncio.to_thread(  # it reads and writes the database
                self._sessions.authenticate,
                _session_token(context),
                current_presenter(context),
                roles=self._table[method].roles,
                method=method,
            )
        token = _USER.set(use.user if use else None)
        try:
            yield SessionGuard(self._watch, use) if use else None
        finally:
            _USER.reset(token)


def _session_token(context: Context) -> str:
    """The session token the call carries.

    Raises:
        UnauthenticatedError: It carries none.
    """
    for key, value in context.invocation_metadata() or ():
        if key == SESSION_METADATA and isinstance(value, str) and value.startswith(_BEARER):
            return value.removeprefix(_BEARER)
    raise UnauthenticatedError("this method needs a login: call AdminService.Login first")
