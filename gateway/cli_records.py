"""`alpr reads correct` and `alpr incidents`: the records an operator adds beside the data.

A misread is corrected by a separate record naming who corrected it, the read staying as
the camera read it (CAP-4); a breach is recorded as an incident with what it exposed, 500
persons or more marking it for the Attorney General's form (SEC-3). Each command calls the
running node over mTLS with the operator's certificate (see `gateway.cli_admin`); the node
validates and audits.
"""

from __future__ import annotations

import argparse
from datetime import UTC

import grpc

from alpr.admin.v1 import records_pb2 as pb
from gateway.cli_admin import Stub, _call, _connection_options, _print_rows, _timestamp

INCIDENT_COLUMNS = (
    "incident",
    "discovered",
    "records",
    "persons",
    "AG form",
    "recorded by",
    "description",
)


def _correct(args: argparse.Namespace) -> int:
    request = pb.CorrectReadRequest(read_id=args.read_id, plate=args.plate, reason=args.reason)

    def action(admin: Stub, _: grpc.Channel) -> None:
        correction = admin.CorrectRead(request, timeout=args.timeout)
        print(f"corrected read {args.read_id} to {args.plate} (correction "
              f"{correction.correction_id}); the read stays as read (CAP-4)")  # fmt: skip

    return _call(args, action)


def _record(args: argparse.Namespace) -> int:
    incident = pb.Incident(
        description=args.description,
        discover_time=_timestamp(args.discovered, "--discovered"),
        affected_records=args.records,
        affected_persons=args.persons,
    )

    def action(admin: Stub, _: grpc.Channel) -> None:
        answer = admin.RecordIncident(
            pb.RecordIncidentRequest(incident=incident), timeout=args.timeout
        )
        recorded = answer.incident
        form = (
            "report it on the Attorney General's form"
            if recorded.attorney_general_form
            else "under 500 persons: not for the Attorney General's form"
        )
        print(f"recorded incident {recorded.incident_id}: {recorded.affected_records} records, "
              f"{recorded.affected_persons} persons; {form} (SEC-3)")  # fmt: skip

    return _call(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        incidents = admin.ListIncidents(pb.ListIncidentsRequest(), timeout=args.timeout).incidents
        rows = [
            (
                incident.incident_id,
                f"{incident.discover_time.ToDatetime(UTC):%Y-%m-%d %H:%M}",
                incident.affected_records,
                incident.affected_persons,
                "yes" if incident.attorney_general_form else "no",
                incident.recorded_by.rpartition("/")[2],
                incident.description,
            )
            for incident in incidents
        ]
        _print_rows(INCIDENT_COLUMNS, rows)

    return _call(args, action)


def add_record_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr reads correct` and `alpr incidents` with its `record` and `list` to `alpr`."""
    reads = commands.add_parser("reads", help="the agency's reads (CAP-4)")
    correct = reads.add_subparsers(dest="action", required=True).add_parser(
        "correct", help="record what a misread should have been; the read stays as read"
    )
    correct.add_argument("read_id", help="the read's id")
    correct.add_argument("--plate", required=True, help="the plate it should have been, whole")
    correct.add_argument("--reason", required=True, help="how that was established (audited)")
    correct.set_defaults(run=_correct)

    incidents = commands.add_parser("incidents", help="breaches of the system's data (SEC-3)")
    steps = incidents.add_subparsers(dest="action", required=True)
    record = steps.add_parser("record", help="record a breach and what it exposed")
    record.add_argument("--description", required=True, help="what happened")
    record.add_argument("--discovered", required=True, help="ISO 8601, UTC unless zoned")
    record.add_argument("--records", type=int, required=True, help="how many records it exposed")
    record.add_argument(
        "--persons", type=int, required=True, help="how many persons they concern (500: AG form)"
    )
    record.set_defaults(run=_record)
    listing = steps.add_parser("list", help="every incident, most recently discovered first")
    listing.set_defaults(run=_list)
    for command in (correct, record, listing):
        _connection_options(command)
