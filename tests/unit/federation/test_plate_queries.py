"""The parts of plate queries that need no network: the rate limit, the query, image references."""

from __future__ import annotations

from datetime import timedelta

import pytest

from federation.plate_queries import PlateQuery, RateLimit
from federation.read_images import MAX_IMAGE_READS, MAX_REFERENCE, check_references
from node.errors import ValidationError
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


class TestImageReferences:
    @pytest.mark.parametrize(
        "references",
        [[], ["r"] * 2, [""], ["r" * (MAX_REFERENCE + 1)],
         [f"r{n}" for n in range(MAX_IMAGE_READS + 1)]],
    )  # fmt: skip
    def test_fails_for_none_too_many_blank_long_or_repeated(self, references: list[str]) -> None:
        with pytest.raises(ValidationError) as raised:
            check_references(references)
        assert raised.value.field == "read_references"

    def test_succeeds_for_up_to_the_limit_each_once(self) -> None:
        check_references([f"r{n}" for n in range(MAX_IMAGE_READS)])
