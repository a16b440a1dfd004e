"""`alpr holds` commands: the custodian of records places and releases legal holds (RET-4).

Each calls the running node over mTLS with the operator's certificate (see
`gateway.cli_admin`); the node validates and audits.
"""

from __future__ import annotations

import argparse

import grpc

from alpr.admin.v1 import legal_holds_pb2 as pb
from gateway.cli_admin import Stub, _call, _connection_options, _print_rows, _timestamp


def _place(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        hold = pb.LegalHold(
            plate=args.plate,
            since=_timestamp(args.since, "--since"),
            until=_timestamp(args.until, "--until"),
            case_number=args.case,
            reason=args.reason,
            investigator_contact=args.investigator,
            supervisor_approval=args.approved_by,
        )
        placed = admin.PlaceLegalHold(pb.PlaceLegalHoldRequest(hold=hold), timeout=args.timeout)
        print(f"placed legal hold {placed.hold.hold_id} on {placed.hold.plate} for case "
              f"{placed.hold.case_number}; review due in two years")  # fmt: skip

    return _call(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        holds = admin.ListLegalHolds(pb.ListLegalHoldsRequest(), timeout=args.timeout).holds
        _print_rows(
            ("hold", "plate", "from", "to", "case", "placed by", "review"),
            (
                (
                    hold.hold_id,
                    hold.plate,
                    f"{hold.since.ToDatetime():%Y-%m-%d}",
                    f"{hold.until.ToDatetime():%Y-%m-%d}",
                    hold.case_number,
                    hold.placed_by.rpartition("/")[2],
                    "DUE" if hold.review_due else f"{hold.review_time.ToDatetime():%Y-%m-%d}",
                )
                for hold in holds
            ),
        )

    return _call(args, action)


def _step(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        if args.action == "review":
            admin.ReviewLegalHold(
                pb.ReviewLegalHoldRequest(hold_id=args.hold), timeout=args.timeout
            )
            print(f"reviewed legal hold {args.hold}; the next review is due in two years")
        else:
            admin.ReleaseLegalHold(
                pb.ReleaseLegalHoldRequest(hold_id=args.hold), timeout=args.timeout
            )
            print(f"released legal hold {args.hold}; its reads go at the next retention run")

    return _call(args, action)


def add_hold_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr holds` and its `place`, `list`, `review` and `release` to `alpr`."""
    holds = commands.add_parser("holds", help="legal holds on the agency's reads (RET-4)")
    steps = holds.add_subparsers(dest="action", required=True)
    place = steps.add_parser("place", help="keep a plate's reads of a window past retention")
    place.add_argument("--plate", required=True, help='whole or partial, e.g. "7AB?12*"')
    place.add_argument("--since", required=True, help="ISO 8601, UTC unless zoned")
    place.add_argument("--until", required=True, help="ISO 8601, excluded")
    place.add_argument("--case", required=True, help="the case number")
    place.add_argument("--reason", required=True)
    place.add_argument("--investigator", required=True, help="whom to contact")
    place.add_argument("--approved-by", required=True, help="the approving supervisor")
    place.set_defaults(run=_place)
    listing = steps.add_parser("list", help="the holds in force and their reviews")
    listing.set_defaults(run=_list)
    made = [place, listing]
    for step, text in (("review", "record a hold's review"), ("release", "release a hold")):
        command = steps.add_parser(step, help=text)
        command.add_argument("hold", help="the hold's id")
        command.set_defaults(run=_step)
        made.append(command)
    for command in made:
        _connection_options(command)
