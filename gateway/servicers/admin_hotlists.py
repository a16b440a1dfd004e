"""AdminService's hotlist RPCs: operators keep their agency's own hotlists on the node.

Entries arrive one by one (AddHotlistEntries) or as a whole CSV, NCIC or CLEW file that the
node parses itself (ImportHotlist), which may instead replace the list with the file: a full
extract reissued (NCIC's, twice a day) then ends the records it no longer holds. Either way a
civil-immigration entry is refused and the refusal audited (ACC-7), every change is audited
with the plates it touched (AUD-1), and the agency's recent reads are searched for what was
added: each read found raises a hit flagged retrospective, streamed to every patrol client
like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from alpr.admin.v1 import hotlists_pb2 as pb
from gateway.interceptors import Context, audit_call
from gateway.servicers.paging import page, page_size_of, place, token
from gateway.servicers.times import optional_time, timestamp
from gateway.services import Services
from node.errors import NotFoundError, ValidationError
from node.hotlists.entry import (
    FORBIDDEN_REASON,
    MAX_REASON,
    HotlistEntry,
    ListType,
    PlatePattern,
    ensure_allowed,
    ensure_unexpired,
)
from node.hotlists.importers import (
    ImportResult,
    RejectedLine,
    parse_clew,
    parse_csv,
    parse_ncic,
)
from node.hotlists.store import MAX_BATCH, EntryPlace, HotlistInfo, Replaced, StoredEntry

MAX_ADD = 10_000
MAX_IMPORT_BYTES = 4 * 1024 * 1024
MAX_DESCRIPTION = 500  # the width of hotlist.description
# What an ImportHotlist reply shows of the lines it rejected. A 4 MiB file can reject
# hundreds of thousands, each echoed with its reason: sent whole, the reply passed the
# 4 MiB a gRPC client receives by default, so the operator saw an error for an import
# that had committed, and imported again. Shown thus, it stays under 1 MiB.
MAX_REJECTED_SHOWN = 100
MAX_SHOWN_CHARS = 1000


def hotlist_to_proto(info: HotlistInfo) -> pb.Hotlist:
    """A hotlist on the wire."""
    return pb.Hotlist(
        name=info.name,
        description=info.description,
        create_time=timestamp(info.created_at),
        active_entry_count=info.active_entries,
    )


def entry_to_proto(stored: StoredEntry) -> pb.HotlistEntry:
    """A stored entry on the wire, its fields decrypted."""
    entry = stored.entry
    return pb.HotlistEntry(
        entry_id=stored.entry_id,
        list_name=stored.list_name,
        plate=entry.plate,
        state=entry.state,
        list_type=entry.list_type.value,
        reason=entry.reason,
        case_number=entry.case_number,
        ncic_number=entry.ncic_number,
        expires_at=timestamp(entry.expires_at),
        contact=entry.contact,
        partial=entry.is_partial,
        version=stored.version,
    )


def entry_from_proto(message: pb.HotlistEntry, reference_time: datetime) -> HotlistEntry:
    """The entry an operator sent, normalized and validated, its category checked first.

    The plate may be partial (CAP-5); it is normalized by `PlatePattern.parse`. The list
    type is read by `ListType.from_text`, and the state and NCIC number are uppercased.
    Its expiry, if any, must be after `reference_time` (`ensure_unexpired`).

    Raises:
        ValidationError: A field, named as in the message, is not acceptable; ``list_type``
            with `FORBIDDEN_REASON` when the category is forbidden (ACC-7).
    """
    list_type = ensure_allowed(ListType.from_text(message.list_type))
    entry = HotlistEntry(
        plate=PlatePattern.parse(message.plate).text,
        state=message.state.upper(),
        list_type=list_type,
        reason=message.reason,
        case_number=message.case_number,
        ncic_number=message.ncic_number.upper(),
        expires_at=optional_time(message, "expires_at"),
        contact=message.contact,
    )
    return ensure_unexpired(entry, reference_time)


def parse_import(request: pb.ImportHotlistRequest, reference_time: datetime) -> ImportResult:
    """Parse the file of an ImportHotlist request with the importer of its format.

    A CSV record that expires at or before `reference_time` is a rejected line.

    Raises:
        ValidationError: Naming the request's field: the content is too large, empty, not
            UTF-8 or unreadable as a whole (a CSV without a plate column); the format is
            unspecified; a column mapping or list type is given for a format without one.
    """
    if not request.content:
        raise ValidationError("content", "is required")
    if len(request.content) > MAX_IMPORT_BYTES:
        raise ValidationError(
            "content", f"is {len(request.content)} bytes; at most {MAX_IMPORT_BYTES} (4 MiB)"
        )
    csv, clew = pb.HOTLIST_FORMAT_CSV, pb.HOTLIST_FORMAT_CLEW
    if request.column_mapping and request.format != csv:
        raise ValidationError("column_mapping", "applies to CSV files only")
    if request.list_type and request.format != clew:
        raise ValidationError("list_type", "applies to CLEW files only")
    try:
        text = request.content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationError("content", f"is not UTF-8 text ({error.reason})") from error
    if request.format == csv:
        try:
            return parse_csv(text, dict(request.column_mapping), reference_time=reference_time)
        except ValidationError as error:
            field = "column_mapping" if error.field == "mapping" else "content"
            raise ValidationError(field, str(error)) from error
    if request.format == pb.HOTLIST_FORMAT_NCIC:
        return parse_ncic(text)
    if request.format == clew:
        list_type = ListType.from_text(request.list_type) if request.list_type else None
        return parse_clew(text, list_type=list_type)
    raise ValidationError("format", "must be CSV, NCIC or CLEW")


def _required(value: str, field: str) -> str:
    if not value:
        raise ValidationError(field, "is required")
    return value


def _shown(text: str) -> str:
    """`text`, cut to `MAX_SHOWN_CHARS` with an ellipsis when longer."""
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return text[: MAX_SHOWN_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _rejected_to_proto(line: RejectedLine) -> pb.RejectedHotlistLine:
    """A rejected line on the wire, its text and reason cut by `_shown`."""
    return pb.RejectedHotlistLine(
        line=line.line, raw=_shown(line.raw), field=line.field, reason=_shown(line.reason)
    )


def _plates(stored: Sequence[StoredEntry]) -> list[dict[str, str]]:
    """What the audit records of entries a change touched: their ids and plates (AUD-1)."""
    return [{"entry_id": s.entry_id, "plate": s.entry.plate} for s in stored]


def _replaced_details(replaced: Replaced | None) -> dict[str, object]:
    """What the audit of an import adds when it replaced the list: counts, and what ended."""
    if replaced is None:
        return {}
    return {
        "replace": True,
        "added": len(replaced.added),
        "kept": replaced.kept,
        "removed": len(replaced.removed),
        "removed_entries": [ended._asdict() for ended in replaced.removed],
    }


class HotlistAdmin:
    """The hotlist RPCs of AdminService, mixed into its servicer."""

    services: Services

    def _record(self, kind: str, context: Context, **details: object) -> None:
        """Audit a hotlist event by the caller."""
        audit_call(self.services.audit, kind, context, **details)

    def _search_back(self, stored: Sequence[StoredEntry]) -> None:
        """Raise retrospective hits for entries just added (once they are committed)."""
        if stored:
            self.services.reads.search_back(stored)

    def _require_list(self, name: str) -> None:
        """Check that a list of that name exists, before work that might add nothing to it."""
        if all(info.name != name for info in self.services.hotlists.lists()):
            raise NotFoundError(f"no hotlist named {name!r}")

    def CreateHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.CreateHotlistRequest, context: Context
    ) -> pb.CreateHotlistResponse:
        """Create an empty list; its description, printed in tables, must be one printable line."""
        if len(request.description) > MAX_DESCRIPTION:
            raise ValidationError("description", f"is longer than {MAX_DESCRIPTION} characters")
        if not request.description.isprintable():
            raise ValidationError("description", "holds a control or other non-printable character")
        info = self.services.hotlists.create_list(request.name, request.description)
        self._record("hotlist.created", context, list=info.name, description=info.description)
        return pb.CreateHotlistResponse(hotlist=hotlist_to_proto(info))

    def ListHotlists(  # noqa: N802 (gRPC method name)
        self, request: pb.ListHotlistsRequest, context: Context
    ) -> pb.ListHotlistsResponse:
        """List the lists by name, a page at a time, with the current version."""
        store = self.services.hotlists
        version = store.version()
        lists, token = page(store.lists(), request.page_size, request.page_token, "hotlists")
        return pb.ListHotlistsResponse(
            hotlists=[hotlist_to_proto(info) for info in lists],
            version=version,
            next_page_token=token,
        )

    def AddHotlistEntries(  # noqa: N802 (gRPC method name)
        self, request: pb.AddHotlistEntriesRequest, context: Context
    ) -> pb.AddHotlistEntriesResponse:
        """Add entries in one version, or none if any is refused; audit ACC-7 refusals."""
        list_name = _required(request.list_name, "list_name")
        if not 0 < len(request.entries) <= MAX_ADD:
            raise ValidationError(
                "entries", f"holds {len(request.entries)}; give 1 to {MAX_ADD} at a time"
            )
        now = self.services.clock()
        entries: list[HotlistEntry] = []
        first_error: ValidationError | None = None
        refused: list[dict[str, object]] = []
        for index, message in enumerate(request.entries):
            try:
                entries.append(entry_from_proto(message, now))
            except ValidationError as error:
                field = f"entries[{index}].{error.field}"
                first_error = first_error or ValidationError(field, error.problem)
                if error.problem == FORBIDDEN_REASON:
                    refused.append({"index": index, "plate": message.plate})
        if refused:
            self._record(
                "hotlist.refused", context, list=list_name, reason=FORBIDDEN_REASON, entries=refused
            )
        if first_error is not None:
            raise first_error
        stored = self.services.hotlists.add(list_name, entries)
        self._record(
            "hotlist.entries_added",
            context,
            list=list_name,
            version=stored[0].version,
            entries=_plates(stored),
        )
        self._search_back(stored)
        return pb.AddHotlistEntriesResponse(entries=[entry_to_proto(s) for s in stored])

    def ListHotlistEntries(  # noqa: N802 (gRPC method name)
        self, request: pb.ListHotlistEntriesRequest, context: Context
    ) -> pb.ListHotlistEntriesResponse:
        """List the entries in force, oldest first, a page at a time.

        The store pages from the place a token holds: a list of a million entries is too
        large to read for every page.
        """
        kind = "hotlist-entries"
        after = place(request.page_token, kind, len(EntryPlace._fields))
        found = self.services.hotlists.entries(
            request.list_name or None,
            after=EntryPlace(*after) if after else None,
            limit=page_size_of(request.page_size),
        )
        return pb.ListHotlistEntriesResponse(
            entries=[entry_to_proto(s) for s in found.entries],
            next_page_token=token(kind, found.last) if found.last else "",
        )

    def RemoveHotlistEntry(  # noqa: N802 (gRPC method name)
        self, request: pb.RemoveHotlistEntryRequest, context: Context
    ) -> pb.RemoveHotlistEntryResponse:
        """Take an entry entered by mistake off its list."""
        removed = self.services.hotlists.remove(_required(request.entry_id, "entry_id"))
        self._withdraw({removed.entry_id: removed.list_name})
        self._record(
            "hotlist.entry_removed",
            context,
            list=removed.list_name,
            version=removed.version,
            entries=_plates([removed]),
        )
        return pb.RemoveHotlistEntryResponse(entry=entry_to_proto(removed))

    def _withdraw(self, ended: dict[str, str]) -> None:
        """Tell the units acting on hits of entries just taken off a list (HOT-5)."""
        if self.services.hits.record_withdrawn(ended):
            self.services.broker.wake()

    def CancelHotlistEntry(  # noqa: N802 (gRPC method name)
        self, request: pb.CancelHotlistEntryRequest, context: Context
    ) -> pb.CancelHotlistEntryResponse:
        """Cancel an entry found to be in error (HOT-5), auditing why."""
        entry_id = _required(request.entry_id, "entry_id")
        reason = _required(request.reason.strip(), "reason")
        if len(reason) > MAX_REASON:
            raise ValidationError("reason", f"is longer than {MAX_REASON} characters")
        cancelled = self.services.hotlists.cancel(entry_id)
        # Every patrol stream hears of it at once (HOT-5); reads stop matching it too.
        self.services.hits.record_cancellation(entry_id, cancelled.list_name)
        self.services.broker.wake()
        self._record(
            "hotlist.entry_cancelled",
            context,
            list=cancelled.list_name,
            version=cancelled.version,
            entries=_plates([cancelled]),
            reason=reason,
        )
        return pb.CancelHotlistEntryResponse(entry=entry_to_proto(cancelled))

    def ImportHotlist(  # noqa: N802 (gRPC method name)
        self, request: pb.ImportHotlistRequest, context: Context
    ) -> pb.ImportHotlistResponse:
        """Parse a file on the node and add what it accepts, in one version; report the rest.

        With `replace` the list is made to hold exactly what the file accepts
        (`HotlistStore.replace`), and the removed entries are audited with the added ones.
        A file that accepts nothing is then refused rather than empty the list: a wrong
        format or a truncated extract would otherwise end every entry at once. The reply
        counts every rejected line but shows only the first `MAX_REJECTED_SHOWN`.
        """
        list_name = _required(request.list_name, "list_name")
        result = parse_import(request, self.services.clock())
        if len(result.entries) > MAX_BATCH:
            raise ValidationError(
                "content", f"holds {len(result.entries)} entries; at most {MAX_BATCH} at a time"
            )
        forbidden = [
            {"line": line.line, "raw": line.raw}
            for line in result.rejected
            if line.reason == FORBIDDEN_REASON
        ]
        if forbidden:
            self._record(
                "hotlist.refused", context, list=list_name, reason=FORBIDDEN_REASON, lines=forbidden
            )
        self._require_list(list_name)
        store = self.services.hotlists
        replaced: Replaced | None = None
        if request.replace:
            if not result.entries:
                raise ValidationError("content", "holds no usable entry: replacing would empty")
            replaced = store.replace(list_name, result.entries)
            stored, version = replaced.added, replaced.version
            self._withdraw({ended.entry_id: list_name for ended in replaced.removed})
        else:
            stored = store.add(list_name, result.entries) if result.entries else []
            version = stored[0].version if stored else store.version()
        self._record(
            "hotlist.imported",
            context,
            list=list_name,
            format=pb.HotlistFormat.Name(request.format),
            version=version,
            rejected=len(result.rejected),
            entries=_plates(stored),
            **_replaced_details(replaced),
        )
        self._search_back(stored)
        return pb.ImportHotlistResponse(
            imported=len(stored),
            rejected=[_rejected_to_proto(r) for r in result.rejected[:MAX_REJECTED_SHOWN]],
            version=version,
            rejected_count=len(result.rejected),
            kept=replaced.kept if replaced else 0,
            removed=len(replaced.removed) if replaced else 0,
        )
