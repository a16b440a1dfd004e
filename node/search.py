"""Searching the agency's own reads: by need to know and right to know, every query audited.

A query states an authorized purpose from the agency's policy profile and a case or
incident number (ACC-6). A purpose of commerce is refused always; one of civil
immigration enforcement is refused unless a judicial warrant is recorded with the
query (ACC-7). A plate may be whole or partial (``7AB?12*``, CAP-5). Every query, and
every refusal, is an audit event naming the user, agency, time, address, the plate
asked about, the purpose and the case (AUD-1, ACC-3).

Archived reads (past the profile's read period, RET-2) are not searched here.

A whole plate is looked up by the plate index; a partial one by the index on the
literal characters before its first wildcard when it has some, else over the time
window, the pattern checked by the database (`_plate_terms`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from node.audit import AuditLog
from node.errors import PermissionDeniedError, ValidationError
from node.hotlists.entry import PlatePattern
from node.profile import FORBIDDEN_PURPOSE_WORDS, PolicyProfile, Role
from node.store.capture_models import ReadRecord
from node.store.models import utc

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CASE_NUMBER = 64
MAX_WARRANT = 100
IMMIGRATION = "immigration"


@dataclass(frozen=True, kw_only=True)
class ArchivedBasis:
    """Why a query may reach archived reads (RET-5), and who approved it.

    Attributes:
        offence: One of the profile's listed offences (e.g. ``PC 187``'s category
            ``PC 667.5(c)``), or empty.
        court_order: The court order's reference, where the profile admits one, or empty.
        approved_by: Who approved the search, in one of the profile's approving roles.
    """

    offence: str = ""
    court_order: str = ""
    approved_by: str = ""


@dataclass(frozen=True, kw_only=True)
class ReadQuery:
    """Where was a plate seen between two times, and why it is asked.

    Attributes:
        plate: A whole plate or a partial pattern (CAP-5).
        since: The start of the window (aware).
        until: The end of the window (aware, exclusive).
        purpose: One of the profile's authorized purposes (ACC-6).
        case_number: The case or incident number (ACC-6).
        judicial_warrant: The warrant a civil immigration query is made under (ACC-7).
        page_size: How many reads to return; 0 for the default.
        page_token: Where the previous page ended, or empty.
        archived: To search archived reads as well, the basis for it (RET-5).
    """

    plate: str
    since: datetime
    until: datetime
    purpose: str
    case_number: str
    judicial_warrant: str = ""
    page_size: int = 0
    page_token: str = ""
    archived: ArchivedBasis | None = None


@dataclass(frozen=True)
class ReadPage:
    """One page of reads, newest first, and the token of the next (empty at the end)."""

    reads: list[ReadRecord]
    next_page_token: str


class ReadSearch:
    """Searches the agency's own reads under its policy profile."""

    def __init__(
        self, engine: Engine, *, profile: PolicyProfile, audit: AuditLog, ori: str
    ) -> None:
        """Search `engine`'s reads for agency `ori`, under `profile`, auditing into `audit`."""
        self._engine = engine
        self._archived_search = profile.archived_search
        self._purposes = {p.casefold(): p for p in profile.access.purposes}
        self._audit = audit
        self._ori = ori

    def search(
        self,
        query: ReadQuery,
        *,
        user: str,
        peer_ip: str,
        roles: frozenset[Role] = frozenset(),
    ) -> ReadPage:
        """The reads of `query`'s plate in its window, once the query is allowed.

        Args:
            query: What is asked, and why.
            user: Who asks.
            peer_ip: From where.
            roles: The roles of the logged-in user asking; only a system administrator
                may reach archived reads (RET-2).

        Raises:
            ValidationError: A field is missing or malformed (named).
            PermissionDeniedError: The purpose is not one the agency authorizes, or is
                forbidden (ACC-7), or archived reads are asked for without a system
                administrator's session, a listed offence or court order, or an approval
                (RET-2, RET-5); the refusal is audited.
        """
        pattern, size, offset = _checked(query)
        purpose = self.authorize(query, user=user, peer_ip=peer_ip)
        if query.archived is not None:
            self._authorize_archived(query, query.archived, roles, user, peer_ip)
        reads, more = self._find(pattern, query, size, offset)
        self._audit.append(
            "search.plate",
            actor=user,
            agency=self._ori,
            peer_ip=peer_ip,
            purpose=purpose,
            case_number=query.case_number,
            details={
                "plate": pattern.text,
                "since": query.since.isoformat(),
                "until": query.until.isoformat(),
                "results": len(reads),
                **({"judicial_warrant": query.judicial_warrant} if query.judicial_warrant else {}),
                **(_basis(query.archived) if query.archived else {}),
            },
        )
        token = _token(offset + len(reads)) if more else ""
        return ReadPage(reads, token)

    def _authorize_archived(
        self,
        query: ReadQuery,
        basis: ArchivedBasis,
        roles: frozenset[Role],
        user: str,
        peer_ip: str,
    ) -> None:
        """Allow a search of archived reads only on the profile's terms (RET-2, RET-5)."""
        rules = self._archived_search
        offences = {offence.value.casefold() for offence in rules.offences} if rules else set()
        if rules is None:
            reason = "this agency keeps no archive"
        elif Role.SYSTEM_ADMINISTRATOR not in roles:
            reason = "only a logged-in system administrator searches archived reads (RET-2)"
        elif basis.offence.strip().casefold() not in offences and not (
            rules.court_order and basis.court_order.strip()
        ):
            reason = "archived reads need a listed offence or a court order (RET-5)"
        elif not basis.approved_by.strip():
            reason = "a search of archived reads needs its approval recorded (RET-5)"
        else:
            return
        self._refuse(
            reason,
            purpose=query.purpose,
            case_number=query.case_number,
            asked={"plate": query.plate[:16]},
            user=user,
            peer_ip=peer_ip,
        )

    def authorize(self, query: ReadQuery, *, user: str, peer_ip: str) -> str:
        """The purpose as the profile spells it, once allowed; refusals audited.

        Raises:
            ValidationError: A field of the query is missing or malformed (named).
            PermissionDeniedError: The purpose is not authorized or is forbidden (ACC-7).
        """
        _checked(query)
        return self.authorize_purpose(
            query.purpose,
            query.case_number,
            query.judicial_warrant,
            user=user,
            peer_ip=peer_ip,
            asked={"plate": query.plate[:16]},
        )

    def authorize_purpose(
        self,
        purpose: str,
        case_number: str,
        judicial_warrant: str = "",
        *,
        user: str,
        peer_ip: str,
        asked: Mapping[str, object],
    ) -> str:
        """The purpose as the profile spells it, once allowed for a case; refusals audited.

        Args:
            purpose: The purpose stated (ACC-6).
            case_number: The case or incident number stated (ACC-6).
            judicial_warrant: The warrant a civil immigration request is made under (ACC-7).
            user: Who asks.
            peer_ip: From where.
            asked: What is asked, as a refusal's audit event records it.

        Raises:
            ValidationError: The purpose or case number is missing, or a field too long.
            PermissionDeniedError: The purpose is not authorized or is forbidden (ACC-7).
        """
        _check_basis(purpose, case_number, judicial_warrant)
        folded = purpose.strip().casefold()
        reason = forbidden_reason(purpose, judicial_warrant)
        if reason is None and IMMIGRATION in folded:
            return purpose.strip()  # under the warrant recorded with it
        if reason is None and folded in self._purposes:
            return self._purposes[folded]
        return self._refuse(
            reason or "not one of the agency's authorized purposes (ACC-6)",
            purpose=purpose,
            case_number=case_number,
            asked=asked,
            user=user,
            peer_ip=peer_ip,
        )

    def _refuse(
        self,
        reason: str,
        *,
        purpose: str,
        case_number: str,
        asked: Mapping[str, object],
        user: str,
        peer_ip: str,
    ) -> NoReturn:
        """Audit a refused request, then refuse it."""
        self._audit.append(
            "search.refused",
            actor=user,
            agency=self._ori,
            peer_ip=peer_ip,
            purpose=purpose[:64],
            case_number=case_number,
            details={**asked, "reason": reason},
        )
        raise PermissionDeniedError(f"the query is refused: {reason}")

    def find(
        self, plate: str, since: datetime, until: datetime, limit: int
    ) -> tuple[list[ReadRecord], bool]:
        """Up to `limit` reads of `plate` in the window, newest first, and whether more exist.

        No purpose is checked here: callers check theirs (a partner's query is checked
        against its agreement).

        Raises:
            ValidationError: The plate is malformed or the window empty or naive.
        """
        query = ReadQuery(plate=plate, since=since, until=until, purpose="-", case_number="-")
        pattern, _, _ = _checked(query)
        return self._find(pattern, query, limit, 0)

    def _find(
        self, pattern: PlatePattern, query: ReadQuery, size: int, offset: int
    ) -> tuple[list[ReadRecord], bool]:
        window: tuple[ColumnElement[bool], ...] = (
            col(ReadRecord.captured_at) >= query.since,
            col(ReadRecord.captured_at) < query.until,
        )
        if query.archived is None:
            window += (col(ReadRecord.archived_at).is_(None),)  # hidden from data users (RET-2)
        newest_first = (col(ReadRecord.captured_at).desc(), col(ReadRecord.id))
        with Session(self._engine) as session:
            dialect = session.get_bind().dialect.name
            found = list(
                session.exec(
                    select(ReadRecord)
                    .where(*_plate_terms(pattern, dialect, window))
                    .order_by(*newest_first)
                    .offset(offset)
                    .limit(size + 1)
                ).all()
            )
        for read in found:
            read.captured_at = utc(read.captured_at)
            read.committed_at = utc(read.committed_at)
        return found[:size], len(found) > size


def _plate_terms(
    pattern: PlatePattern, dialect: str, window: tuple[ColumnElement[bool], ...]
) -> tuple[ColumnElement[bool], ...]:
    """What a read's plate and time must be for `pattern`, as the database best answers it.

    A whole plate is an equality on the plate index. A partial one is a range on that index
    over its literal prefix (when it has one) and the pattern itself in SQL: SQLite's GLOB
    reads ``?`` and ``*`` as the pattern does, PostgreSQL's LIKE the same as ``_`` and
    ``%`` (plates and patterns hold only A-Z and 0-9, so nothing needs escaping). The
    database filters, orders and limits; no candidate crosses into Python.
    """
    plate = col(ReadRecord.plate)
    if not pattern.is_partial:
        return (plate == pattern.text, *window)
    prefix = pattern.text.split("?")[0].split("*")[0]
    terms: tuple[ColumnElement[bool], ...] = ()
    if prefix:
        low, high = prefix_range(prefix)
        terms += (plate >= low,) if high is None else (plate >= low, plate < high)
        if dialect == "sqlite":
            # SQLite weighs a range on the time index like the plate range and would walk
            # the whole window: mark the window's terms as unselective (likelihood).
            window = tuple(func.likelihood(term, literal_column("0.99")) for term in window)
    if dialect == "sqlite":
        terms += (plate.op("GLOB")(pattern.text),)
    else:
        terms += (plate.like(pattern.text.replace("?", "_").replace("*", "%")),)
    return (*terms, *window)


def forbidden_reason(purpose: str, judicial_warrant: str) -> str | None:
    """Why a purpose is never allowed (ACC-7), or None.

    Commerce never is; civil immigration enforcement is not unless a judicial warrant is
    recorded with the query.
    """
    folded = purpose.casefold()
    for word, reason in FORBIDDEN_PURPOSE_WORDS.items():
        if word in folded and not (word == IMMIGRATION and judicial_warrant):
            return reason
    return None


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The plates starting with `prefix` as a range ``[low, high)`` (high None: no bound).

    A range, not ``LIKE 'prefix%'``, so both databases answer it from the plate index
    (SQLite never uses an index for LIKE with an escape; PostgreSQL only under the C
    collation). Plates are A-Z and 0-9, which every collation orders alike.
    """
    head = prefix.rstrip(_ALPHABET[-1])
    if not head:
        return prefix, None
    successor = _ALPHABET[_ALPHABET.index(head[-1]) + 1]
    return prefix, head[:-1] + successor


def _basis(basis: ArchivedBasis) -> dict[str, object]:
    """The archived-search basis as its audit event records it (RET-5)."""
    return {
        "archived": {
            "offence": basis.offence,
            "court_order": basis.court_order,
            "approved_by": basis.approved_by,
        }
    }


def check_query(query: ReadQuery) -> PlatePattern:
    """The pattern of a well-formed query, checked as `ReadSearch.search` checks it first.

    Raises:
        ValidationError: The plate is malformed, the window empty or naive, or the purpose,
            case number or warrant missing or too long.
    """
    return _checked(query)[0]


def _checked(query: ReadQuery) -> tuple[PlatePattern, int, int]:
    """The pattern, page size and offset of a well-formed query."""
    pattern = PlatePattern.parse(query.plate)
    for name, moment in (("since", query.since), ("until", query.until)):
        if moment.tzinfo is None:
            raise ValidationError(name, "must have a time zone")
    if query.since >= query.until:
        raise ValidationError("until", "must be after since")
    _check_basis(query.purpose, query.case_number, query.judicial_warrant)
    if query.page_size < 0:
        raise ValidationError("page_size", "must not be negative")
    return pattern, min(query.page_size or DEFAULT_PAGE, MAX_PAGE), _offset(query.page_token)


def _check_basis(purpose: str, case_number: str, judicial_warrant: str) -> None:
    """Check the purpose, case number and warrant a request states."""
    if not purpose.strip():
        raise ValidationError("purpose", "is required: one of the agency's purposes (ACC-6)")
    if not case_number.strip() or len(case_number) > MAX_CASE_NUMBER:
        raise ValidationError(
            "case_number", f"is required (ACC-6), at most {MAX_CASE_NUMBER} characters"
        )
    if len(judicial_warrant) > MAX_WARRANT:
        raise ValidationError("judicial_warrant", f"at most {MAX_WARRANT} characters")


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"reads:{offset}".encode()).decode("ascii")


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode("ascii")).decode().partition(":")
        if kind == "reads" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ValidationError("page_token", "is not a token this node issued")
