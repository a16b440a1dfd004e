"""`alpr` commands that call a running node's AdminService as its operator.

Admin changes go through the node, never around it: each command connects over mTLS
with the operator's own certificate (``--cert``/``--key``, or ALPR_CERT/ALPR_KEY;
``--ca``/ALPR_CA; ``--target``/ALPR_TARGET), and with the session `alpr login` kept in
``--session``/ALPR_SESSION when that file exists (see `gateway.cli_users`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alpr.admin.v1 import admin_service_pb2, admin_service_pb2_grpc, agreements_pb2, peers_pb2
from alpr.federation.v1 import agreement_pb2
from federation.terms import REQUIRED_CLAUSES
from gateway.interceptors import SESSION_METADATA
from gateway.tls import TLSConfig
from node.errors import ValidationError

EXIT_REFUSED = 1
if TYPE_CHECKING:
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
else:  # the runtime class is not generic
    _ClientInterceptor = grpc.UnaryUnaryClientInterceptor
Stub = admin_service_pb2_grpc.AdminServiceStub
GRANTS = {
    "hotlists": agreement_pb2.GRANT_RECEIVE_HOTLISTS,
    "queries": agreement_pb2.GRANT_ASK_PLATE_QUERIES,
}
_GRANT_NAMES = {value: name for name, value in GRANTS.items()}


def _connection_options(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    group = parser.add_argument_group("connection (or ALPR_TARGET, ALPR_CA, ALPR_CERT, ALPR_KEY)")
    group.add_argument("--target", default=env("ALPR_TARGET"), help="host:port of the node")
    group.add_argument("--ca", type=Path, default=env("ALPR_CA"), help="federation CA cert")
    group.add_argument("--cert", type=Path, default=env("ALPR_CERT"), help="your certificate")
    group.add_argument("--key", type=Path, default=env("ALPR_KEY"), help="your private key")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    group.add_argument(
        "--session",
        type=Path,
        default=env("ALPR_SESSION"),
        help="the file `alpr login` keeps your session in",
    )


class _SessionMetadata(_ClientInterceptor):
    """Sends the session token with every call, as the node's AuthorizationInterceptor reads it."""

    def __init__(self, token: str) -> None:
        self._metadata = (SESSION_METADATA, f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:  # noqa: ANN401
        """Add the token to the call's metadata."""
        metadata = [*(details.metadata or ()), self._metadata]
        return continuation(details._replace(metadata=metadata), request)


def _with_session(channel: grpc.Channel, session: Path | None) -> grpc.Channel:
    """`channel`, sending the token in `session` when that file exists."""
    if session is None or not session.is_file():
        return channel
    return grpc.intercept_channel(channel, _SessionMetadata(session.read_text().strip()))


def _connection(args: argparse.Namespace) -> TLSConfig:
    """The certificates named by `_connection_options`, once each option is checked given.

    Raises:
        ValidationError: The target or a certificate file is not given.
    """
    for name in ("target", "ca", "cert", "key"):
        if not getattr(args, name):
            raise ValidationError(f"--{name}", "is required (or set ALPR_" + name.upper() + ")")
    return TLSConfig.from_files(ca=args.ca, cert=args.cert, key=args.key)


def _call(args: argparse.Namespace, action: Callable[[Stub, grpc.Channel], None]) -> int:
    """Run `action` against the node; a refused or failed call is one line and exit 1."""
    tls = _connection(args)
    with grpc.secure_channel(args.target, tls.channel_credentials()) as channel:
        try:
            session_channel = _with_session(channel, args.session)
            action(Stub(session_channel), session_channel)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else ""
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            print(f"alpr: error: {args.target}: {code} {details}", file=sys.stderr)
            return EXIT_REFUSED
    return 0


def parse_moment(text: str, field: str) -> datetime:
    """An ISO 8601 date or time from the command line, as UTC; a time with no zone is UTC.

    A zoned time is converted here, so that one past either end of the calendar once in
    UTC (9999-12-31T23:59:59-05:00 is in the year 10000) is refused naming its option,
    not by a traceback where a protobuf Timestamp is made of it.

    Raises:
        ValidationError: It is not ISO 8601, or not within years 1 to 9999 in UTC.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValidationError(field, f"{text!r} is not an ISO 8601 date or time") from error
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise ValidationError(field, f"{text!r} is outside years 1 to 9999 in UTC") from error


def _timestamp(text: str, field: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(parse_moment(text, field))
    return stamp


def _print_rows(header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    table = [list(map(str, header)), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _info(args: argparse.Namespace) -> int:
    def action(admin: Stub, channel: grpc.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=args.timeout
        )
        me = admin.WhoAmI(admin_service_pb2.WhoAmIRequest(), timeout=args.timeout)
        node = admin.GetNodeInfo(admin_service_pb2.GetNodeInfoRequest(), timeout=args.timeout).node
        print(f"node        {node.ori} {node.name} (federation {node.federation})")
        print(f"health      {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}")
        print(f"signing key {node.signing_key_fingerprint}")
        print(f"public key  {node.signing_public_key.hex()}")
        print(f"version     {node.software_version}")
        print(f"you are     {me.principal.spiffe_id}")

    return _call(args, action)


def _print_peer(peer: peers_pb2.Peer) -> None:
    print(f"{peer.ori}  {peer.name}  {peer.endpoint}  {peer.spiffe_id}")
    print(f"    key fingerprint {peer.signing_key_fingerprint} (check it with the partner)")


def _public_key(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as error:
        raise ValidationError("--public-key", "is not hex") from error


def _peers_add(args: argparse.Namespace) -> int:
    peer = peers_pb2.Peer(
        ori=args.ori,
        name=args.name,
        endpoint=args.endpoint,
        spiffe_id=args.spiffe_id or "",
        signing_public_key=_public_key(args.public_key),
    )
    return _call(
        args,
        lambda admin, _: _print_peer(
            admin.AddPeer(peers_pb2.AddPeerRequest(peer=peer), timeout=args.timeout).peer
        ),
    )


def _peers_list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        token, rows = "", []
        while True:
            page = admin.ListPeers(
                peers_pb2.ListPeersRequest(page_token=token), timeout=args.timeout
            )
            rows += [
                (p.ori, p.name, p.endpoint, p.spiffe_id, p.signing_key_fingerprint)
                for p in page.peers
            ]
            token = page.next_page_token
            if not token:
                break
        _print_rows(("ORI", "NAME", "ENDPOINT", "SAN", "KEY FINGERPRINT"), rows)

    return _call(args, action)


def _peers_update(args: argparse.Namespace) -> int:
    peer = peers_pb2.Peer(ori=args.ori)
    paths = []
    for option, field in (("name", "name"), ("endpoint", "endpoint"), ("spiffe_id", "spiffe_id")):
        if getattr(args, option) is not None:
            setattr(peer, field, getattr(args, option))
            paths.append(field)
    if args.public_key is not None:
        peer.signing_public_key = _public_key(args.public_key)
        paths.append("signing_public_key")
    request = peers_pb2.UpdatePeerRequest(
        peer=peer, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    return _call(
        args, lambda admin, _: _print_peer(admin.UpdatePeer(request, timeout=args.timeout).peer)
    )


def _peers_remove(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        admin.RemovePeer(peers_pb2.RemovePeerRequest(ori=args.ori), timeout=args.timeout)
        print(f"removed peer {args.ori}")

    return _call(args, action)


def _print_agreement(agreement: agreements_pb2.Agreement) -> None:
    """An agreement as its operator must read it before countersigning it.

    A proposal says whose move it is: ours to accept, or the partner's. The purposes and
    the clauses beyond the SHR-2 ones every agreement carries are printed whole, and a
    renewal names the agreement it renews and the compliance review behind it (SHR-4).
    """
    state = agreements_pb2.AgreementState.Name(agreement.state).removeprefix("AGREEMENT_STATE_")
    whose = "drafted by us" if agreement.we_proposed else "drafted by the partner"
    if agreement.state == agreements_pb2.AGREEMENT_STATE_PROPOSED:
        state += ", awaiting the partner" if agreement.we_proposed else ", awaiting you"
    print(
        f"agreement {agreement.agreement_id}  {state.lower()}  "
        f"with {agreement.partner_ori} ({whose})"
    )
    print(
        f"    term {agreement.term}, {agreement.starts_at.ToDatetime(UTC):%Y-%m-%d %H:%M} to "
        f"{agreement.sunsets_at.ToDatetime(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{agreement.signature_count} of 2 signatures"
    )
    if agreement.renews_agreement_id:
        print(f"    renews {agreement.renews_agreement_id}")
    if agreement.compliance_review:
        review = json.loads(agreement.compliance_review)
        print(
            f"    compliance review by {review['reviewer']}, "
            f"{datetime.fromisoformat(review['at']).astimezone(UTC):%Y-%m-%d %H:%M} UTC: "
            f"{review['summary']}"
        )
    print(f"    we grant: {', '.join(_GRANT_NAMES[g] for g in agreement.we_grant) or '-'}")
    print(f"    they grant: {', '.join(_GRANT_NAMES[g] for g in agreement.they_grant) or '-'}")
    print(f"    purposes: {'; '.join(agreement.purposes)}")
    extra = [clause for clause in agreement.clauses if clause not in REQUIRED_CLAUSES]
    print(
        f"    clauses: the {len(REQUIRED_CLAUSES)} SHR-2 requires"
        + (", and:" if extra else " only")
    )
    for clause in extra:
        print(f"      - {clause}")
    if agreement.revoked_reason:
        print(f"    revoked: {agreement.revoked_reason}")


def _agreements_create(args: argparse.Namespace) -> int:
    request = agreements_pb2.CreateAgreementRequest(
        partner_ori=args.partner,
        starts_at=_timestamp(args.starts, "--starts"),
        sunsets_at=_timestamp(args.sunsets, "--sunsets"),
        we_grant=[GRANTS[g] for g in args.we_grant],
        they_grant=[GRANTS[g] for g in args.they_grant],
        purposes=args.purpose,
        extra_clauses=args.clause,
    )
    return _call(
        args,
        lambda admin, _: _print_agreement(
            admin.CreateAgreement(request, timeout=args.timeout).agreement
        ),
    )


def _agreements_step(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        if args.step == "propose":
            request = agreements_pb2.ProposeAgreementRequest(agreement_id=args.id)
            _print_agreement(admin.ProposeAgreement(request, timeout=args.timeout).agreement)
        elif args.step == "accept":
            accept = agreements_pb2.AcceptAgreementRequest(agreement_id=args.id)
            _print_agreement(admin.AcceptAgreement(accept, timeout=args.timeout).agreement)
        else:
            revoke = agreements_pb2.RevokeAgreementRequest(agreement_id=args.id, reason=args.reason)
            answer = admin.RevokeAgreement(revoke, timeout=args.timeout)
            _print_agreement(answer.agreement)
            if not answer.partner_notified:
                print(f"    the partner was not told: {answer.partner_error}")

    return _call(args, action)


def _agreements_renew(args: argparse.Namespace) -> int:
    request = agreements_pb2.RenewAgreementRequest(
        agreement_id=args.id,
        starts_at=_timestamp(args.starts, "--starts"),
        sunsets_at=_timestamp(args.sunsets, "--sunsets"),
        reviewer=args.reviewer,
        review_summary=args.summary,
    )
    return _call(
        args,
        lambda admin, _: _print_agreement(
            admin.RenewAgreement(request, timeout=args.timeout).agreement
        ),
    )


def _agreements_list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        token = ""
        while True:
            request = agreements_pb2.ListAgreementsRequest(
                partner_ori=args.partner or "", page_token=token
            )
            page = admin.ListAgreements(request, timeout=args.timeout)
            for agreement in page.agreements:
                _print_agreement(agreement)
            token = page.next_page_token
            if not token:
                break

    return _call(args, action)


def read_file(path: Path) -> bytes:
    """The whole of a file named on the command line.

    Raises:
        ValidationError: Naming the file: it is missing or cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValidationError(str(path), f"cannot be read: {error.strerror}") from error


def _sb34_agencies(path: Path) -> list[agreements_pb2.NonCompliantAgency]:
    """The agencies of a CSV whose columns are `name` and, optionally, `ori`.

    The header matches in any case and after a byte order mark, as a list saved from a
    spreadsheet has them: an `ORI` column left unread would leave a partner listed by its
    ORI unmatched, and its renewal allowed (SHR-4).

    Raises:
        ValidationError: Naming the file: it cannot be read, is not UTF-8, is not CSV or
            has no `name` column.
    """
    try:
        text = read_file(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationError(str(path), f"is not UTF-8 text ({error.reason})") from error
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        names = [name.strip().casefold() for name in next(rows, [])]
        if "name" not in names:
            raise ValidationError(str(path), "needs a header row with a 'name' column")
        records = [dict(zip(names, row, strict=False)) for row in rows]
    except csv.Error as error:
        raise ValidationError(str(path), f"line {rows.line_num}: {error}") from error
    return [
        agreements_pb2.NonCompliantAgency(name=record.get("name", ""), ori=record.get("ori", ""))
        for record in records
    ]


def _sb34_import(args: argparse.Namespace) -> int:
    """Replace the node's SB 34 list with the agencies of a CSV (see `_sb34_agencies`)."""
    request = agreements_pb2.ImportNonComplianceListRequest(
        agencies=_sb34_agencies(args.file), source=args.source or args.file.name
    )

    def action(admin: Stub, _: grpc.Channel) -> None:
        count = admin.ImportNonComplianceList(request, timeout=args.timeout).imported
        print(f"the SB 34 non-compliance list now holds {count} agencies")

    return _call(args, action)


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `admin`, `peers`, `agreements` and `sb34` commands to the `alpr` parser."""
    admin = commands.add_parser("admin", help="call a running node as its operator")
    info = admin.add_subparsers(dest="action", required=True).add_parser(
        "info", help="health, identity, keys and who you are"
    )
    _connection_options(info)
    info.set_defaults(run=_info)

    _add_peer_commands(commands)
    _add_agreement_commands(commands)
    _add_sb34_commands(commands)


def _add_peer_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    peers = commands.add_parser("peers", help="partner nodes").add_subparsers(
        dest="action", required=True
    )
    add = peers.add_parser("add", help="register a partner's node")
    add.add_argument("--ori", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--endpoint", required=True, help="host:port")
    add.add_argument("--public-key", required=True, help="its Ed25519 key, hex (alpr admin info)")
    add.add_argument("--spiffe-id", help="its certificate SAN (default from the ORI)")
    add.set_defaults(run=_peers_add)
    update = peers.add_parser("update", help="change a partner's record")
    update.add_argument("ori")
    for option in ("--name", "--endpoint", "--spiffe-id", "--public-key"):
        update.add_argument(option)
    update.set_defaults(run=_peers_update)
    remove = peers.add_parser("remove", help="forget a partner")
    remove.add_argument("ori")
    remove.set_defaults(run=_peers_remove)
    listing = peers.add_parser("list", help="list partners")
    listing.set_defaults(run=_peers_list)
    for command in (add, update, remove, listing):
        _connection_options(command)


def _add_agreement_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agreements = commands.add_parser("agreements", help="inter-agency agreements")
    steps = agreements.add_subparsers(dest="action", required=True)
    create = steps.add_parser("create", help="draft an agreement, signed by us")
    create.add_argument("--partner", required=True, help="the partner's ORI")
    create.add_argument("--starts", required=True, help="ISO 8601, UTC unless zoned")
    create.add_argument("--sunsets", required=True, help="at most a year after --starts")
    for option, whom in (("--we-grant", "we let the partner"), ("--they-grant", "we ask for")):
        create.add_argument(
            option,
            action="append",
            default=[],
            choices=sorted(GRANTS),
            help=f"what {whom} receive: hotlists, queries (repeat)",
        )
    create.add_argument("--purpose", action="append", required=True, help="repeat")
    create.add_argument("--clause", action="append", default=[], help="beyond SHR-2's")
    create.set_defaults(run=_agreements_create)
    made = [create]
    for step, text in (
        ("propose", "send a draft"),
        ("accept", "countersign a proposal"),
        ("revoke", "revoke at once"),
    ):
        command = steps.add_parser(step, help=text)
        command.add_argument("id")
        if step == "revoke":
            command.add_argument("--reason", required=True)
        command.set_defaults(run=_agreements_step, step=step)
        made.append(command)
    renew = steps.add_parser("renew", help="draft the next term (SHR-4)")
    renew.add_argument("id")
    renew.add_argument("--starts", required=True)
    renew.add_argument("--sunsets", required=True)
    renew.add_argument("--reviewer", required=True, help="who reviewed compliance")
    renew.add_argument("--summary", required=True, help="what the review found")
    renew.set_defaults(run=_agreements_renew)
    listed = steps.add_parser("list", help="list agreements")
    listed.add_argument("--partner")
    listed.set_defaults(run=_agreements_list)
    for command in (*made, renew, listed):
        _connection_options(command)


def _add_sb34_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sb34 = commands.add_parser("sb34", help="the AG's SB 34 non-compliance list")
    load = sb34.add_subparsers(dest="action", required=True).add_parser(
        "import", help="replace the list from a CSV with columns name[,ori]"
    )
    load.add_argument("file", type=Path)
    load.add_argument("--source", help="where the list came from (default: file name)")
    _connection_options(load)
    load.set_defaults(run=_sb34_import)
