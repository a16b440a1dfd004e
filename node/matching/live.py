"""The match index kept in step with the store: the agency's lists and the partners' (HOT-1).

`LiveIndex.refresh` brings the index up to what the store holds, patching rather than
rebuilding: the agency's own lists by the changes since the version it last applied
(each add, removal and cancellation), each partner's list whole when a new snapshot or
delta of it was stored (its version or time of receipt changed), and a partner list
that left the store, or whose 24 hours ran out, dropped. A partner list is indexed with
its expiry, so it stops matching at that instant whether or not anyone refreshed
(HOT-6). Refreshing costs two small queries when nothing changed; it runs before every
batch of reads is matched, so every process serving the agency sees every change.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress

from alpr.common.v1 import hotlist_pb2
from node.errors import NotFoundError
from node.hotlists.codec import EntryChunk, split_column
from node.hotlists.entry import HotlistEntry
from node.hotlists.partner_store import ListStamp, PartnerHotlists
from node.hotlists.store import HotlistStore, StoredEntry
from node.matching.index import EntryColumns, IndexedEntry, IndexedList, Match, MatchIndex

OWN_PREFIX = "own:"


@dataclass(frozen=True)
class ListedEntry:
    """The entry a match names, decrypted: whose it is, on which list, and its fields."""

    issuer_ori: str
    list_name: str
    entry: HotlistEntry


class LiveIndex:
    """A `MatchIndex` over every list in force, refreshed from the node's store."""

    def __init__(
        self,
        own: HotlistStore,
        partners: PartnerHotlists,
        *,
        ori: str,
        edit_lists: frozenset[str] = frozenset(),
    ) -> None:
        """Follow `own` lists (agency `ori`) and `partners`' lists.

        Args:
            own: The agency's hotlists.
            partners: The partner lists held.
            ori: Our agency.
            edit_lists: Names of our lists on which a read one character away matches.
        """
        self.index = MatchIndex()
        self._own = own
        self._partners = partners
        self._ori = ori
        self._edit_lists = edit_lists
        self._own_version = 0
        self._partner_stamps: dict[str, ListStamp] = {}
        self._lock = threading.Lock()

    def match(self, plate: str, reference_time: datetime) -> list[Match]:
        """Every entry in force that `plate` matches at `reference_time`, best first."""
        return self.index.match(plate, reference_time)

    def refresh(self) -> None:
        """Apply what changed in the store since the last refresh."""
        with self._lock:
            self._refresh_own()
            self._refresh_partners()

    def listed(self, match: Match) -> ListedEntry | None:
        """The entry `match` names, decrypted; None if it left the store meanwhile."""
        if match.list_id.startswith(OWN_PREFIX):
            try:
                stored = self._own.get(match.entry_id)
            except NotFoundError:
                return None
            return ListedEntry(self._ori, stored.list_name, stored.entry)
        found = self._partners.entry(match.list_id, match.entry_id, match.listed)
        if found is None:
            return None
        return ListedEntry(found.issuer_ori, found.list_name, found.entry)

    def probe(self, added: Sequence[StoredEntry]) -> MatchIndex:
        """An index of only `added`, entries of our own lists, each list set as when live.

        Matching a read against it finds what the live index would find for those entries
        alone: the retrospective search for entries just added uses it.
        """
        probe = MatchIndex()
        by_list: dict[str, list[IndexedEntry]] = {}
        for stored in added:
            if stored.in_force:
                by_list.setdefault(stored.list_name, []).append(
                    IndexedEntry(stored.entry_id, stored.entry.plate, stored.entry.expires_at)
                )
        for name, entries in by_list.items():
            probe.put_list(self._own_list(name), entries)
        return probe

    def _own_list(self, name: str) -> IndexedList:
        return IndexedList(
            list_id=OWN_PREFIX + name, name=name, allow_edit=name in self._edit_lists
        )

    def _refresh_own(self) -> None:
        """Apply what changed on our own lists since the version indexed, chunk by chunk.

        A chunk at a time, so that a million-entry extract is indexed at start holding a
        few chunks besides the index, not the list.
        """
        version = self._own.version()
        if version == self._own_version:
            return
        changes = self._own.streamed_since(self._own_version)
        for list_id in self._own_list_ids():
            self.index.remove(list_id, changes.ended)
        for chunk in changes.chunks:
            self._add_own(chunk)
        self._own_version = changes.version

    def _add_own(self, chunk: EntryChunk) -> None:
        """Index the entries of one chunk of our lists, on the list each names.

        As columns per list: an entry without an expiry of its own (nearly all) is no
        tuple of its own. Entries with one are added one by one.
        """
        fields = hotlist_pb2.HotlistEntryFieldsList.FromString(chunk.fields).fields
        ids, plates = split_column(chunk.entry_ids), split_column(chunk.plates)
        names = [entry_fields.list_name for entry_fields in fields]
        dated = [entry_fields.HasField("expires_at") for entry_fields in fields]
        for name in dict.fromkeys(names):
            list_id = OWN_PREFIX + name
            if list_id not in self._own_list_ids():
                self.index.put_list(self._own_list(name))
            undated = [listed == name and not d for listed, d in zip(names, dated, strict=True)]
            columns = EntryColumns(list(compress(ids, undated)), list(compress(plates, undated)))
            self.index.add(list_id, columns)
            expiring = [
                IndexedEntry(ids[k], plates[k], fields[k].expires_at.ToDatetime(tzinfo=UTC))
                for k in compress(range(len(ids)), dated)
                if names[k] == name
            ]
            if expiring:
                self.index.add(list_id, expiring)

    def _own_list_ids(self) -> list[str]:
        return [held.list_id for held in self.index.lists() if held.list_id.startswith(OWN_PREFIX)]

    def _refresh_partners(self) -> None:
        """Bring each partner list in force up to the one held, patched or read whole.

        Patched by the deltas taken since, when they are remembered; read whole after a
        full snapshot, or when they are not. Reading a million-entry list whole takes
        seconds, on the path of the next read committed; a delta's patch, milliseconds.
        """
        in_force = self._partners.in_force()
        for issuer in set(self._partner_stamps) - set(in_force):
            self.index.drop_list(issuer)
            del self._partner_stamps[issuer]
        for issuer, (stamp, expires_at) in in_force.items():
            held = self._partner_stamps.get(issuer)
            if held == stamp:
                continue
            changes = None if held is None else self._partners.changes_since(issuer, held)
            if changes and changes[-1].after == stamp:
                for change in changes:
                    self.index.remove(issuer, change.ended)
                    self.index.add(issuer, EntryColumns(*change.added()))
                self.index.set_expiry(issuer, expires_at)
            else:
                info = IndexedList(list_id=issuer, name=issuer, expires_at=expires_at)
                self.index.put_list(info, EntryColumns(*self._partners.listed(issuer)))
            self._partner_stamps[issuer] = stamp
