"""Read hotlists from CSV, the FBI's NCIC LPR extract and California DOJ's CLEW hot file.

Each ``parse_*`` takes a whole file's text and returns an `ImportResult`: the entries it took
and, for every other line, a `RejectedLine` saying why. A bad line never stops an import and
never raises. A line in a category the agency's policy forbids (civil immigration) is rejected
with the reason `FORBIDDEN_REASON` and never imported (ACC-7). Only a file that cannot be read
at all, such as a CSV without a plate column, raises `ValidationError`. Each ``format_*`` writes
entries back in the same format, so that tests can round-trip.

CSV. The first row is a header. Our column names are those of `CSV_FIELDS`: ``plate, state,
list_type, reason, case_number, ncic_number, expires_at, contact``; only ``plate`` and
``list_type`` are required. An operator whose file names them otherwise passes ``mapping``,
from their header names to ours, e.g. ``{"Plate Number": "plate", "Category": "list_type"}``.
Header names match without regard to case or surrounding spaces; columns named neither in the
mapping nor in `CSV_FIELDS` are ignored, but a mapping naming a column the header lacks is
refused, lest a misspelt name lose that column's values. Cells are trimmed. ``plate`` may be
a partial pattern such as ``7AB?12*`` (CAP-5). ``list_type`` is read by `ListType.from_text`:
a value or name in any case (``stolen_vehicle``, ``Stolen Vehicle``) or a synonym of
`LIST_TYPE_SYNONYMS` (``stolen``, ``SV``, ``wanted``, ``amber``...). ``state`` is a USPS code
in any case. ``expires_at`` is ISO 8601 with an offset (``2026-07-01T00:00:00Z``), or empty;
a record whose expiry is not after the import's reference time is rejected.

NCIC LPR extract and CLEW hot file. Neither layout is published. The FBI says which NCIC files
its extract draws on, not its columns, in
https://le.fbi.gov/cjis-division/cjis-link/license-plate-reader-data-extract-in-ncic
and California DOJ gives its layout to subscribing agencies only. `NCIC_LAYOUT` and
`CLEW_LAYOUT` are therefore OUR ASSUMED LAYOUTS, pending the agency's specification. Their
columns follow OpenALPR's importers for these files,
https://github.com/openalpr/openalpr_hotlist_import (``parsers/ncic.py``, its example line and
file codes; ``parsers/ca_doj_clew.py`` and its sample ``sfr.tbl``). Those tables, with
`NCIC_FILE_CODES` and `CLEW_CATEGORIES`, are the only places to change when a spec arrives.
Positions count characters from 0; values are padded with spaces; trailing spaces may be cut.

- NCIC: one record a line; a first line that does not begin with an NCIC number is the
  extract's header and is skipped. The first letter of the NCIC number is the NCIC file code,
  which gives the list type (`NCIC_FILE_CODES`; ``N``, the Immigration Violator File, is civil
  immigration and refused). The entering agency's ORI becomes the entry's contact, and the
  text from column 45 on (the vehicle's year, make, model, style and colour in the extracts
  seen) its reason. The entry date, plate year and plate type columns are not imported.
- CLEW: a header line ``DATEmm/dd/yyyy hh:mm``, one record a line, and a trailer ``TOTAL
  RECORD nnnnnnn`` whose count is checked. CLEW ships one list per file (``svs.tbl`` stolen
  vehicles, ``sfr.tbl`` felony vehicles, ``slr.tbl`` stolen plates), so the caller says which
  with ``list_type``; a three-letter category in column 20, our addition, overrides it per line.
  The county and date-of-loss columns are not imported.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from node.errors import ValidationError
from node.hotlists.entry import (
    FORBIDDEN_LIST_TYPES,
    NCIC_NUMBER,
    HotlistEntry,
    ListType,
    PlatePattern,
    ensure_allowed,
    ensure_unexpired,
    normalize_plate,
)
from node.identity import validate_ori

# Our CSV column names: the entry's fields, in order.
CSV_FIELDS = tuple(column.name for column in dataclasses.fields(HotlistEntry))


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a fixed-width layout.

    Attributes:
        name: The `HotlistEntry` field it fills, or what it holds when it fills none.
        start: Its first character, counted from 0.
        width: How many characters it spans.
    """

    name: str
    start: int
    width: int

    @property
    def end(self) -> int:
        """The position just past the column."""
        return self.start + self.width


NCIC_LAYOUT = (
    Column("ncic_number", 0, 10),
    Column("contact", 10, 9),  # the entering agency's ORI
    Column("entered", 19, 8),  # YYYYMMDD, not imported
    Column("plate", 27, 10),
    Column("state", 37, 2),
    Column("plate_year", 39, 4),  # not imported
    Column("plate_type", 43, 2),  # not imported
    Column("reason", 45, 60),  # the vehicle description
)
CLEW_LAYOUT = (
    Column("plate", 0, 8),
    Column("state", 8, 2),
    Column("county", 10, 2),  # not imported
    Column("loss_date", 12, 8),  # YYYYMMDD, not imported
    Column("category", 20, 3),  # ours: a key of CLEW_CATEGORIES, or blank
)
NCIC_FILE_CODES = types.MappingProxyType(
    {
        "V": ListType.STOLEN_VEHICLE,
        "R": ListType.STOLEN_VEHICLE,  # Canadian (CPIC) stolen vehicle
        "P": ListType.STOLEN_PLATE,
        "W": ListType.WANTED_PERSON,
        "M": ListType.MISSING_PERSON,
        "A": ListType.AMBER_ALERT,
        "F": ListType.FELONY_VEHICLE,
        "H": ListType.PROTECTION_ORDER,
        "T": ListType.GANG_TERRORIST,
        "X": ListType.SEX_OFFENDER,
        "N": ListType.CIVIL_IMMIGRATION,  # Immigration Violator File: refused (ACC-7)
    }
)
CLEW_CATEGORIES = types.MappingProxyType(
    {
        "SVS": ListType.STOLEN_VEHICLE,
        "SFR": ListType.FELONY_VEHICLE,
        "SLR": ListType.STOLEN_PLATE,
        "IMM": ListType.CIVIL_IMMIGRATION,  # ours, so that it is recognised and refused
    }
)
_CLEW_HEADER = re.compile(r"DATE\d\d/\d\d/\d{4} \d\d:\d\d")
_CLEW_TRAILER = re.compile(r"TOTAL RECORD +(\d+)")


@dataclasses.dataclass(frozen=True)
class RejectedLine:
    """A line that was not imported, and why.

    Attributes:
        line: Its number in the file, from 1 (for a CSV record, its first line).
        raw: The line as it was in the file, without its line ending.
        field: The field at fault, or ``line`` when the line as a whole is.
        reason: What is wrong, e.g. `FORBIDDEN_REASON`.
    """

    line: int
    raw: str
    field: str
    reason: str


@dataclasses.dataclass
class ImportResult:
    """What an import took and what it refused.

    Attributes:
        entries: The entries read, in file order.
        rejected: Every other record, in file order.
    """

    entries: list[HotlistEntry] = dataclasses.field(default_factory=list)
    rejected: list[RejectedLine] = dataclasses.field(default_factory=list)


def _take(result: ImportResult, number: int, raw: str, read: Callable[[], HotlistEntry]) -> None:
    """Add what `read` makes to `result`, or the line it refused."""
    try:
        result.entries.append(read())
    except ValidationError as error:
        result.rejected.append(RejectedLine(number, raw, error.field, error.problem))


def _lookup(table: Mapping[str, ListType], code: str, what: str, field: str) -> ListType:
    """The list type `code` names in `table`, refused if the policy forbids it (ACC-7)."""
    if code not in table:
        allowed = sorted(key for key, value in table.items() if value not in FORBIDDEN_LIST_TYPES)
        raise ValidationError(field, f"{code!r} is not {what} we import: one of {allowed}")
    return ensure_allowed(table[code])


def read_columns(line: str, layout: Sequence[Column]) -> dict[str, str]:
    """Cut a fixed-width line into its columns, each stripped of padding.

    A line may stop short of the layout's width; missing columns read as empty.

    Raises:
        ValidationError: ``line``: the line is longer than the layout.
    """
    width = max(column.end for column in layout)
    if len(line) > width:
        raise ValidationError("line", f"is {len(line)} characters; the layout has {width}")
    return {column.name: line[column.start : column.end].strip() for column in layout}


def write_columns(values: Mapping[str, str], layout: Sequence[Column]) -> str:
    """Lay `values` out in their columns, padded with spaces; trailing spaces are cut.

    Raises:
        ValidationError: A value, named by its column, is wider than its column.
    """
    chars = [" "] * max(column.end for column in layout)
    for column in layout:
        value = values.get(column.name, "")
        if len(value) > column.width:
            raise ValidationError(
                column.name,
                f"{value!r} is {len(value)} characters; the column holds {column.width}",
            )
        chars[column.start : column.start + len(value)] = value
    return "".join(chars).rstrip()


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Number the lines of `text` from 1, without line endings or BOM, skipping blank ones."""
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if line.strip():
            yield number, line.removesuffix("\r")


def _cells(entry: HotlistEntry) -> dict[str, str]:
    """Every field of `entry` as the text a file holds, by field name."""
    cells = {name: str(getattr(entry, name) or "") for name in CSV_FIELDS}
    cells["list_type"] = entry.list_type.value
    cells["expires_at"] = "" if entry.expires_at is None else entry.expires_at.isoformat()
    return cells


def _fixed_width_cells(entry: HotlistEntry, layout: Sequence[Column], file: str) -> dict[str, str]:
    """`_cells` of an entry that the fixed-width `file` can hold without losing part of it.

    Raises:
        ValidationError: The plate is partial, or a field other than the list type that has
            no column in `layout` is set.
    """
    if entry.is_partial:
        raise ValidationError("plate", f"{entry.plate!r} is partial; the {file} has whole plates")
    cells = _cells(entry)
    carried = {column.name for column in layout} | {"list_type"}
    for name, value in cells.items():
        if value and name not in carried:
            raise ValidationError(name, f"the {file} has no column for it")
    return cells


def _csv_columns(header: Sequence[str], mapping: Mapping[str, str]) -> dict[int, str]:
    """Which field each header column fills, by position.

    Raises:
        ValidationError: The mapping names an unknown field or a column the header lacks, two
            columns fill one field, or a required column is missing.
    """
    names = {name.strip().casefold(): target for name, target in mapping.items()}
    for target in names.values():
        if target not in CSV_FIELDS:
            raise ValidationError(
                "mapping", f"{target!r} is not a hotlist field: expected one of {CSV_FIELDS}"
            )
    keys = [cell.removeprefix("\ufeff").strip().casefold() for cell in header]
    for name in mapping:
        if name.strip().casefold() not in keys:
            raise ValidationError("mapping", f"{name!r} is no column of the header {header!r}")
    columns: dict[int, str] = {}
    for position, key in enumerate(keys):
        target = names.get(key) or (key if key in CSV_FIELDS else "")
        if not target:
            continue
        if target in columns.values():
            raise ValidationError("header", f"two columns fill {target}: {header!r}")
        columns[position] = target
    for required in ("plate", "list_type"):
        if required not in columns.values():
            raise ValidationError(
                "header",
                f"no {required} column in {header!r}; name it {required!r} or map yours to it, "
                "e.g. mapping={'Plate Number': 'plate'}",
            )
    return columns


def _utc(text: str) -> datetime:
    """Read an ISO 8601 time with an offset, as UTC.

    Raises:
        ValidationError: ``expires_at``: it is not such a time.
    """
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time; out of range once in UTC
        example = "e.g. 2026-07-01T00:00:00Z"
        raise ValidationError(
            "expires_at", f"{text!r} is no ISO 8601 time in range ({example})"
        ) from None
    raise ValidationError("expires_at", f"{text!r} has no offset: add Z for UTC")


def _csv_entry(cells: Mapping[str, str], reference_time: datetime) -> HotlistEntry:
    """Make the entry one CSV record describes, its category checked first (ACC-7)."""
    list_type = ensure_allowed(ListType.from_text(cells["list_type"]))
    expires_at = cells.get("expires_at", "")
    entry = HotlistEntry(
        plate=PlatePattern.parse(cells["plate"]).text,
        list_type=list_type,
        state=cells.get("state", "").upper(),
        reason=cells.get("reason", ""),
        case_number=cells.get("case_number", ""),
        ncic_number=cells.get("ncic_number", "").upper(),
        expires_at=_utc(expires_at) if expires_at else None,
        contact=cells.get("contact", ""),
    )
    return ensure_unexpired(entry, reference_time)


def parse_csv(
    text: str, mapping: Mapping[str, str] | None = None, *, reference_time: datetime
) -> ImportResult:
    """Read a CSV hotlist, as the module docstring describes.

    Args:
        text: The whole file.
        mapping: The operator's header names, to our field names.
        reference_time: Now: a record that expires at or before it is rejected.

    Raises:
        ValidationError: The file is empty, has a record the CSV reader cannot read, or its
            header lacks a plate or list_type column; the mapping names an unknown field.
    """
    lines = io.StringIO(text, newline="").readlines()
    records = csv.reader(lines)
    result = ImportResult()
    try:
        header = next(records, None)
        if header is None:
            raise ValidationError("header", "the file is empty: a CSV hotlist starts with one")
        columns = _csv_columns(header, mapping or {})
        start = records.line_num
        for row in records:
            raw = "".join(lines[start : records.line_num]).rstrip("\r\n")
            first, start = start + 1, records.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                error = f"has {len(row)} cells; the header has {len(header)}"
                result.rejected.append(RejectedLine(first, raw, "line", error))
                continue
            cells = {target: row[position].strip() for position, target in columns.items()}
            _take(result, first, raw, functools.partial(_csv_entry, cells, reference_time))
    except csv.Error as error:
        raise ValidationError("csv", f"line {records.line_num}: {error}") from error
    return result


def format_csv(entries: Iterable[HotlistEntry]) -> str:
    """Write entries as a CSV hotlist with our column names."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    writer.writerows([_cells(entry)[name] for name in CSV_FIELDS] for entry in entries)
    return out.getvalue()


def _ncic_entry(line: str) -> HotlistEntry:
    """Make the entry one NCIC extract line describes, its category checked first (ACC-7)."""
    cells = read_columns(line, NCIC_LAYOUT)
    nic = cells["ncic_number"]
    list_type = _lookup(NCIC_FILE_CODES, nic[:1], "an NCIC file code", "ncic_number")
    ori = cells["contact"]
    return HotlistEntry(
        plate=normalize_plate(cells["plate"]),
        list_type=list_type,
        state=cells["state"],
        reason=cells["reason"],
        ncic_number=nic,
        contact=validate_ori(ori, "contact") if ori else "",
    )


def parse_ncic(text: str) -> ImportResult:
    """Read an NCIC LPR extract laid out as `NCIC_LAYOUT` (an assumed layout, see above)."""
    result = ImportResult()
    for number, line in _lines(text):
        if number == 1 and not NCIC_NUMBER.match(line):
            continue
        _take(result, number, line, functools.partial(_ncic_entry, line))
    return result


def format_ncic(entries: Iterable[HotlistEntry]) -> str:
    """Write entries as an NCIC LPR extract laid out as `NCIC_LAYOUT`, without a header.

    Raises:
        ValidationError: An entry is partial, has a case number or expiry, has no NCIC number
            whose file code is its list type, or a contact that is not an ORI.
    """
    lines = []
    for entry in entries:
        cells = _fixed_width_cells(entry, NCIC_LAYOUT, "NCIC extract")
        if NCIC_FILE_CODES.get(entry.ncic_number[:1]) is not entry.list_type:
            problem = f"{entry.ncic_number!r} starts with no file code of {entry.list_type.value}"
            raise ValidationError("ncic_number", problem)
        if entry.contact:
            validate_ori(entry.contact, "contact")
        lines.append(write_columns(cells, NCIC_LAYOUT) + "\n")
    return "".join(lines)


def _clew_entry(line: str, list_type: ListType | None) -> HotlistEntry:
    """Make the entry one CLEW line describes, its category checked first (ACC-7)."""
    cells = read_columns(line, CLEW_LAYOUT)
    if cells["category"]:
        list_type = _lookup(CLEW_CATEGORIES, cells["category"], "a CLEW category", "category")
    elif list_type is None:
        raise ValidationError("category", "is blank and no list_type was given for the file")
    else:
        ensure_allowed(list_type)
    return HotlistEntry(
        plate=normalize_plate(cells["plate"]), list_type=list_type, state=cells["state"]
    )


def parse_clew(text: str, *, list_type: ListType | None = None) -> ImportResult:
    """Read a CLEW hot file laid out as `CLEW_LAYOUT` (an assumed layout, see above).

    Args:
        text: The whole file.
        list_type: The list this file is (``svs.tbl``: stolen vehicles...), for lines whose
            category column is blank; without it such lines are rejected.
    """
    result = ImportResult()
    records = 0
    for number, line in _lines(text):
        if number == 1 and _CLEW_HEADER.fullmatch(line.rstrip()):
            continue
        trailer = _CLEW_TRAILER.fullmatch(line.rstrip())
        if trailer is None:
            records += 1
            _take(result, number, line, functools.partial(_clew_entry, line, list_type))
        elif int(trailer[1]) != records:
            error = f"counts {int(trailer[1])} records but the file has {records}"
            result.rejected.append(RejectedLine(number, line, "line", error))
    return result


def format_clew(entries: Iterable[HotlistEntry]) -> str:
    """Write entries as a CLEW hot file laid out as `CLEW_LAYOUT`, with its trailer.

    No header is written: it carries the time of the download, which is not ours to invent.

    Raises:
        ValidationError: An entry is partial, has a field CLEW does not carry, or has a list
            type with no CLEW category.
    """
    codes = {list_type: code for code, list_type in CLEW_CATEGORIES.items()}
    lines = []
    for entry in entries:
        cells = _fixed_width_cells(entry, CLEW_LAYOUT, "CLEW hot file")
        if entry.list_type not in codes:
            raise ValidationError("list_type", f"{entry.list_type.value} has no CLEW category")
        cells["category"] = codes[entry.list_type]
        lines.append(write_columns(cells, CLEW_LAYOUT) + "\n")
    return "".join(lines) + f"TOTAL RECORD {len(lines):07d}\n"
