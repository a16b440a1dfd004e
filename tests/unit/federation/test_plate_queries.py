"""The parts of plate queries that need no network: the per-partner rate limit, the query."""

from __future__ import annotations

from datetime import timedelta

from federation.plate_queries import PlateQuery, RateLimit
from tests.support.clock import START
from tests.support.pki import LAPD, LASD


class TestRateLimit:
    def test_shr6_a_partner_past_its_queries_a_minute_is_refused_and_others_are_not(
        self,
    ) -> None:
        limit = RateLimit(2)
        assert [limit.admit(LAPD) for _ in range(3)] == [True, True, False]
        assert limit.admit(LASD)


class TestPlateQuery:
    def test_succeeds_carrying_plate_window_and_warrant_to_partners(self) -> None:
        query = PlateQuery(
            plate="7AB?12*", since=START, until=START + timedelta(hours=1),
            purpose="Criminal investigations or proceedings", case_number="26-1",
            judicial_warrant="W-7",
        )  # fmt: skip
        message = query.to_proto()
        assert (message.plate, message.judicial_warrant) == ("7AB?12*", "W-7")
        assert message.until.ToDatetime(START.tzinfo) - message.since.ToDatetime(
            START.tzinfo
        ) == timedelta(hours=1)
