"""Policy profiles: the shipped ones hold what the policies say, and a broken one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.errors import ValidationError
from node.profile import (
    Offence,
    Period,
    PolicyProfile,
    ProfileError,
    Role,
    builtin_profiles,
    load_profile,
    profile_from_text,
)

AGENCIES = ["claremont_pd", "lapd", "lasd", "south_pasadena_pd", "usc_dps"]

VALID = """\
[profile]
name = "test_pd"
agency = "Test Police Department"
ori = "CA0194200"
policy = "a test policy"

[retention]
read_period = "P2Y"
archive = true
hard_limit = "P5YT24H1M"

[access]
purposes = ["Criminal investigations"]

[archived_search]
offences = ["PC 646.9", "terrorism"]
court_order = true
approver_roles = ["custodian_of_records"]

[audit]
retention = "P5Y"

[sharing]
approver_roles = ["system_administrator", "custodian_of_records"]
approve_each_request = true
"""


def edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


# name -> (profile text, the field the refusal names)
BROKEN = {
    "not toml": ("[profile\n", ""),
    "read period under a year (RET-1)": (
        edit('read_period = "P2Y"', 'read_period = "P11M"'),
        "retention.read_period",
    ),
    "read period 365 days, short across a leap day (RET-1)": (
        edit('read_period = "P2Y"', 'read_period = "P365D"'),
        "retention.read_period",
    ),
    "hard limit shorter than the read period (RET-3)": (
        edit('hard_limit = "P5YT24H1M"', 'hard_limit = "P1Y"'),
        "retention.hard_limit",
    ),
    "hard limit equal to the read period (RET-3)": (
        edit('hard_limit = "P5YT24H1M"', 'hard_limit = "P24M"'),
        "retention.hard_limit",
    ),
    "archive without a hard limit (RET-3)": (
        edit('hard_limit = "P5YT24H1M"\n', ""),
        "retention.hard_limit",
    ),
    "hard limit without archive": (
        edit("archive = true", "archive = false"),
        "retention.hard_limit",
    ),
    "archive without search rules (RET-5)": (
        VALID.partition("[archived_search]")[0] + "".join(VALID.partition("[audit]")[1:]),
        "archived_search",
    ),
    "audit retention under 2 years (AUD-2)": (
        edit('retention = "P5Y"', 'retention = "P1Y11M"'),
        "audit.retention",
    ),
    "civil immigration purpose (ACC-7)": (
        edit('["Criminal investigations"]', '["Criminal investigations", "Civil immigration"]'),
        "access.purposes",
    ),
    "commercial purpose (SHR-1)": (
        edit('["Criminal investigations"]', '["Commercial data sales"]'),
        "access.purposes",
    ),
    "no purpose (ACC-6)": (edit('["Criminal investigations"]', "[]"), "access.purposes"),
    "repeated purpose": (edit('["Criminal investigations"]', '["a", "A "]'), "access.purposes"),
    "blank purpose": (edit('["Criminal investigations"]', '[" "]'), "access.purposes"),
    "unlisted offence (RET-5)": (
        edit('"PC 646.9", "terrorism"', '"PC 484 petty theft"'),
        "archived_search.offences",
    ),
    "repeated offence": (
        edit('"PC 646.9", "terrorism"', '"terrorism", "terrorism"'),
        "archived_search.offences",
    ),
    "data user approves archived searches (RET-2)": (
        edit('approver_roles = ["custodian_of_records"]', 'approver_roles = ["data_user"]'),
        "archived_search.approver_roles",
    ),
    "nobody approves sharing (SHR-5)": (
        edit(
            'approver_roles = ["system_administrator", "custodian_of_records"]',
            "approver_roles = []",
        ),
        "sharing.approver_roles",
    ),
    "unknown role": (
        edit('["system_administrator", "custodian_of_records"]', '["chief"]'),
        "sharing.approver_roles",
    ),
    "repeated role": (
        edit('["system_administrator", "custodian_of_records"]', '["auditor", "auditor"]'),
        "sharing.approver_roles",
    ),
    "approval as a string (SHR-5)": (
        edit("approve_each_request = true", 'approve_each_request = "yes"'),
        "sharing.approve_each_request",
    ),
    "approval left unsaid (SHR-5)": (
        edit("approve_each_request = true\n", ""),
        "sharing.approve_each_request",
    ),
    "unknown key": (edit("[audit]\n", "[audit]\nretention_days = 1825\n"), "audit.retention_days"),
    "unknown table": (VALID + "\n[extra]\nx = 1\n", "extra"),
    "table that is a value": ("sharing = 1\n" + VALID.partition("[sharing]")[0], "sharing"),
    "missing key": (edit('agency = "Test Police Department"\n', ""), "profile.agency"),
    "missing table": (VALID.partition("[sharing]")[0], "sharing"),
    "period as a number": (edit('retention = "P5Y"', "retention = 1825"), "audit.retention"),
    "period not ISO 8601": (edit('retention = "P5Y"', 'retention = "5 years"'), "audit.retention"),
    "period with weeks": (edit('retention = "P5Y"', 'retention = "P260W"'), "audit.retention"),
    "period over 100 years": (edit('retention = "P5Y"', 'retention = "P101Y"'), "audit.retention"),
    "ori as a date": (edit('ori = "CA0194200"', "ori = 1979-05-27"), "profile.ori"),
    "archive as a string": (edit("archive = true", 'archive = "yes"'), "retention.archive"),
    "purposes as a string": (
        edit('["Criminal investigations"]', '"Criminal investigations"'),
        "access.purposes",
    ),
    "purposes holding a number": (edit('["Criminal investigations"]', "[1]"), "access.purposes"),
    "malformed ori": (edit('ori = "CA0194200"', 'ori = "LAPD"'), "profile.ori"),
    "name with capitals": (edit('name = "test_pd"', 'name = "Test PD"'), "profile.name"),
    "blank agency": (edit('agency = "Test Police Department"', 'agency = " "'), "profile.agency"),
}


def shipped(name: str) -> PolicyProfile:
    return load_profile(builtin_profiles()[name])


class TestBuiltinProfiles:
    def test_succeeds_shipping_one_per_agency(self) -> None:
        assert list(builtin_profiles()) == AGENCIES

    @pytest.mark.parametrize("name", AGENCIES)
    def test_succeeds_loading_under_its_file_name(self, name: str) -> None:
        assert shipped(name).name == name

    @pytest.mark.parametrize("name", AGENCIES)
    def test_succeeds_with_a_policy_comment_on_every_value(self, name: str) -> None:
        lines = builtin_profiles()[name].read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if " = " in line and not line.startswith("#"):
                assert lines[number - 1].startswith("#"), f"{name}.toml line {number + 1}"

    @pytest.mark.parametrize(
        ("name", "years"),
        [("usc_dps", 1), ("south_pasadena_pd", 1), ("claremont_pd", 2), ("lapd", 2), ("lasd", 2)],
    )
    def test_ret1_read_period_is_the_policys(self, name: str, years: int) -> None:
        assert shipped(name).retention.read_period == Period(years=years)

    @pytest.mark.parametrize(
        ("name", "archive"),
        [
            ("usc_dps", False),
            ("south_pasadena_pd", False),
            ("claremont_pd", False),
            ("lapd", True),
            ("lasd", True),
        ],
    )
    def test_ret2_archive_only_where_the_policy_archives(self, name: str, archive: bool) -> None:
        profile = shipped(name)
        assert profile.retention.archive is archive
        assert (profile.archived_search is not None) is archive

    def test_ret3_lapd_hard_limit_is_five_years_24_hours_and_a_minute(self) -> None:
        hard_limit = shipped("lapd").retention.delete_after
        start = datetime(2021, 3, 1, 12, 0, tzinfo=UTC)
        assert hard_limit.add_to(start) == datetime(2026, 3, 2, 12, 1, tzinfo=UTC)

    def test_ret3_without_archive_reads_are_deleted_at_the_read_period(self) -> None:
        retention = shipped("claremont_pd").retention
        assert retention.delete_after == retention.read_period == Period(years=2)

    @pytest.mark.parametrize("name", ["lapd", "lasd"])
    def test_ret5_archive_opens_for_the_listed_offences_and_court_orders(self, name: str) -> None:
        search = shipped(name).archived_search
        assert search is not None
        assert set(search.offences) == set(Offence)
        assert search.court_order
        assert search.approver_roles == (Role.CUSTODIAN_OF_RECORDS,)

    @pytest.mark.parametrize(
        ("name", "years"),
        [("usc_dps", 5), ("south_pasadena_pd", 5), ("claremont_pd", 5), ("lapd", 5), ("lasd", 2)],
    )
    def test_aud2_audit_retention_is_the_policys_or_five_years(self, name: str, years: int) -> None:
        assert shipped(name).audit.retention == Period(years=years)

    def test_acc6_lapd_lists_its_six_authorized_uses(self) -> None:
        purposes = shipped("lapd").access.purposes
        assert len(purposes) == 6
        assert "Situational awareness operations" in purposes

    def test_acc6_lasd_lists_its_seven_authorized_purposes(self) -> None:
        purposes = shipped("lasd").access.purposes
        assert len(purposes) == 7
        assert "Crime analysis" in purposes

    @pytest.mark.parametrize("name", AGENCIES)
    def test_acc7_no_purpose_is_immigration_or_commercial(self, name: str) -> None:
        for purpose in shipped(name).access.purposes:
            assert "immigration" not in purpose.casefold()
            assert "commerc" not in purpose.casefold()

    @pytest.mark.parametrize(
        ("name", "role"),
        [
            ("usc_dps", Role.CUSTODIAN_OF_RECORDS),
            ("south_pasadena_pd", Role.SYSTEM_ADMINISTRATOR),
            ("claremont_pd", Role.CUSTODIAN_OF_RECORDS),
            ("lapd", Role.CUSTODIAN_OF_RECORDS),
            ("lasd", Role.CUSTODIAN_OF_RECORDS),
        ],
    )
    def test_shr5_partner_requests_are_approved_by_the_designated_role(
        self, name: str, role: Role
    ) -> None:
        assert shipped(name).sharing.approver_roles == (role,)

    @pytest.mark.parametrize(
        ("name", "each"),
        [
            ("usc_dps", False),
            ("south_pasadena_pd", True),
            ("claremont_pd", True),
            ("lapd", False),
            ("lasd", True),
        ],
    )
    def test_shr5_each_request_waits_for_approval_where_the_policy_says_so(
        self, name: str, each: bool
    ) -> None:
        assert shipped(name).sharing.approve_each_request is each

    def test_succeeds_naming_lapds_ori_and_leaving_unconfirmed_ones_empty(self) -> None:
        assert shipped("lapd").ori == "CA0194200"
        assert shipped("lasd").ori == ""


class TestProfileFromText:
    def test_succeeds(self) -> None:
        profile = profile_from_text(VALID, "test.toml")
        assert profile.ori == "CA0194200"
        assert profile.archived_search is not None
        assert profile.archived_search.offences == (Offence.STALKING, Offence.TERRORISM)
        assert profile.sharing.approver_roles == (
            Role.SYSTEM_ADMINISTRATOR,
            Role.CUSTODIAN_OF_RECORDS,
        )

    def test_succeeds_without_an_ori(self) -> None:
        assert profile_from_text(edit('ori = "CA0194200"\n', ""), "test.toml").ori == ""

    @pytest.mark.parametrize(("text", "field"), BROKEN.values(), ids=BROKEN.keys())
    def test_fails_when_broken(self, text: str, field: str) -> None:
        with pytest.raises(ProfileError) as raised:
            profile_from_text(text, "test.toml")
        assert raised.value.field == field
        assert str(raised.value).startswith("test.toml: ")

    def test_fails_with_a_message_naming_the_rule(self) -> None:
        text = edit('read_period = "P2Y"', 'read_period = "P6M"')
        with pytest.raises(ValidationError, match=r"P6M is less than 1 year.*\(RET-1\)"):
            profile_from_text(text, "test.toml")


class TestLoadProfile:
    def test_succeeds(self, tmp_path: Path) -> None:
        path = tmp_path / "mine.toml"
        path.write_text(VALID, encoding="utf-8")
        assert load_profile(path).name == "test_pd"

    def test_fails_when_missing(self, tmp_path: Path) -> None:
        with pytest.raises(ProfileError, match="cannot read it"):
            load_profile(tmp_path / "absent.toml")

    def test_fails_when_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.toml"
        path.write_bytes(b"\xff\xfe")
        with pytest.raises(ProfileError, match="cannot read it"):
            load_profile(path)


periods = st.builds(
    lambda parts: Period(**parts),
    st.fixed_dictionaries(
        {
            unit: st.integers(0, top)
            for unit, top in (
                ("years", 50),
                ("months", 30),
                ("days", 800),
                ("hours", 48),
                ("minutes", 120),
                ("seconds", 120),
            )
        }
    ).filter(lambda parts: any(parts.values())),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


class TestPeriod:
    @given(periods)
    @example(Period(years=5, hours=24, minutes=1))
    @example(Period(seconds=1))
    def test_succeeds_round_trip(self, period: Period) -> None:
        assert Period.parse(str(period)) == period

    @given(periods, instants)
    @example(Period(years=1), datetime(2024, 2, 29, tzinfo=UTC))
    @example(Period(months=1), datetime(2023, 1, 31, tzinfo=UTC))
    def test_succeeds_within_its_bounds(self, period: Period, start: datetime) -> None:
        assert period.shortest <= period.add_to(start) - start <= period.longest

    @given(periods, periods, instants)
    def test_succeeds_covering_only_what_it_outlasts(
        self, mine: Period, theirs: Period, start: datetime
    ) -> None:
        if mine.covers(theirs):
            assert mine.add_to(start) >= theirs.add_to(start)

    def test_succeeds_adding_a_year_to_a_leap_day(self) -> None:
        start = datetime(2024, 2, 29, 8, 30, tzinfo=UTC)
        assert Period(years=1).add_to(start) == datetime(2025, 2, 28, 8, 30, tzinfo=UTC)
        assert Period(days=365).add_to(start) - start == timedelta(days=365)

    @pytest.mark.parametrize("text", ["P", "PT", "P0D", "P1.5Y", "P-1Y", "P1Y2", "PT1D", "p1y"])
    def test_fails_when_malformed(self, text: str) -> None:
        with pytest.raises(ValidationError) as raised:
            Period.parse(text, "retention.read_period")
        assert raised.value.field == "retention.read_period"

    def test_fails_when_added_to_a_naive_time(self) -> None:
        with pytest.raises(ValidationError, match="timezone-aware"):
            Period(days=1).add_to(datetime(2024, 1, 1))
