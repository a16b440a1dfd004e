"""One in-memory index of every hotlist in force, the agency's own and its partners' (HOT-1).

A read is matched against:

- whole plates, exactly, and through OCR-confusable characters (``7A8C123`` finds
  ``7ABC123``): both by one dict lookup of the read's canonical form in each list;
- partial patterns (CAP-5): each is filed under one literal n-gram of its canonical form,
  anchored to the plate's start or end where the pattern fixes it, so a read looks up its own
  few n-grams and checks only the patterns filed there (`node.matching._patterns`);
- on lists that allow it, plates one edit away (a character substituted, missing or extra),
  by symmetric deletion: each such plate is also filed under its canonical form with each
  character deleted, and a read looks up its own form and deletions in those.

The index is patched, not rebuilt: entries are added and removed, and a list is dropped or
replaced whole (the new version takes over at one instant). A list or an entry may carry an
expiry; `match` takes the time explicitly and an entry past it stops matching at that instant,
whether or not anything has been purged yet (HOT-6).

Memory: an entry is a slot number. Its plate lives in one shared byte array (8 bytes a slot),
its id in a list (the same string the list's id map holds), and its list in an integer array;
each list's dict keyed by canonical plate holds the slot's int. Only partial patterns, about
1% of a list, are objects of their own. Lists that allow edits cost more: a key per character.

Threads: every read and every mutation holds one lock, for microseconds when matching and for
at most `PATCH_BATCH` entries when patching, so reads wait little behind a large change.
Mutations are serialized by a second lock. Pure Python: no I/O, no database, no gRPC.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import compress, repeat
from typing import NamedTuple

from node.errors import NotFoundError, ValidationError
from node.hotlists.entry import MAX_PLATE, PlatePattern
from node.matching._patterns import PatternFiles
from node.matching.canonical import (
    Difference,
    canonical,
    canonical_bytes,
    canonical_column,
    edit_differences,
    one_edit,
    partial_differences,
    substitutions,
)

PATCH_BATCH = 10_000
MAX_ENTRY_ID = 64
MAX_LIST_ID = 100
# Shorter plates are matched exactly or through confusables only: one edit from "AB" is
# nearly every plate of one to three characters.
MIN_EDIT_PLATE = 4
_WIDTH = MAX_PLATE
_EMPTY = bytes(_WIDTH)
# Newline-joined whole plates: as `_is_whole` checks each, for a column at once.
_WHOLE_PLATES = re.compile(rf"(?:[A-Z0-9]{{1,{MAX_PLATE}}}\n)*[A-Z0-9]{{1,{MAX_PLATE}}}")


class MatchKind(enum.Enum):
    """How a read matched an entry."""

    EXACT = "exact"
    CONFUSABLE = "confusable"
    PARTIAL = "partial"
    EDIT = "edit"
    PARTIAL_CONFUSABLE = "partial_confusable"


CONFIDENCE = {
    MatchKind.EXACT: 1.0,
    MatchKind.CONFUSABLE: 0.8,
    MatchKind.PARTIAL: 0.7,
    MatchKind.EDIT: 0.6,
    MatchKind.PARTIAL_CONFUSABLE: 0.5,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexedList:
    """A hotlist as the index knows it.

    Attributes:
        list_id: Unique among the lists indexed (e.g. ``own:stolen`` or a partner's ORI).
        name: The list's name, as shown with a hit.
        expires_at: When the whole list stops matching (aware), or None: a partner's list
            expires 24 h after it was issued (HOT-6).
        allow_edit: Whether a read one character away (substituted, missing or extra) from
            a whole plate of `MIN_EDIT_PLATE` characters or more on this list matches it,
            as a lower-confidence hit.
    """

    list_id: str
    name: str
    expires_at: datetime | None = None
    allow_edit: bool = False

    def __post_init__(self) -> None:
        """Check the fields.

        Raises:
            ValidationError: The id is empty or too long, or `expires_at` is naive.
        """
        if not 0 < len(self.list_id) <= MAX_LIST_ID:
            raise ValidationError("list_id", f"must be 1 to {MAX_LIST_ID} characters")
        _check_aware("expires_at", self.expires_at)


class IndexedEntry(NamedTuple):
    """One entry to index: its id on its list, its plate or partial pattern, its expiry.

    Attributes:
        entry_id: Unique on its list; at most 64 characters.
        plate: A plate as `normalize_plate` gives it, or a pattern as `PlatePattern.parse`.
        expires_at: When the entry stops matching (aware), or None.
    """

    entry_id: str
    plate: str
    expires_at: datetime | None = None


class EntryColumns(NamedTuple):
    """Entries to index as two columns, none with an expiry of its own: a partner's list.

    A million entries as columns are checked and indexed mostly in C, a batch at a time,
    instead of through a tuple per entry: a second where entries one by one took four.

    Attributes:
        entry_ids: Each entry's id, as `IndexedEntry.entry_id`.
        plates: Each entry's plate or pattern, in the same order.
    """

    entry_ids: Sequence[str]
    plates: Sequence[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Match:
    """A read that matched an entry in force.

    Attributes:
        list_id: The list the entry is on.
        list_name: That list's name.
        entry_id: The entry.
        listed: The entry's plate or pattern as stored.
        kind: How it matched.
        confidence: 1.0 for an exact match, less for the others (`CONFIDENCE`).
        differences: What differed, for a confusable, edit or partial-confusable match.
    """

    list_id: str
    list_name: str
    entry_id: str
    listed: str
    kind: MatchKind
    confidence: float
    differences: tuple[Difference, ...] = ()


class _List:
    """A list's state: its number, whether it is the one in force for its id, its entries.

    Its whole plates are filed in a dict of its own, by canonical form: a list that
    replaces it is filled without touching it, and once replaced it is not unfiled entry
    by entry, only its slots freed. A read looks its plate up in each list in force.
    """

    __slots__ = ("allow_edit", "entries", "expires", "info", "live", "number", "whole")

    def __init__(self, info: IndexedList, number: int) -> None:
        self.info = info
        self.number = number
        self.allow_edit = info.allow_edit
        self.expires = _timestamp(info.expires_at)
        self.live = False
        self.entries: dict[str, int] = {}
        self.whole: dict[bytes, int | list[int]] = {}


_Row = tuple[str, str, bytes, bool, float | None]


@dataclasses.dataclass(frozen=True)
class _Checked:
    """Entries checked and ready to index, as columns.

    Attributes:
        partial: Whether each text is a pattern, or None when none is.
        expires: Each entry's expiry as a timestamp, or None when none has one.
    """

    ids: Sequence[str]
    texts: Sequence[str]
    keys: Sequence[bytes]
    partial: Sequence[bool] | None
    expires: Sequence[float | None] | None

    def __len__(self) -> int:
        return len(self.ids)

    def part(self, start: int, stop: int) -> _Checked:
        """The entries from `start` to `stop`."""
        return _Checked(
            self.ids[start:stop],
            self.texts[start:stop],
            self.keys[start:stop],
            None if self.partial is None else self.partial[start:stop],
            None if self.expires is None else self.expires[start:stop],
        )

    @property
    def expiring(self) -> bool:
        """Whether an entry has an expiry of its own."""
        return self.expires is not None and any(e is not None for e in self.expires)

    def new_to(self, entries: dict[str, int]) -> bool:
        """Whether no id is listed twice, here or in `entries`."""
        return len(set(self.ids)) == len(self.ids) and entries.keys().isdisjoint(self.ids)

    def split(self) -> tuple[_Checked, _Checked]:
        """The whole plates, then the patterns."""
        if self.partial is None or not any(self.partial):
            return self, _Checked([], [], [], None, None)
        whole = [not partial for partial in self.partial]
        return self._select(whole), self._select(self.partial)

    def _select(self, chosen: Sequence[bool]) -> _Checked:
        return _Checked(
            list(compress(self.ids, chosen)),
            list(compress(self.texts, chosen)),
            list(compress(self.keys, chosen)),
            None if self.partial is None else list(compress(self.partial, chosen)),
            None if self.expires is None else list(compress(self.expires, chosen)),
        )

    def rows(self) -> Iterator[_Row]:
        """Each entry: id, text, canonical key, whether a pattern, expiry."""
        return zip(
            self.ids,
            self.texts,
            self.keys,
            repeat(False) if self.partial is None else self.partial,
            repeat(None) if self.expires is None else self.expires,
            strict=False,  # `repeat` stands for a column of one value
        )


class MatchIndex:
    """Every hotlist in force, for matching reads as they arrive (HOT-1)."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lists: dict[str, _List] = {}
        self._numbered: dict[int, _List] = {}
        self._next_number = 1
        self._plates = bytearray()
        self._owner = array("I")
        self._ids: list[str | None] = []
        self._free: list[int] = []
        self._edit_whole: dict[bytes, int | list[int]] = {}
        self._deletions: dict[bytes, int | list[int]] = {}
        self._edit_entries = 0
        self._patterns = PatternFiles()
        self._entry_expiry: dict[int, float] = {}

    # Reading.

    def match(self, plate: str, reference_time: datetime) -> list[Match]:
        """Every entry in force at `reference_time` that `plate` matches, best first.

        Args:
            plate: A read, as `normalize_plate` gives it; anything else matches nothing.
            reference_time: The time of the read (aware); a list or entry whose expiry is
                at or before it does not match.

        Raises:
            ValidationError: ``reference_time`` is naive.
        """
        _check_aware("reference_time", reference_time)
        if not _is_whole(plate):
            return []
        raw = plate.encode("ascii")
        key = canonical_bytes(raw)
        with self._lock:
            found: list[tuple[int, MatchKind]] = []
            for hotlist in self._lists.values():
                held = hotlist.whole.get(key)
                if held is not None:
                    found.extend((s, MatchKind.EXACT) for s in _slots(held))
            if self._patterns:
                patterns = self._patterns.patterns
                for slot in self._patterns.candidates(key):
                    pattern = patterns[slot]
                    if pattern.canonical.fullmatch(key):
                        exact = pattern.exact.fullmatch(raw)
                        kind = MatchKind.PARTIAL if exact else MatchKind.PARTIAL_CONFUSABLE
                        found.append((slot, kind))
            if self._edit_entries:
                self._edit_candidates(key, found)
            if not found:
                return []
            return self._results(plate, found, reference_time.timestamp())

    def _edit_candidates(self, key: bytes, found: list[tuple[int, MatchKind]]) -> None:
        """Add slots that may be one edit from `key`: verified, and their lists checked, later.

        By symmetric deletion: the read as it is among listed plates with a character deleted
        (it lacks one), and the read with each character deleted among listed plates as they
        are (it has an extra one) and with a character deleted (one was substituted).
        """
        whole, deletions, edit = self._edit_whole, self._deletions, MatchKind.EDIT
        held = deletions.get(key)
        if held is not None:
            found += [(s, edit) for s in _slots(held)]
        for i in range(len(key)):
            shorter = key[:i] + key[i + 1 :]
            held = whole.get(shorter)
            if held is not None:
                found += [(s, edit) for s in _slots(held)]
            held = deletions.get(shorter)
            if held is not None:
                found += [(s, edit) for s in _slots(held)]

    def _results(self, plate: str, found: list[tuple[int, MatchKind]], now: float) -> list[Match]:
        """Matches for the candidates in force, one per entry, with what differed."""
        results: dict[int, Match] = {}
        for slot, kind in found:
            if slot in results:
                continue
            hotlist = self._numbered.get(self._owner[slot])
            if hotlist is None or not hotlist.live:
                continue
            if hotlist.expires is not None and now >= hotlist.expires:
                continue
            expires = self._entry_expiry.get(slot)
            if expires is not None and now >= expires:
                continue
            listed, how = self._listed(slot), kind
            differences: tuple[Difference, ...] = ()
            if kind is MatchKind.EXACT and listed != plate:
                how, differences = MatchKind.CONFUSABLE, substitutions(plate, listed)
            elif kind is MatchKind.PARTIAL_CONFUSABLE:
                differences = partial_differences(plate, listed)
            elif kind is MatchKind.EDIT:
                if not hotlist.allow_edit:
                    continue
                edit = one_edit(canonical(plate), canonical(listed))
                if edit is None:
                    continue
                differences = edit_differences(plate, listed, edit)
            entry_id = self._ids[slot]
            assert entry_id is not None  # noqa: S101 (a slot in use has its id)
            results[slot] = Match(
                hotlist.info.list_id,
                hotlist.info.name,
                entry_id,
                listed,
                how,
                CONFIDENCE[how],
                differences,
            )
        return sorted(results.values(), key=lambda m: (-m.confidence, m.list_id, m.entry_id))

    def _listed(self, slot: int) -> str:
        pattern = self._patterns.patterns.get(slot)
        if pattern is not None:
            return pattern.text
        start = slot * _WIDTH
        return self._plates[start : start + _WIDTH].rstrip(b"\0").decode("ascii")

    def __len__(self) -> int:
        """How many entries are on the lists in force (expired or not)."""
        with self._lock:
            return sum(len(hotlist.entries) for hotlist in self._lists.values())

    def lists(self) -> list[IndexedList]:
        """The lists indexed, by id (expired ones too, until dropped or purged)."""
        with self._lock:
            return [self._lists[list_id].info for list_id in sorted(self._lists)]

    def size(self, list_id: str) -> int:
        """How many entries a list holds.

        Raises:
            NotFoundError: No such list.
        """
        with self._lock:
            return len(self._require(list_id).entries)

    # Patching.

    def put_list(
        self, info: IndexedList, entries: Iterable[IndexedEntry] | EntryColumns = ()
    ) -> None:
        """Index a list whole, replacing any list with its id at one instant.

        Reads matched while it is filled see the old version, then the new.

        Raises:
            ValidationError: An entry's id or plate is not acceptable (nothing changes).
        """
        checked = _check(entries)
        with self._write_lock:
            with self._lock:
                fresh = _List(info, self._next_number)
                self._next_number += 1
                self._numbered[fresh.number] = fresh
            self._insert(fresh, checked)
            with self._lock:
                old = self._lists.get(info.list_id)
                fresh.live = True
                self._lists[info.list_id] = fresh
                if old is not None:
                    old.live = False
            if old is not None:
                self._clear(old)

    def add(self, list_id: str, entries: Iterable[IndexedEntry] | EntryColumns) -> None:
        """Add entries to a list; an entry whose id is already there is replaced.

        Raises:
            NotFoundError: No such list.
            ValidationError: An entry's id or plate is not acceptable (nothing changes).
        """
        checked = _check(entries)
        with self._write_lock:
            with self._lock:
                hotlist = self._require(list_id)
            self._insert(hotlist, checked)

    def remove(self, list_id: str, entry_ids: Iterable[str]) -> int:
        """Take entries off a list (removed, or cancelled as in error: HOT-5).

        Ids the list does not hold are skipped, as a partner's delta may name them.

        Returns:
            How many entries were taken off.

        Raises:
            NotFoundError: No such list.
        """
        with self._write_lock:
            with self._lock:
                hotlist = self._require(list_id)
            slots = [hotlist.entries[i] for i in dict.fromkeys(entry_ids) if i in hotlist.entries]
            self._delete(hotlist, slots)
            return len(slots)

    def set_expiry(self, list_id: str, expires_at: datetime | None) -> None:
        """Move a list's expiry, as when a partner's list is refreshed.

        Raises:
            NotFoundError: No such list.
            ValidationError: ``expires_at`` is naive.
        """
        with self._write_lock, self._lock:
            hotlist = self._require(list_id)
            hotlist.info = dataclasses.replace(hotlist.info, expires_at=expires_at)
            hotlist.expires = _timestamp(expires_at)

    def drop_list(self, list_id: str) -> int:
        """Stop matching a list at once, then free its entries.

        Returns:
            How many entries it held.

        Raises:
            NotFoundError: No such list.
        """
        with self._write_lock:
            return self._drop(list_id)

    def purge_expired(self, reference_time: datetime) -> list[str]:
        """Free the lists and entries past their expiry at `reference_time`.

        Matching already ignores them; this gives back their memory.

        Returns:
            The ids of the lists dropped.

        Raises:
            ValidationError: ``reference_time`` is naive.
        """
        _check_aware("reference_time", reference_time)
        now = reference_time.timestamp()
        with self._write_lock:
            with self._lock:
                gone = [
                    h.info.list_id
                    for h in self._lists.values()
                    if h.expires is not None and now >= h.expires
                ]
                stale = [slot for slot, expires in self._entry_expiry.items() if now >= expires]
            for list_id in gone:
                self._drop(list_id)
            by_list: dict[int, list[int]] = {}
            for slot in stale:
                by_list.setdefault(self._owner[slot], []).append(slot)
            for number, slots in by_list.items():
                hotlist = self._numbered.get(number)
                if hotlist is not None:
                    self._delete(hotlist, slots)
            return gone

    # Internals: every method below runs under the write lock.

    def _require(self, list_id: str) -> _List:
        hotlist = self._lists.get(list_id)
        if hotlist is None:
            raise NotFoundError(f"no hotlist {list_id!r} in the match index")
        return hotlist

    def _drop(self, list_id: str) -> int:
        with self._lock:
            hotlist = self._require(list_id)
            hotlist.live = False
            del self._lists[list_id]
        count = len(hotlist.entries)
        self._clear(hotlist)
        return count

    def _insert(self, hotlist: _List, checked: _Checked) -> None:
        """Index `checked` on `hotlist`, a batch at a time: whole plates at once if it can.

        The usual batch of a partner's list: ids new to the list, no expiries of their
        own, on a list without edits. Its whole plates are filed a column at a time, its
        patterns one by one. Any other batch is indexed one entry at a time.
        """
        for start in range(0, len(checked), PATCH_BATCH):
            part = checked.part(start, start + PATCH_BATCH)
            with self._lock:
                if hotlist.allow_edit or part.expiring or not part.new_to(hotlist.entries):
                    rows = part.rows()
                else:
                    whole, patterns = part.split()
                    self._insert_whole(hotlist, whole)
                    rows = patterns.rows()
                for row in rows:
                    self._insert_one(hotlist, row)

    def _insert_whole(self, hotlist: _List, part: _Checked) -> None:
        """What `_insert_one` does for each entry of `part`, done a column at a time.

        Only for whole plates with ids new to a list without edits, and no expiries of
        their own.
        """
        count, ids = len(part), part.ids
        free = self._free
        reused = free[len(free) - min(count, len(free)) :]
        first = len(self._ids)
        slots = [*reused, *range(first, first + count - len(reused))]
        del free[len(free) - len(reused) :]
        for slot, entry_id, text in zip(reused, ids, part.texts, strict=False):
            self._ids[slot] = entry_id
            self._owner[slot] = hotlist.number
            self._plates[slot * _WIDTH : slot * _WIDTH + len(text)] = text.encode("ascii")
        appended = part.texts[len(reused) :]
        self._ids.extend(ids[len(reused) :])
        self._owner.extend(array("I", [hotlist.number]) * len(appended))
        self._plates += "".join(map(str.ljust, appended, repeat(_WIDTH), repeat("\0"))).encode()
        hotlist.entries.update(zip(ids, slots, strict=True))
        fresh: dict[bytes, int | list[int]] = dict(zip(part.keys, slots, strict=True))
        if len(fresh) < count:  # plates alike but for confusables: the slots it left out
            left = [(k, s) for k, s in zip(part.keys, slots, strict=True) if fresh[k] != s]
            for key, slot in left:
                _put(fresh, key, slot)
        whole = hotlist.whole
        for key in fresh.keys() & whole.keys():
            fresh[key] = [*_slots(whole[key]), *_slots(fresh[key])]
        whole.update(fresh)

    def _insert_one(self, hotlist: _List, row: _Row) -> None:
        entry_id, text, key, partial, expires = row
        old = hotlist.entries.get(entry_id)
        if old is not None:
            self._delete_one(hotlist, old)
        if self._free:
            slot = self._free.pop()
            self._ids[slot] = entry_id
            self._owner[slot] = hotlist.number
        else:
            slot = len(self._ids)
            self._ids.append(entry_id)
            self._owner.append(hotlist.number)
            self._plates += _EMPTY
        hotlist.entries[entry_id] = slot
        if expires is not None:
            self._entry_expiry[slot] = expires
        if partial:
            self._patterns.add(slot, text, key)
            return
        start = slot * _WIDTH
        self._plates[start : start + len(text)] = text.encode("ascii")
        _put(hotlist.whole, key, slot)
        if hotlist.allow_edit and len(key) >= MIN_EDIT_PLATE:
            self._edit_entries += 1
            _put(self._edit_whole, key, slot)
            for shorter in _deletions(key):
                _put(self._deletions, shorter, slot)

    def _delete(self, hotlist: _List, slots: Sequence[int]) -> None:
        for start in range(0, len(slots), PATCH_BATCH):
            with self._lock:
                for slot in slots[start : start + PATCH_BATCH]:
                    self._delete_one(hotlist, slot)

    def _clear(self, hotlist: _List) -> None:
        """Free the slots of a list no longer live, and forget it.

        Its own dicts go with it. Only what is filed outside it is unfiled: patterns,
        and plates on a list that allows edits (entry by entry).
        """
        slots = list(hotlist.entries.values())
        patterns = self._patterns.patterns
        for start in range(0, len(slots), PATCH_BATCH):
            batch = slots[start : start + PATCH_BATCH]
            with self._lock:
                if hotlist.allow_edit:
                    for slot in batch:
                        self._delete_one(hotlist, slot)
                else:
                    for slot in patterns.keys() & set(batch):
                        self._patterns.remove(slot)
                    self._release(batch)
        with self._lock:
            self._numbered.pop(hotlist.number, None)

    def _release(self, slots: Sequence[int]) -> None:
        """Free `slots`, whose entries are filed nowhere but in the lists they were on."""
        ids, owner, plates = self._ids, self._owner, self._plates
        for slot in slots:
            ids[slot] = None
            owner[slot] = 0
            plates[slot * _WIDTH : (slot + 1) * _WIDTH] = _EMPTY
        if self._entry_expiry:
            for slot in slots:
                self._entry_expiry.pop(slot, None)
        self._free.extend(slots)

    def _delete_one(self, hotlist: _List, slot: int) -> None:
        entry_id = self._ids[slot]
        assert entry_id is not None  # noqa: S101 (a slot in use has its id)
        del hotlist.entries[entry_id]
        self._entry_expiry.pop(slot, None)
        if self._patterns.remove(slot) is None:
            key = canonical(self._listed(slot))
            _take(hotlist.whole, key, slot)
            if hotlist.allow_edit and len(key) >= MIN_EDIT_PLATE:
                self._edit_entries -= 1
                _take(self._edit_whole, key, slot)
                for shorter in _deletions(key):
                    _take(self._deletions, shorter, slot)
            start = slot * _WIDTH
            self._plates[start : start + _WIDTH] = _EMPTY
        self._ids[slot] = None
        self._owner[slot] = 0
        self._free.append(slot)


def _check(entries: Iterable[IndexedEntry] | EntryColumns) -> _Checked:
    """Check every entry before any is indexed: whole columns at once when they pass.

    Raises:
        ValidationError: An entry's id, plate or expiry is not acceptable, or the columns
            differ in length.
    """
    expires: list[float | None] | None = None
    if isinstance(entries, EntryColumns):
        ids, texts = list(entries.entry_ids), list(entries.plates)
        if len(ids) != len(texts):
            raise ValidationError("entries", f"{len(ids)} ids for {len(texts)} plates")
    else:
        listed = list(entries)
        ids, texts = [e.entry_id for e in listed], [e.plate for e in listed]
        if any(e.expires_at is not None for e in listed):
            for entry in listed:
                _check_aware("expires_at", entry.expires_at)
            expires = [_timestamp(e.expires_at) for e in listed]
    if ids and not (
        min(map(len, ids)) > 0 and max(map(len, ids)) <= MAX_ENTRY_ID and "".join(ids).isprintable()
    ):
        for entry_id in ids:
            if not (0 < len(entry_id) <= MAX_ENTRY_ID and entry_id.isprintable()):
                raise ValidationError(
                    "entry_id", f"{entry_id!r}: 1 to {MAX_ENTRY_ID} printable characters"
                )
    joined = "\n".join(texts)
    partial = None
    if (
        "?" in joined
        or "*" in joined
        or not _WHOLE_PLATES.fullmatch(joined)
        or joined.count("\n") != len(texts) - 1
    ):
        partial = [not _is_whole(text) for text in texts]
        for text in compress(texts, partial):
            PlatePattern(text)  # raises unless it is a canonical pattern
    return _Checked(ids, texts, canonical_column(texts), partial, expires)


def _is_whole(text: str) -> bool:
    """Whether `text` is a plate as `normalize_plate` gives it (not a pattern)."""
    return (
        0 < len(text) <= MAX_PLATE
        and text.isascii()
        and text.isalnum()
        and (text.isupper() or text.isdigit())
    )


def _check_aware(field: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValidationError(field, f"{value.isoformat()} is naive; give an aware time")


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _slots(held: int | list[int]) -> Sequence[int]:
    return (held,) if isinstance(held, int) else held


def _put(table: dict[bytes, int | list[int]], key: bytes, slot: int) -> None:
    held = table.get(key)
    if held is None:
        table[key] = slot
    elif isinstance(held, int):
        table[key] = [held, slot]
    else:
        held.append(slot)


def _take(table: dict[bytes, int | list[int]], key: bytes, slot: int) -> None:
    held = table.get(key)
    if held is None:
        return
    if isinstance(held, int):
        if held == slot:
            del table[key]
        return
    if slot in held:
        held.remove(slot)
    if len(held) == 1:
        table[key] = held[0]


def _deletions(key: bytes) -> set[bytes]:
    """`key` with each one of its characters deleted."""
    return {key[:i] + key[i + 1 :] for i in range(len(key))}
