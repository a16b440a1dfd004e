"""`alpr search` commands: an investigator asks the partners, and collects what they held.

`alpr search partners PLATE` asks every partner whose agreement lets us ask where a plate
was seen, stating an authorized purpose and a case number (ACC-6); `alpr search held` lists
the investigator's queries that partners hold for their approver (SHR-5); `alpr search
collect PARTNER REFERENCE` collects one's answer once approved. Each calls the running node
over mTLS with the investigator's own certificate, and the session `alpr login` kept where
the node requires logins (see `gateway.cli_admin`).
"""

from __future__ import annotations

import argparse

import grpc

from alpr.search.v1 import search_service_pb2 as pb
from alpr.search.v1 import search_service_pb2_grpc as pb_grpc
from gateway.cli_admin import Stub, _call, _connection_options, _print_rows, _timestamp
from gateway.cli_hotlists import _every_page

TIME = "%Y-%m-%d %H:%M"


def _print_answer(partner: pb.PartnerAnswer) -> None:
    """One partner's part: its outcome, the reference it holds the query under, its reads."""
    outcome = pb.PartnerOutcome.Name(partner.outcome).removeprefix("PARTNER_OUTCOME_")
    said = [f"{partner.partner_ori}: {outcome.lower().replace('_', ' ')}"]
    if partner.approval_reference:
        said.append(f"reference {partner.approval_reference} (collect once approved)")
    if partner.detail:
        said.append(partner.detail)
    if partner.truncated:
        said.append("more reads than were sent")
    print(", ".join(said))
    for read in partner.reads:
        print(f"    {read.plate}  {read.captured_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC  "
              f"{read.camera_id}  {read.latitude:.5f}, {read.longitude:.5f}  "
              f"({read.confidence:.2f})")  # fmt: skip


def _partners(args: argparse.Namespace) -> int:
    request = pb.SearchPartnersRequest(
        plate=args.plate,
        since=_timestamp(args.since, "--since"),
        until=_timestamp(args.until, "--until"),
        purpose=args.purpose,
        case_number=args.case,
        judicial_warrant=args.warrant,
        deadline_ms=args.deadline_ms,
    )

    def action(_: Stub, channel: grpc.Channel) -> None:
        answer = pb_grpc.SearchServiceStub(channel).SearchPartners(request, timeout=args.timeout)
        if not answer.partners:
            print("no partner's agreement in force lets us ask it plate queries")
        for partner in answer.partners:
            _print_answer(partner)

    return _call(args, action)


def _held(args: argparse.Namespace) -> int:
    def action(_: Stub, channel: grpc.Channel) -> None:
        search = pb_grpc.SearchServiceStub(channel)
        rows = [
            (
                query.partner_ori,
                query.approval_reference,
                query.plate,
                f"{query.since.ToDatetime():{TIME}}",
                f"{query.until.ToDatetime():{TIME}}",
                query.case_number,
                query.purpose,
                f"{query.ask_time.ToDatetime():{TIME}}",
                pb.HeldQueryState.Name(query.state).removeprefix("HELD_QUERY_STATE_").lower(),
            )
            for page in _every_page(
                lambda token: search.ListHeldQueries(
                    pb.ListHeldQueriesRequest(page_token=token), timeout=args.timeout
                )
            )
            for query in page.held_queries
        ]
        _print_rows(("partner", "reference", "plate", "from", "to", "case", "purpose",
                     "asked", "state"), rows)  # fmt: skip

    return _call(args, action)


def _collect(args: argparse.Namespace) -> int:
    request = pb.CollectPartnerAnswerRequest(
        partner_ori=args.partner, approval_reference=args.reference, deadline_ms=args.deadline_ms
    )

    def action(_: Stub, channel: grpc.Channel) -> None:
        search = pb_grpc.SearchServiceStub(channel)
        _print_answer(search.CollectPartnerAnswer(request, timeout=args.timeout).partner)

    return _call(args, action)


def add_search_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr search` and its `partners`, `held` and `collect` to `alpr`."""
    search = commands.add_parser("search", help="ask the partners where a plate was seen")
    steps = search.add_subparsers(dest="action", required=True)
    partners = steps.add_parser("partners", help="ask every partner at once (ACC-6)")
    partners.add_argument("plate", help='a whole plate, or a partial one ("7AB?12*")')
    partners.add_argument("--since", required=True, help="ISO 8601, UTC unless zoned")
    partners.add_argument("--until", required=True, help="ISO 8601, excluded")
    partners.add_argument("--purpose", required=True, help="an authorized purpose of the profile")
    partners.add_argument("--case", required=True, help="the case or incident number")
    partners.add_argument("--warrant", default="", help="the judicial warrant, if any (ACC-7)")
    partners.set_defaults(run=_partners)
    held = steps.add_parser("held", help="your queries partners hold for approval (SHR-5)")
    held.set_defaults(run=_held)
    collect = steps.add_parser("collect", help="collect a held query's answer once approved")
    collect.add_argument("partner", help="the ORI of the partner that held it")
    collect.add_argument("reference", help="its reference for the held query")
    collect.set_defaults(run=_collect)
    for command in (partners, collect):
        command.add_argument(
            "--deadline-ms", type=int, default=0, help="how long to wait: 0 for 5000, ≤ 30000"
        )
    for command in (partners, held, collect):
        _connection_options(command)
