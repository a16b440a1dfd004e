"""Hotlist entries: a plate (whole, or partial with wildcards), its category, and why.

Everything here holds canonical text. `normalize_plate` and `PlatePattern.parse` turn what a
person or a file wrote into that form; the constructors refuse anything else, so an entry that
exists is well formed. A category the agency's policy forbids (civil immigration, ACC-7) can be
named so that it is recognised, but no entry can carry it.
"""

from __future__ import annotations

import enum
import re
import types
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from node.errors import ValidationError
from node.identity import STATE_CODES

MAX_PLATE = 8
MAX_PATTERN = 16
MIN_PARTIAL_LITERALS = 2
MAX_REASON = 500
MAX_CASE_NUMBER = 64
MAX_CONTACT = 200
FORBIDDEN_REASON = "category forbidden by policy (ACC-7)"
# An NCIC record number (NIC): the letter of its file, then nine digits.
NCIC_NUMBER = re.compile(r"[A-Z][0-9]{9}")

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WILDCARDS = frozenset("?*")
# Dropped from plates besides whitespace: hyphens and dashes, dots, slash, underscore, bullets.
_SEPARATORS = frozenset("-\u2010\u2011\u2012\u2013\u2014._/\u00b7\u2022")


class ListType(enum.Enum):
    """Why a plate is on a hotlist: the NCIC categories read by plate readers, and local BOLOs."""

    STOLEN_VEHICLE = "stolen_vehicle"
    STOLEN_PLATE = "stolen_plate"
    WANTED_PERSON = "wanted_person"
    MISSING_PERSON = "missing_person"
    AMBER_ALERT = "amber_alert"
    FELONY_VEHICLE = "felony_vehicle"
    PROTECTION_ORDER = "protection_order"
    GANG_TERRORIST = "gang_terrorist"
    SEX_OFFENDER = "sex_offender"
    BOLO = "bolo"
    # Exists only so that it is recognised and refused (ACC-7).
    CIVIL_IMMIGRATION = "civil_immigration"

    @classmethod
    def from_text(cls, text: str) -> ListType:
        """Read a list type as people write it.

        Accepts the value or the name in any case, with spaces or dashes for underscores
        (``Stolen Vehicle``, ``STOLEN_VEHICLE``), or a synonym from `LIST_TYPE_SYNONYMS`.

        Raises:
            ValidationError: ``list_type``: the text names no list type.
        """
        key = "_".join(text.replace("-", " ").split()).casefold()
        found = _BY_NAME.get(key) or LIST_TYPE_SYNONYMS.get(key)
        if found is None:
            raise ValidationError(
                "list_type",
                f"{text!r} is not a list type: expected one of "
                f"{', '.join(t.value for t in cls)} or a synonym such as 'stolen' or 'SV'",
            )
        return found


LIST_TYPE_SYNONYMS = types.MappingProxyType(
    {
        "stolen": ListType.STOLEN_VEHICLE,
        "sv": ListType.STOLEN_VEHICLE,
        "sp": ListType.STOLEN_PLATE,
        "wanted": ListType.WANTED_PERSON,
        "warrant": ListType.WANTED_PERSON,
        "missing": ListType.MISSING_PERSON,
        "amber": ListType.AMBER_ALERT,
        "felony": ListType.FELONY_VEHICLE,
        "gang": ListType.GANG_TERRORIST,
        "terrorist": ListType.GANG_TERRORIST,
        "be_on_the_lookout": ListType.BOLO,
        "immigration": ListType.CIVIL_IMMIGRATION,
        "immigration_violator": ListType.CIVIL_IMMIGRATION,
        "ice": ListType.CIVIL_IMMIGRATION,
    }
)
_BY_NAME = {t.value: t for t in ListType}
FORBIDDEN_LIST_TYPES = frozenset({ListType.CIVIL_IMMIGRATION})


def ensure_allowed(list_type: ListType) -> ListType:
    """Return `list_type` unless the agency's policy forbids it.

    Raises:
        ValidationError: ``list_type`` with `FORBIDDEN_REASON`: it is in `FORBIDDEN_LIST_TYPES`.
    """
    if list_type in FORBIDDEN_LIST_TYPES:
        raise ValidationError("list_type", FORBIDDEN_REASON)
    return list_type


def _strip_separators(text: str, field: str, keep: frozenset[str]) -> str:
    """Uppercase ASCII letters, drop separators, keep `keep`; refuse any other character."""
    kept = []
    for char in text:
        upper = char.upper() if char.isascii() else char
        if upper in _ALNUM or upper in keep:
            kept.append(upper)
        elif char in _WILDCARDS:
            raise ValidationError(
                field, f"{text!r} has {char!r}: a partial plate is a pattern (PlatePattern)"
            )
        elif not (char.isspace() or char in _SEPARATORS):
            raise ValidationError(
                field,
                f"{text!r} has {char!r}: a plate holds letters A-Z and digits 0-9 "
                "(spaces, dashes and dots are dropped)",
            )
    return "".join(kept)


def normalize_plate(text: str, field: str = "plate") -> str:
    """Return the canonical form of a whole plate: 1 to 8 characters, A-Z and 0-9.

    Letters are uppercased; whitespace, dashes, dots, slashes, underscores and bullets are
    dropped (``7abc-123`` gives ``7ABC123``).

    Args:
        text: The plate as written.
        field: The field name to report on failure.

    Raises:
        ValidationError: Another character appears (wildcards included), or fewer than 1 or
            more than 8 letters and digits remain.
    """
    plate = _strip_separators(text, field, frozenset())
    if not 1 <= len(plate) <= MAX_PLATE:
        raise ValidationError(
            field, f"{text!r} has {len(plate)} letters or digits; a plate has 1 to {MAX_PLATE}"
        )
    return plate


def _canonical_pattern(text: str) -> str:
    """Normalize a pattern like a plate, keep ``?`` and ``*``, merge runs of ``*``; check it."""
    body = re.sub(r"\*+", "*", _strip_separators(text, "plate", _WILDCARDS))
    literals = sum(char in _ALNUM for char in body)
    shortest = sum(char != "*" for char in body)
    partial = len(body) != literals
    if literals > MAX_PLATE:
        problem = f"has {literals} letters or digits; a plate has at most {MAX_PLATE}"
    elif len(body) > MAX_PATTERN:
        problem = f"is {len(body)} characters long; a pattern has at most {MAX_PATTERN}"
    elif partial and literals < MIN_PARTIAL_LITERALS:
        problem = (
            f"is partial, so needs {MIN_PARTIAL_LITERALS} letters or digits or more, lest it "
            f"match nearly every plate; it has {literals}"
        )
    elif not body:
        problem = "has no letters or digits"
    elif shortest > MAX_PLATE:
        problem = f"matches no plate: it needs {shortest} characters, a plate has {MAX_PLATE}"
    else:
        return body
    raise ValidationError("plate", f"{text!r} {problem}")


@dataclass(frozen=True)
class PlatePattern:
    """A whole plate, or a partial one (CAP-5): ``?`` is one character, ``*`` any run.

    A witness who saw "7AB?12*" gives the pattern ``7AB?12*``.

    Attributes:
        text: The canonical pattern, as `parse` returns it.
    """

    text: str

    def __post_init__(self) -> None:
        """Check that `text` is canonical.

        Raises:
            ValidationError: ``plate``: `text` is not a pattern, or not in its canonical form.
        """
        canonical = _canonical_pattern(self.text)
        if canonical != self.text:
            raise ValidationError("plate", f"{self.text!r} is not canonical: write {canonical!r}")

    @classmethod
    def parse(cls, text: str) -> PlatePattern:
        """Read a plate or partial plate as written.

        Normalizes like `normalize_plate` but keeps ``?`` and ``*`` and merges runs of ``*``.
        A pattern has at most 8 letters and digits and 16 characters; a partial one has at
        least 2 letters or digits; every pattern must fit some plate of at most 8 characters.

        Raises:
            ValidationError: ``plate``: any of those rules is broken.
        """
        return cls(_canonical_pattern(text))

    @property
    def is_partial(self) -> bool:
        """Whether the pattern has a wildcard, so that it may match more than one plate."""
        return not _WILDCARDS.isdisjoint(self.text)

    def matches(self, plate: str) -> bool:
        """Whether `plate`, a normalized plate, is one this pattern describes.

        Args:
            plate: A plate as `normalize_plate` returns it; any other text matches nothing.
        """
        return len(plate) <= MAX_PLATE and self._regex.fullmatch(plate) is not None

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        """The pattern as a regular expression over plate characters.

        A search checks thousands of candidates against one pattern; the regex engine does
        it in C. A plate has at most 8 characters, so even a pattern of several ``*`` has
        little to backtrack over.
        """
        one = "[0-9A-Z]"
        return re.compile("".join({"?": one, "*": f"{one}*"}.get(char, char) for char in self.text))


def _check_text(field: str, value: str, limit: int) -> None:
    """Refuse text that is too long, spans lines or has surrounding whitespace."""
    if len(value) > limit:
        raise ValidationError(field, f"is {len(value)} characters; at most {limit}")
    if not value.isprintable():
        raise ValidationError(field, f"{value!r} holds a control or other non-printable character")
    if value != value.strip():
        raise ValidationError(field, f"{value!r} has leading or trailing whitespace")


@dataclass(frozen=True, kw_only=True)
class HotlistEntry:
    """One plate on a hotlist, with what an officer needs to act on a hit.

    Attributes:
        plate: The canonical plate, or partial pattern (CAP-5), as `PlatePattern.parse` gives.
        state: The USPS code of the plate's state, or empty when unknown.
        list_type: Its category; never one in `FORBIDDEN_LIST_TYPES` (ACC-7).
        reason: Why it is listed, at most 500 printable characters.
        case_number: The agency's case or incident number, at most 64 characters.
        ncic_number: The NCIC record number (e.g. ``V123456789``), or empty.
        expires_at: When the entry stops being in force (aware, UTC), or None.
        contact: Whom to call to confirm a hit, at most 200 characters.
    """

    plate: str
    state: str = ""
    list_type: ListType
    reason: str = ""
    case_number: str = ""
    ncic_number: str = ""
    expires_at: datetime | None = None
    contact: str = ""

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            ValidationError: A field, named, is not acceptable; ``list_type`` first, with
                `FORBIDDEN_REASON`, when the category is forbidden.
        """
        ensure_allowed(self.list_type)
        PlatePattern(self.plate)
        if self.state and self.state not in STATE_CODES:
            raise ValidationError(
                "state", f"{self.state!r} is not a USPS state code (e.g. CA), nor empty"
            )
        _check_text("reason", self.reason, MAX_REASON)
        _check_text("case_number", self.case_number, MAX_CASE_NUMBER)
        _check_text("contact", self.contact, MAX_CONTACT)
        if self.ncic_number and not NCIC_NUMBER.fullmatch(self.ncic_number):
            raise ValidationError(
                "ncic_number",
                f"{self.ncic_number!r} is not an NCIC number: a letter then 9 digits "
                "(e.g. V123456789)",
            )
        if self.expires_at is not None and self.expires_at.utcoffset() != timedelta(0):
            raise ValidationError(
                "expires_at", f"{self.expires_at.isoformat()} is not an aware UTC time"
            )

    @property
    def pattern(self) -> PlatePattern:
        """The plate as a pattern; for a whole plate, one that matches that plate only."""
        return PlatePattern(self.plate)

    @property
    def is_partial(self) -> bool:
        """Whether the entry lists a partial plate (CAP-5) rather than a whole one."""
        return self.pattern.is_partial


def ensure_unexpired(entry: HotlistEntry, reference_time: datetime) -> HotlistEntry:
    """Return `entry` unless it expires at or before `reference_time`.

    An entry put on a list already expired matches no read, yet is listed and counted as
    in force: a typo in its expiry would hide that the plate is not being watched.

    Raises:
        ValidationError: ``expires_at``: it is at or before `reference_time`.
    """
    if entry.expires_at is not None and entry.expires_at <= reference_time:
        raise ValidationError(
            "expires_at",
            f"{entry.expires_at.isoformat()} has passed: an entry must expire after now "
            f"({reference_time.isoformat(timespec='seconds')})",
        )
    return entry
