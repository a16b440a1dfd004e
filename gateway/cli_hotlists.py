"""`alpr hotlists` commands: operators keep their agency's own hotlists through its node.

Like every admin command, each one calls the running node over mTLS with the operator's
certificate (see `gateway.cli_admin`); the node validates, parses imported files and audits.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Protocol, TypeVar

import grpc

from alpr.admin.v1 import hotlists_pb2 as pb
from alpr.admin.v1 import partner_hotlists_pb2
from gateway.cli_admin import (
    Stub,
    _call,
    _connection_options,
    _print_rows,
    _timestamp,
    read_file,
)
from node.errors import ValidationError
from node.hotlists.importers import CSV_FIELDS

FORMATS = {
    "csv": pb.HOTLIST_FORMAT_CSV,
    "ncic": pb.HOTLIST_FORMAT_NCIC,
    "clew": pb.HOTLIST_FORMAT_CLEW,
}


class _Page(Protocol):
    @property
    def next_page_token(self) -> str: ...


_PageT = TypeVar("_PageT", bound=_Page)


def _every_page(fetch: Callable[[str], _PageT]) -> Iterator[_PageT]:
    """Call `fetch` with each page token in turn, from the first page to the last."""
    token = ""
    while True:
        page = fetch(token)
        yield page
        token = page.next_page_token
        if not token:
            return


def _mapping(pairs: list[str]) -> dict[str, str]:
    """Read ``--map "Their Header=plate"`` options into header name -> our field name."""
    mapping = {}
    for pair in pairs:
        header, _, field = pair.rpartition("=")
        if not header.strip() or not field.strip():
            raise ValidationError("--map", f"{pair!r} is not 'Their Header=field'")
        mapping[header.strip()] = field.strip()
    return mapping


def _hotlist_row(hotlist: pb.Hotlist) -> tuple[object, ...]:
    created = hotlist.create_time.ToDatetime(UTC)
    return (hotlist.name, hotlist.active_entry_count, f"{created:%Y-%m-%d}", hotlist.description)


def _entry_row(entry: pb.HotlistEntry) -> tuple[object, ...]:
    expires = entry.expires_at.ToDatetime(UTC) if entry.HasField("expires_at") else None
    return (
        entry.entry_id,
        entry.list_name,
        entry.plate,
        entry.state or "-",
        entry.list_type,
        entry.case_number or "-",
        f"{expires:%Y-%m-%d %H:%M}" if expires else "-",
    )


def _create(args: argparse.Namespace) -> int:
    request = pb.CreateHotlistRequest(name=args.name, description=args.description)

    def action(admin: Stub, _: grpc.Channel) -> None:
        hotlist = admin.CreateHotlist(request, timeout=args.timeout).hotlist
        print(f"created hotlist {hotlist.name}")

    return _call(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        rows, version = [], 0
        for page in _every_page(
            lambda token: admin.ListHotlists(
                pb.ListHotlistsRequest(page_token=token), timeout=args.timeout
            )
        ):
            version = page.version
            rows += [_hotlist_row(hotlist) for hotlist in page.hotlists]
        _print_rows(("NAME", "ENTRIES", "CREATED", "DESCRIPTION"), rows)
        print(f"version {version}")

    return _call(args, action)


def _add(args: argparse.Namespace) -> int:
    entry = pb.HotlistEntry(
        plate=args.plate,
        list_type=args.list_type,
        state=args.state,
        reason=args.reason,
        case_number=args.case_number,
        ncic_number=args.ncic_number,
        expires_at=_timestamp(args.expires, "--expires") if args.expires else None,
        contact=args.contact,
    )
    request = pb.AddHotlistEntriesRequest(list_name=args.list, entries=[entry])

    def action(admin: Stub, _: grpc.Channel) -> None:
        [added] = admin.AddHotlistEntries(request, timeout=args.timeout).entries
        print(
            f"added {added.entry_id} {added.plate} ({added.list_type}) to {added.list_name}"
            f" at version {added.version}"
        )

    return _call(args, action)


def _entries(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        rows = []
        for page in _every_page(
            lambda token: admin.ListHotlistEntries(
                pb.ListHotlistEntriesRequest(list_name=args.list or "", page_token=token),
                timeout=args.timeout,
            )
        ):
            rows += [_entry_row(entry) for entry in page.entries]
        _print_rows(("ENTRY ID", "LIST", "PLATE", "STATE", "TYPE", "CASE", "EXPIRES"), rows)

    return _call(args, action)


def _pull(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        request = partner_hotlists_pb2.PullPartnerHotlistRequest(partner_ori=args.partner)
        got = admin.PullPartnerHotlist(request, timeout=args.timeout)
        acknowledged = (
            "acknowledged"
            if got.acknowledged
            else "NOT yet acknowledged (the node gives it again until the partner takes it)"
        )
        print(f"pulled {args.partner} to version {got.version}: {got.added} added, "
              f"{got.ended} ended, {got.refused} refused; receipt {got.exchange_id} "
              f"verified and {acknowledged}")  # fmt: skip

    return _call(args, action)


def _end(args: argparse.Namespace) -> int:
    def action(admin: Stub, _: grpc.Channel) -> None:
        if args.how == "cancel":
            cancel = pb.CancelHotlistEntryRequest(entry_id=args.entry_id, reason=args.reason)
            entry = admin.CancelHotlistEntry(cancel, timeout=args.timeout).entry
            print(f"cancelled {entry.entry_id} {entry.plate} on {entry.list_name} (HOT-5)")
        else:
            remove = pb.RemoveHotlistEntryRequest(entry_id=args.entry_id)
            entry = admin.RemoveHotlistEntry(remove, timeout=args.timeout).entry
            print(f"removed {entry.entry_id} {entry.plate} from {entry.list_name}")

    return _call(args, action)


def _import(args: argparse.Namespace) -> int:
    request = pb.ImportHotlistRequest(
        list_name=args.list,
        format=FORMATS[args.format],
        content=read_file(args.file),
        column_mapping=_mapping(args.map),
        list_type=args.list_type or "",
        replace=args.replace,
    )

    def action(admin: Stub, _: grpc.Channel) -> None:
        answer = admin.ImportHotlist(request, timeout=args.timeout)
        if args.replace:
            print(f"replaced {args.list}: {answer.imported} added, {answer.kept} kept, "
                  f"{answer.removed} removed (version {answer.version})")  # fmt: skip
        else:
            print(f"imported {answer.imported} entries into {args.list} (version {answer.version})")
        if answer.rejected_count:
            print(f"rejected {answer.rejected_count} lines:")
        for rejected in answer.rejected:
            print(f"  line {rejected.line}: {rejected.field}: {rejected.reason}")
            print(f"    {rejected.raw}")
        if answer.rejected_count > len(answer.rejected):
            print(f"  ... and {answer.rejected_count - len(answer.rejected)} more")

    return _call(args, action)


def add_hotlist_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `hotlists` command and its subcommands to the `alpr` parser."""
    steps = commands.add_parser("hotlists", help="the agency's own hotlists").add_subparsers(
        dest="action", required=True
    )
    create = steps.add_parser("create", help="create an empty hotlist")
    create.add_argument("name")
    create.add_argument("--description", default="", help="what the list is for")
    create.set_defaults(run=_create)
    listing = steps.add_parser("list", help="list hotlists, their entry counts and the version")
    listing.set_defaults(run=_list)

    add = steps.add_parser("add", help="add a plate, whole or partial (7AB?12*)")
    add.add_argument("list")
    add.add_argument("--plate", required=True, help="? is one character, * any run (CAP-5)")
    add.add_argument("--list-type", required=True, help="e.g. stolen_vehicle, wanted_person")
    for option in ("--state", "--reason", "--case-number", "--ncic-number", "--contact"):
        add.add_argument(option, default="")
    add.add_argument("--expires", help="ISO 8601, UTC unless zoned")
    add.set_defaults(run=_add)
    entries = steps.add_parser("entries", help="list the entries in force")
    entries.add_argument("list", nargs="?", help="only this list")
    entries.set_defaults(run=_entries)

    remove = steps.add_parser("remove", help="take an entry entered by mistake off its list")
    remove.add_argument("entry_id")
    remove.set_defaults(run=_end, how="remove")
    cancel = steps.add_parser("cancel", help="cancel an entry found to be in error (HOT-5)")
    cancel.add_argument("entry_id")
    cancel.add_argument("--reason", required=True, help="how it was found in error (audited)")
    cancel.set_defaults(run=_end, how="cancel")

    load = steps.add_parser(
        "import",
        help="add a CSV, NCIC or CLEW file, or replace the list with it; the node parses it",
        description=f"A CSV's header row names our fields: {', '.join(CSV_FIELDS)} (plate and "
        "list_type required; other columns ignored), or --map names yours for them. "
        "expires_at is ISO 8601 with an offset, e.g. 2026-07-01T00:00:00Z, or empty.",
    )
    load.add_argument("list")
    load.add_argument("file", type=Path)
    load.add_argument("--format", required=True, choices=sorted(FORMATS))
    load.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="HEADER=FIELD",
        help='CSV: your column to our field, e.g. "Plate Number=plate" (repeat); a HEADER '
        "the file lacks is refused",
    )
    load.add_argument("--list-type", help="CLEW: the type of lines with no category")
    load.add_argument(
        "--replace",
        action="store_true",
        help="make the list hold exactly the file's entries (a reissued NCIC extract): keep "
        "those unchanged, remove those not in the file (partners' next pull ends them), add "
        "the new",
    )
    load.set_defaults(run=_import)
    pull = steps.add_parser("pull", help="pull a partner's hotlists now, as the refresh job does")
    pull.add_argument("partner", help="the partner's ORI")
    pull.set_defaults(run=_pull)
    for command in (create, listing, add, entries, remove, cancel, load, pull):
        _connection_options(command)
