"""Policy profiles: what the five agencies' ALPR policies make differ, as one validated value.

A node runs under one profile. The project ships one per agency in `node.profiles`
(`builtin_profiles`); an operator may write their own. A profile is a TOML file with these
tables, every key required unless marked optional, and nothing else (an unknown table or key
is refused):

``[profile]``
    ``name`` (string): a short lowercase name, ``lapd``; a shipped profile is ``<name>.toml``.
    ``agency`` (string): the agency's full name.
    ``ori`` (string, optional): the agency's NCIC ORI, ``CA0194200``; empty or absent if unknown.
    ``policy`` (string): the policy document the values come from.
``[retention]``
    ``read_period`` (period): how long reads stay visible to data users; at least 1 year (RET-1).
    ``archive`` (boolean): ``true``: past ``read_period`` reads are archived (flagged, invisible
    to data users, searchable by a system administrator, RET-2) until ``hard_limit``;
    ``false``: they are deleted at ``read_period``.
    ``hard_limit`` (period): when reads are deleted for good (RET-3); required with
    ``archive = true``, refused without it, and longer than ``read_period``.
``[access]``
    ``purposes`` (array of strings): the authorized purposes a query must state one of (ACC-6);
    none may name civil immigration enforcement (ACC-7) or a commercial purpose (SHR-1).
``[archived_search]`` (required with ``archive = true``, refused without it; RET-5)
    ``offences`` (array of strings): the offences for which archived reads may be searched,
    a subset of `Offence`: ``"PC 1192.7(c)"``, ``"PC 667.5(c)"``, ``"PC 136.1"``, ``"PC 236.1"``,
    ``"PC 273.6(a)"``, ``"PC 646.9"``, ``"PC 290(c)"``, ``"terrorism"``.
    ``court_order`` (boolean): whether a court order also opens the archive.
    ``approver_roles`` (array of strings): who approves such a search, from `APPROVER_ROLES`.
``[audit]``
    ``retention`` (period): how long audit records are kept; at least 2 years (AUD-2).
``[sharing]``
    ``approver_roles`` (array of strings): who approves a partner's request for data (SHR-5),
    from `APPROVER_ROLES`.
    ``approve_each_request`` (boolean): ``true``: each partner's plate query waits, on file,
    until one of ``approver_roles`` approves it; ``false``: the agreement in force is the
    approval and a query is answered at once.

A *period* is an ISO 8601 duration string of whole numbers: ``PnYnMnDTnHnMnS``, any component
may be left out but one must be present and not all zero (``"P2Y"``, ``"P5YT24H1M"``,
``"P18M"``). Weeks and fractions are not accepted. Years and months count on the calendar
(`Period.add_to`), so ``"P1Y"`` is never shorter than a year, while ``"P365D"`` is, across a
29 February, and is refused where a year is the least allowed.

Every value in a shipped profile carries a comment naming the policy section it comes from.
"""

from __future__ import annotations

import calendar
import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TypeVar

from node.errors import NodeError, ValidationError
from node.identity import validate_ori

_PERIOD = re.compile(
    r"P(?:(?P<years>[0-9]{1,6})Y)?(?:(?P<months>[0-9]{1,6})M)?(?:(?P<days>[0-9]{1,6})D)?"
    r"(?:T(?=[0-9])(?:(?P<hours>[0-9]{1,6})H)?(?:(?P<minutes>[0-9]{1,6})M)?"
    r"(?:(?P<seconds>[0-9]{1,6})S)?)?"
)
_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.StrEnum)
_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_LONGEST_PERIOD = timedelta(days=366 * 100)


@dataclass(frozen=True, kw_only=True)
class Period:
    """A length of time as an ISO 8601 duration, years and months counted on the calendar.

    The constructor validates, so a `Period` that exists is positive and at most 100 years.
    Two periods compare equal only when written alike (``P1Y`` is not ``P12M``); use `covers`
    to compare lengths.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        """Refuse a negative component, a zero period and one longer than 100 years.

        Raises:
            ValidationError: ``period``: the period is not one of those allowed.
        """
        parts = (self.years, self.months, self.days, self.hours, self.minutes, self.seconds)
        if any(part < 0 for part in parts) or not any(parts):
            raise ValidationError("period", f"{self} must be longer than zero")
        if self.longest > _LONGEST_PERIOD:
            raise ValidationError("period", f"{self} is longer than 100 years")

    @classmethod
    def parse(cls, text: str, field: str = "period") -> Period:
        """Read an ISO 8601 duration such as ``P2Y`` or ``P5YT24H1M``.

        Args:
            text: The duration.
            field: The name to report on failure.

        Raises:
            ValidationError: `field`: it is not ``PnYnMnDTnHnMnS`` in whole numbers, or is zero
                or longer than 100 years.
        """
        match = _PERIOD.fullmatch(text)
        if match is None or not any(match.groups()):
            raise ValidationError(
                field,
                f"{text!r} is not an ISO 8601 duration of whole years, months, days, hours, "
                'minutes or seconds (e.g. "P2Y", "P5YT24H1M")',
            )
        try:
            return cls(**{name: int(value or 0) for name, value in match.groupdict().items()})
        except ValidationError as error:
            raise ValidationError(field, error.problem) from error

    def __str__(self) -> str:
        """The period in its shortest ISO 8601 form, which `parse` reads back."""
        day_part = "".join(
            f"{value}{unit}"
            for value, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D"))
            if value
        )
        time_part = "".join(
            f"{value}{unit}"
            for value, unit in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S"))
            if value
        )
        return (
            f"P{day_part}{'T' + time_part if time_part else ''}" if day_part or time_part else "P0D"
        )

    @property
    def _total_months(self) -> int:
        return 12 * self.years + self.months

    @property
    def _clock_time(self) -> timedelta:
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )

    @property
    def shortest(self) -> timedelta:
        """The least time the period can span, from any instant (365-day years, 28-day months)."""
        years, months = divmod(self._total_months, 12)
        return timedelta(days=365 * years + 28 * months) + self._clock_time

    @property
    def longest(self) -> timedelta:
        """The most time the period can span, from any instant (366-day years, 31-day months)."""
        years, months = divmod(self._total_months, 12)
        return timedelta(days=366 * years + 31 * months) + self._clock_time

    def covers(self, other: Period) -> bool:
        """Whether this period, from any instant, ends no earlier than `other` does.

        Exact when neither has more calendar months and more clock time than the other;
        otherwise conservative: ``P365D`` does not cover ``P1Y`` (a leap year is longer).
        """
        if self._total_months >= other._total_months and self._clock_time >= other._clock_time:
            return True
        return self.shortest >= other.longest

    def add_to(self, instant: datetime) -> datetime:
        """The instant this period after `instant`: calendar years and months, then clock time.

        A day that the target month lacks becomes its last day (29 February plus ``P1Y`` is
        28 February). Used as ``read.taken_at + profile.retention.read_period``.

        Raises:
            ValidationError: ``instant`` is naive; retention is computed on aware times only.
        """
        if instant.tzinfo is None:
            raise ValidationError("instant", "must be timezone-aware")
        year, month = divmod(12 * instant.year + instant.month - 1 + self._total_months, 12)
        day = min(instant.day, calendar.monthrange(year, month + 1)[1])
        shifted = datetime.combine(date(year, month + 1, day), instant.timetz())
        return shifted + self._clock_time


class Role(enum.StrEnum):
    """The roles of ACC-1, as a profile names them."""

    SYSTEM_ADMINISTRATOR = "system_administrator"
    DATA_USER = "data_user"
    PATROL = "patrol"
    AUDITOR = "auditor"
    CUSTODIAN_OF_RECORDS = "custodian_of_records"


# Approving belongs to the roles that administer the data: patrol may not change data and data
# users may not see archived reads (ACC-1, RET-2); an auditor reviews approvals, never grants them.
APPROVER_ROLES = frozenset({Role.SYSTEM_ADMINISTRATOR, Role.CUSTODIAN_OF_RECORDS})


class Offence(enum.StrEnum):
    """The offences for which archived reads may be searched (RET-5, from 003 LAPD)."""

    SERIOUS_FELONY = "PC 1192.7(c)"
    VIOLENT_FELONY = "PC 667.5(c)"
    WITNESS_INTIMIDATION = "PC 136.1"
    HUMAN_TRAFFICKING = "PC 236.1"
    PROTECTIVE_ORDER_VIOLATION = "PC 273.6(a)"
    STALKING = "PC 646.9"
    SEX_OFFENDER_REGISTRATION = "PC 290(c)"
    TERRORISM = "terrorism"


LEAST_READ_PERIOD = Period(years=1)  # RET-1: 000 USC DPS and 001 South Pasadena PD
LEAST_AUDIT_RETENTION = Period(years=2)  # AUD-2: 004 LASD
# A word in a purpose (compared case-insensitively) that no profile may authorize.
FORBIDDEN_PURPOSE_WORDS = {
    "immigration": "civil immigration enforcement is never an authorized purpose (ACC-7)",
    "commerc": "a commercial purpose is never an authorized purpose (SHR-1, ACC-7)",
}


def _roles(field: str, roles: tuple[Role, ...]) -> None:
    if not roles:
        raise ValidationError(field, "names no role; someone must approve")
    if len(set(roles)) != len(roles):
        raise ValidationError(field, "names a role twice")
    if barred := sorted(set(roles) - APPROVER_ROLES):
        raise ValidationError(
            field,
            f"{', '.join(barred)} may not approve; only "
            f"{', '.join(sorted(APPROVER_ROLES))} (ACC-1, RET-2)",
        )


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long reads are kept (RET-1…3).

    Attributes:
        read_period: How long reads stay visible to data users.
        archive: Whether reads past `read_period` are archived rather than deleted.
        hard_limit: When archived reads are deleted for good; None when `archive` is false.
    """

    read_period: Period
    archive: bool
    hard_limit: Period | None = None

    def __post_init__(self) -> None:
        """Check RET-1 and RET-3.

        Raises:
            ValidationError: ``retention.read_period`` is under a year, or
                ``retention.hard_limit`` is missing, superfluous or not longer than it.
        """
        if not self.read_period.covers(LEAST_READ_PERIOD):
            raise ValidationError(
                "retention.read_period",
                f"{self.read_period} is less than 1 year, the least any policy allows (RET-1)",
            )
        if self.hard_limit is None:
            if self.archive:
                raise ValidationError(
                    "retention.hard_limit", "missing: archived reads need a hard limit (RET-3)"
                )
            return
        if not self.archive:
            raise ValidationError(
                "retention.hard_limit",
                "only with archive = true; otherwise reads are deleted at read_period",
            )
        if not self.hard_limit.covers(self.read_period) or self.read_period.covers(self.hard_limit):
            raise ValidationError(
                "retention.hard_limit",
                f"{self.hard_limit} is not longer than read_period {self.read_period}: "
                "reads would be deleted before they are archived (RET-3)",
            )

    @property
    def delete_after(self) -> Period:
        """When a read not under a legal hold is deleted for good (RET-3)."""
        return self.hard_limit or self.read_period


@dataclass(frozen=True, kw_only=True)
class Access:
    """What a query may be for (ACC-6, ACC-7).

    Attributes:
        purposes: The authorized purposes; a query states one of them.
    """

    purposes: tuple[str, ...]

    def __post_init__(self) -> None:
        """Check the purposes.

        Raises:
            ValidationError: ``access.purposes`` is empty, has a blank or repeated purpose, or
                one naming civil immigration enforcement (ACC-7) or commerce (SHR-1).
        """
        field = "access.purposes"
        if not self.purposes:
            raise ValidationError(field, "names no purpose; every query states one (ACC-6)")
        folded = [purpose.strip().casefold() for purpose in self.purposes]
        if not all(folded):
            raise ValidationError(field, "has a blank purpose")
        if len(set(folded)) != len(folded):
            raise ValidationError(field, "names a purpose twice")
        for purpose in self.purposes:
            for word, problem in FORBIDDEN_PURPOSE_WORDS.items():
                if word in purpose.casefold():
                    raise ValidationError(field, f"{purpose!r}: {problem}")


@dataclass(frozen=True, kw_only=True)
class ArchivedSearch:
    """When archived reads may be searched, and who approves (RET-5).

    Attributes:
        offences: The offences that open the archive.
        court_order: Whether a court order also opens it.
        approver_roles: The roles that approve such a search.
    """

    offences: tuple[Offence, ...]
    court_order: bool
    approver_roles: tuple[Role, ...]

    def __post_init__(self) -> None:
        """Check the offences and the approvers.

        Raises:
            ValidationError: ``archived_search.offences`` repeats one, or
                ``archived_search.approver_roles`` is empty, repeats or names a barred role.
        """
        if len(set(self.offences)) != len(self.offences):
            raise ValidationError("archived_search.offences", "names an offence twice")
        _roles("archived_search.approver_roles", self.approver_roles)


@dataclass(frozen=True, kw_only=True)
class Audit:
    """How long audit records are kept (AUD-2); no data purge touches them.

    Attributes:
        retention: How long each record is kept.
    """

    retention: Period

    def __post_init__(self) -> None:
        """Check AUD-2.

        Raises:
            ValidationError: ``audit.retention`` is under 2 years.
        """
        if not self.retention.covers(LEAST_AUDIT_RETENTION):
            raise ValidationError(
                "audit.retention",
                f"{self.retention} is less than 2 years, the least any policy allows (AUD-2)",
            )


@dataclass(frozen=True, kw_only=True)
class Sharing:
    """Who approves a partner's request for data, and whether each one waits for it (SHR-5).

    Attributes:
        approver_roles: The roles that approve it.
        approve_each_request: Whether each partner's plate query is held until one of
            `approver_roles` approves it; else the agreement in force is the approval.
    """

    approver_roles: tuple[Role, ...]
    approve_each_request: bool

    def __post_init__(self) -> None:
        """Check the approvers.

        Raises:
            ValidationError: ``sharing.approver_roles`` is empty, repeats or names a barred role.
        """
        _roles("sharing.approver_roles", self.approver_roles)


@dataclass(frozen=True, kw_only=True)
class PolicyProfile:
    """One agency's policy profile, validated: a `PolicyProfile` that exists breaks no rule.

    Attributes:
        name: Its short name, ``lapd``.
        agency: The agency's full name.
        ori: The agency's ORI, or empty when the profile does not state it.
        policy: The policy document the values come from.
        retention: How long reads are kept.
        access: What a query may be for.
        archived_search: When archived reads may be searched; None when nothing is archived.
        audit: How long audit records are kept.
        sharing: Who approves a partner's request, and whether each one waits for it.
    """

    name: str
    agency: str
    ori: str = ""
    policy: str
    retention: Retention
    access: Access
    archived_search: ArchivedSearch | None = None
    audit: Audit
    sharing: Sharing

    def __post_init__(self) -> None:
        """Check the names and that the archive's rules come with an archive.

        Raises:
            ValidationError: ``profile.name``, ``profile.agency``, ``profile.policy`` or
                ``profile.ori`` is malformed, or ``archived_search`` is missing with
                ``archive = true`` or present without it.
        """
        if not _NAME.fullmatch(self.name):
            raise ValidationError(
                "profile.name", f"{self.name!r} is not lowercase letters, digits and '_'"
            )
        for field, value in (("profile.agency", self.agency), ("profile.policy", self.policy)):
            if not value.strip():
                raise ValidationError(field, "must not be blank")
        if self.ori:
            validate_ori(self.ori, "profile.ori")
        if self.retention.archive and self.archived_search is None:
            raise ValidationError(
                "archived_search", "missing: archived reads need their search rules (RET-5)"
            )
        if not self.retention.archive and self.archived_search is not None:
            raise ValidationError(
                "archived_search", "only with retention.archive = true; nothing is archived"
            )


class ProfileError(ValidationError):
    """A profile file is not TOML or breaks a rule; names the file as well as the key.

    Attributes:
        source: Where the profile came from (its path).
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        """Name the source, the key (empty for the whole document) and the problem."""
        super().__init__(field, problem)
        self.source = source

    def __str__(self) -> str:
        """``source: field: problem``."""
        return f"{self.source}: {self.field + ': ' if self.field else ''}{self.problem}"


# table -> key -> whether the key is required.
_SCHEMA: dict[str, dict[str, bool]] = {
    "profile": {"name": True, "agency": True, "ori": False, "policy": True},
    "retention": {"read_period": True, "archive": True, "hard_limit": False},
    "access": {"purposes": True},
    "archived_search": {"offences": True, "court_order": True, "approver_roles": True},
    "audit": {"retention": True},
    "sharing": {"approver_roles": True, "approve_each_request": True},
}
_OPTIONAL_TABLES = frozenset({"archived_search"})
_TOML_TYPES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _toml_type(value: object) -> str:
    return _TOML_TYPES.get(type(value), "a date or time")


def _tables(document: Mapping[str, object]) -> dict[str, Mapping[str, object]]:
    tables: dict[str, Mapping[str, object]] = {}
    for name, table in document.items():
        if name not in _SCHEMA:
            raise ValidationError(name, f"unknown table; a profile has {', '.join(_SCHEMA)}")
        if not isinstance(table, dict):
            raise ValidationError(name, f"expected a table, got {_toml_type(table)}")
        if unknown := sorted(set(table) - set(_SCHEMA[name])):
            raise ValidationError(
                f"{name}.{unknown[0]}", f"unknown key; [{name}] has {', '.join(_SCHEMA[name])}"
            )
        for key, required in _SCHEMA[name].items():
            if required and key not in table:
                raise ValidationError(f"{name}.{key}", "missing")
        tables[name] = table
    if missing := sorted(_SCHEMA.keys() - _OPTIONAL_TABLES - tables.keys()):
        raise ValidationError(missing[0], "missing table")
    return tables


def _typed(table: Mapping[str, object], field: str, kind: type[_T]) -> _T:
    value = table[field.rpartition(".")[2]]
    if type(value) is not kind:
        raise ValidationError(field, f"expected {_TOML_TYPES[kind]}, got {_toml_type(value)}")
    return value


def _texts(table: Mapping[str, object], field: str) -> tuple[str, ...]:
    values = _typed(table, field, list)
    for value in values:
        if type(value) is not str:
            raise ValidationError(field, f"expected strings, got {_toml_type(value)}")
    return tuple(values)


def _members(table: Mapping[str, object], field: str, kind: type[_E]) -> tuple[_E, ...]:
    names = _texts(table, field)
    allowed = {member.value: member for member in kind}
    if unknown := [name for name in names if name not in allowed]:
        raise ValidationError(
            field, f"{unknown[0]!r} is not one of {', '.join(repr(name) for name in allowed)}"
        )
    return tuple(allowed[name] for name in names)


def _period(table: Mapping[str, object], field: str) -> Period:
    return Period.parse(_typed(table, field, str), field)


def _profile(document: Mapping[str, object]) -> PolicyProfile:
    tables = _tables(document)
    profile, retention = tables["profile"], tables["retention"]
    archived = tables.get("archived_search")
    return PolicyProfile(
        name=_typed(profile, "profile.name", str),
        agency=_typed(profile, "profile.agency", str),
        ori=_typed(profile, "profile.ori", str) if "ori" in profile else "",
        policy=_typed(profile, "profile.policy", str),
        retention=Retention(
            read_period=_period(retention, "retention.read_period"),
            archive=_typed(retention, "retention.archive", bool),
            hard_limit=(
                _period(retention, "retention.hard_limit") if "hard_limit" in retention else None
            ),
        ),
        access=Access(purposes=_texts(tables["access"], "access.purposes")),
        archived_search=None
        if archived is None
        else ArchivedSearch(
            offences=_members(archived, "archived_search.offences", Offence),
            court_order=_typed(archived, "archived_search.court_order", bool),
            approver_roles=_members(archived, "archived_search.approver_roles", Role),
        ),
        audit=Audit(retention=_period(tables["audit"], "audit.retention")),
        sharing=Sharing(
            approver_roles=_members(tables["sharing"], "sharing.approver_roles", Role),
            approve_each_request=_typed(tables["sharing"], "sharing.approve_each_request", bool),
        ),
    )


def profile_from_text(text: str, source: str) -> PolicyProfile:
    """Read and validate a profile from the text of its TOML file.

    Args:
        text: The TOML text.
        source: Where it came from, for messages (a path, ``<stdin>``).

    Raises:
        ProfileError: The text is not TOML, has an unknown table or key, lacks one, has a value
            of the wrong type, or breaks a rule; `ProfileError.field` names the key, e.g.
            ``retention.read_period``.
    """
    try:
        return _profile(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(source, "", f"not TOML ({error})") from error
    except ValidationError as error:
        raise ProfileError(source, error.field, error.problem) from error


def load_profile(path: Path) -> PolicyProfile:
    """Read and validate the profile in `path`.

    Raises:
        ProfileError: The file cannot be read as UTF-8 text, or `profile_from_text` refuses it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(str(path), "", f"cannot read it ({error})") from error
    return profile_from_text(text, str(path))


def builtin_profiles() -> dict[str, Path]:
    """The profiles shipped with the project: name (``lapd``) to file, sorted by name.

    Raises:
        NodeError: The package is installed in a form that is not plain files (a zip).
    """
    root = resources.files("node.profiles")
    if not isinstance(root, Path):
        raise NodeError(f"node.profiles is not installed as plain files ({root})")
    return {path.stem: path for path in sorted(root.glob("*.toml"))}
