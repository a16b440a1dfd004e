"""Hotlists: entries, plates and partial patterns (CAP-5), and the importers that read them.

Pure Python: no database, no gRPC. Civil immigration categories are recognised only to be
refused (ACC-7).
"""

from node.hotlists.entry import (
    FORBIDDEN_LIST_TYPES,
    FORBIDDEN_REASON,
    LIST_TYPE_SYNONYMS,
    HotlistEntry,
    ListType,
    PlatePattern,
    ensure_allowed,
    ensure_unexpired,
    normalize_plate,
)
from node.hotlists.importers import (
    CLEW_CATEGORIES,
    CLEW_LAYOUT,
    CSV_FIELDS,
    NCIC_FILE_CODES,
    NCIC_LAYOUT,
    Column,
    ImportResult,
    RejectedLine,
    format_clew,
    format_csv,
    format_ncic,
    parse_clew,
    parse_csv,
    parse_ncic,
)

__all__ = [
    "CLEW_CATEGORIES",
    "CLEW_LAYOUT",
    "CSV_FIELDS",
    "FORBIDDEN_LIST_TYPES",
    "FORBIDDEN_REASON",
    "LIST_TYPE_SYNONYMS",
    "NCIC_FILE_CODES",
    "NCIC_LAYOUT",
    "Column",
    "HotlistEntry",
    "ImportResult",
    "ListType",
    "PlatePattern",
    "RejectedLine",
    "ensure_allowed",
    "ensure_unexpired",
    "format_clew",
    "format_csv",
    "format_ncic",
    "normalize_plate",
    "parse_clew",
    "parse_csv",
    "parse_ncic",
]
