"""`alpr requests` commands: the designated role decides partners' held queries (SHR-5).

Each calls the running node over mTLS with the approver's certificate and the session
`alpr login` kept (see `gateway.cli_admin`); the node checks the profile's approver roles
and audits every decision.
"""

from __future__ import annotations

import argparse

import grpc

from alpr.admin.v1 import partner_requests_pb2 as pb
from gateway.cli_admin import Stub, _call, _connection_options, _print_rows


def _list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        rows = []
        token = ""
        while True:
            listed = admin.ListPartnerRequests(
                pb.ListPartnerRequestsRequest(page_token=token), timeout=args.timeout
            )
            rows += [
                (
                    request.reference,
                    request.partner_ori,
                    request.requesting_user.rpartition("/")[2],
                    request.plate,
                    f"{request.since.ToDatetime():%Y-%m-%d %H:%M}",
                    f"{request.until.ToDatetime():%Y-%m-%d %H:%M}",
                    request.case_number,
                    request.purpose,
                )
                for request in listed.requests
            ]
            token = listed.next_page_token
            if not token:
                break
        _print_rows(("reference", "partner", "asked by", "plate", "from", "to", "case",
                     "purpose"), rows)  # fmt: skip

    return _call(args, action)


def _decide(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        if args.action == "approve":
            admin.ApprovePartnerRequest(
                pb.ApprovePartnerRequestRequest(reference=args.reference, reason=args.reason),
                timeout=args.timeout,
            )
            print(f"approved partner request {args.reference}; the partner collects its answer")
        else:
            admin.DenyPartnerRequest(
                pb.DenyPartnerRequestRequest(reference=args.reference, reason=args.reason),
                timeout=args.timeout,
            )
            print(f"denied partner request {args.reference}; the partner learns nothing more")

    return _call(args, action)


def add_request_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr requests` and its `list`, `approve` and `deny` to `alpr`."""
    requests = commands.add_parser(
        "requests", help="partners' plate queries waiting for approval (SHR-5)"
    )
    steps = requests.add_subparsers(dest="action", required=True)
    listing = steps.add_parser("list", help="the partners' queries waiting for approval")
    listing.set_defaults(run=_list)
    made = [listing]
    for step, text in (("approve", "approve a held query"), ("deny", "deny a held query")):
        command = steps.add_parser(step, help=text)
        command.add_argument("reference", help="the request's reference")
        command.add_argument("--reason", required=True, help="why; kept on file and audited")
        command.set_defaults(run=_decide)
        made.append(command)
    for command in made:
        _connection_options(command)
