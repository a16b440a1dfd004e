"""Matching reads against every hotlist in force: exact, confusable, edit and partial (HOT-1).

Pure Python: no database, no gRPC. The node builds a `MatchIndex` from its own lists and its
partners' and patches it as they change.
"""

from node.matching.canonical import CONFUSABLE_CLASSES, Difference, canonical
from node.matching.index import (
    CONFIDENCE,
    EntryColumns,
    IndexedEntry,
    IndexedList,
    Match,
    MatchIndex,
    MatchKind,
)

__all__ = [
    "CONFIDENCE",
    "CONFUSABLE_CLASSES",
    "Difference",
    "EntryColumns",
    "IndexedEntry",
    "IndexedList",
    "Match",
    "MatchIndex",
    "MatchKind",
    "canonical",
]
