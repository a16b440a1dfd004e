"""The node's live match index over its own lists, on SQLite and PostgreSQL (HOT-1, HOT-6)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from node.ed25519 import DataKey
from node.hotlists.entry import HotlistEntry, ListType
from node.hotlists.partner_store import PartnerHotlists
from node.hotlists.store import HotlistStore
from node.matching.live import LiveIndex
from tests.support.clock import START, ManualClock

HOUR = timedelta(hours=1)


def entry(plate: str, expires_in: timedelta | None = None) -> HotlistEntry:
    return HotlistEntry(
        plate=plate,
        list_type=ListType.STOLEN_VEHICLE,
        expires_at=None if expires_in is None else START + expires_in,
    )


def found(live: LiveIndex, plate: str, when: timedelta = timedelta(0)) -> set[tuple[str, str]]:
    """(list, plate listed) of every match of `plate` at START + `when`."""
    return {(m.list_id, m.listed) for m in live.match(plate, START + when)}


class TestOwnLists:
    def test_hot6_entries_of_several_lists_match_each_until_its_own_expiry(
        self, engine: Engine
    ) -> None:
        key, clock = DataKey.generate(), ManualClock()
        own = HotlistStore(engine, data_key=key, clock=clock)
        live = LiveIndex(own, PartnerHotlists(engine, data_key=key, clock=clock), ori="CA0194200")
        own.create_list("stolen")
        own.create_list("amber")
        own.add("stolen", [entry("7ABC123"), entry("8XYZ999", HOUR), entry("7AB?12*")])
        own.add("amber", [entry("7A8C123", 2 * HOUR), entry("5SAM123")])
        live.refresh()
        assert found(live, "7ABC123") == {
            ("own:stolen", "7ABC123"),
            ("own:stolen", "7AB?12*"),
            ("own:amber", "7A8C123"),
        }
        assert found(live, "7ABC123", HOUR) == found(live, "7ABC123")
        assert found(live, "7ABC123", 2 * HOUR) == {
            ("own:stolen", "7ABC123"),
            ("own:stolen", "7AB?12*"),
        }
        assert found(live, "8XYZ999", HOUR - timedelta(seconds=1)) == {("own:stolen", "8XYZ999")}
        assert found(live, "8XYZ999", HOUR) == set()
        assert found(live, "5SAM123") == {("own:amber", "5SAM123")}

        own.add("amber", [entry("8XYZ999")])  # a change since: patched, not read whole
        live.refresh()
        assert found(live, "8XYZ999", HOUR) == {("own:amber", "8XYZ999")}
        assert len(live.index) == 6

    def test_hot5_a_list_replaced_stops_matching_what_it_no_longer_holds(
        self, engine: Engine
    ) -> None:
        key, clock = DataKey.generate(), ManualClock()
        own = HotlistStore(engine, data_key=key, clock=clock)
        live = LiveIndex(own, PartnerHotlists(engine, data_key=key, clock=clock), ori="CA0194200")
        own.create_list("stolen")
        own.replace("stolen", [entry("7ABC123"), entry("8XYZ999")])
        live.refresh()
        own.replace("stolen", [entry("7ABC123"), entry("5SAM123")])
        live.refresh()
        assert found(live, "8XYZ999") == set()
        assert found(live, "7ABC123") == {("own:stolen", "7ABC123")}
        assert found(live, "5SAM123") == {("own:stolen", "5SAM123")}
        assert len(live.index) == 2
