"""Agreement terms: the signed payload two agencies agree on (SHR-2, SHR-3)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError

from alpr.federation.v1 import agreement_pb2
from federation.errors import InvalidEnvelopeError
from node.errors import ValidationError
from node.identity import validate_federation, validate_ori

TERMS_TYPE = "application/vnd.alpr.agreement-terms.v1+protobuf"
MAX_PURPOSES = 50
MAX_CLAUSES = 50
MAX_TEXT = 500

# What SHR-2 binds every partner to; an operator may add clauses, never remove these.
REQUIRED_CLAUSES = (
    "Data is used only by the partner's authorized users, for law enforcement purposes, "
    "and is never sold or shared for commerce (SHR-1).",
    "A hit is a lead, not a fact: it is verified before any action, and errors are "
    "reported to the issuing agency at once (accuracy).",
    "Hotlist data received is refreshed at least every 24 hours or no longer used, and "
    "deleted when no longer refreshed (24-hour refresh).",
)


class Grant(enum.Enum):
    """What one party of an agreement lets the other do."""

    RECEIVE_HOTLISTS = agreement_pb2.GRANT_RECEIVE_HOTLISTS
    ASK_PLATE_QUERIES = agreement_pb2.GRANT_ASK_PLATE_QUERIES


def one_year_after(moment: datetime) -> datetime:
    """The same instant a calendar year later (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


@dataclass(frozen=True, kw_only=True)
class Terms:
    """The terms of one agreement, validated by the constructor."""

    agreement_id: str
    federation: str
    proposer_ori: str
    accepter_ori: str
    term: int
    renews_agreement_id: str
    starts_at: datetime
    sunsets_at: datetime
    proposer_grants: frozenset[Grant]
    accepter_grants: frozenset[Grant]
    purposes: tuple[str, ...]
    clauses: tuple[str, ...]

    def __post_init__(self) -> None:
        """Validate the terms.

        Raises:
            ValidationError: A field is malformed, the parties are the same, nothing is
                granted, or the sunset is not after the start and within a year of it (SHR-3).
        """
        if not self.agreement_id or len(self.agreement_id) > 36:
            raise ValidationError("agreement_id", "must be 1 to 36 characters")
        validate_federation(self.federation)
        validate_ori(self.proposer_ori, "proposer_ori")
        validate_ori(self.accepter_ori, "accepter_ori")
        if self.proposer_ori == self.accepter_ori:
            raise ValidationError("partner_ori", "an agency cannot agree with itself")
        if self.term < 1:
            raise ValidationError("term", "must be at least 1")
        for name in ("starts_at", "sunsets_at"):
            if getattr(self, name).tzinfo is None:
                raise ValidationError(name, "must carry a time zone")
        if self.sunsets_at <= self.starts_at:
            raise ValidationError("sunsets_at", "must be after starts_at")
        if self.sunsets_at > one_year_after(self.starts_at):
            raise ValidationError(
                "sunsets_at",
                f"must be at most one year after starts_at (SHR-3): no later than "
                f"{one_year_after(self.starts_at):%Y-%m-%d %H:%M:%S} UTC",
            )
        if not self.proposer_grants and not self.accepter_grants:
            raise ValidationError("grants", "an agreement must let at least one party do something")
        for field, texts, most in (
            ("purposes", self.purposes, MAX_PURPOSES),
            ("clauses", self.clauses, MAX_CLAUSES),  # the SHR-2 clauses included
        ):
            if not texts or len(texts) > most:
                raise ValidationError(field, f"name 1 to {most}")
            # One printable line each: shown to the operator who countersigns, a partner's
            # newline or control character could forge lines of the terms on the screen.
            if any(
                not text.strip() or len(text) > MAX_TEXT or not text.isprintable() for text in texts
            ):
                raise ValidationError(
                    field, f"each must be 1 to {MAX_TEXT} printable characters, on one line"
                )
        missing = [clause for clause in REQUIRED_CLAUSES if clause not in self.clauses]
        if missing:
            raise ValidationError("clauses", f"must include the SHR-2 clause {missing[0]!r}")

    def partner_of(self, ori: str) -> str:
        """The other party."""
        return self.accepter_ori if ori == self.proposer_ori else self.proposer_ori

    def grants_by(self, ori: str) -> frozenset[Grant]:
        """What the party `ori` lets the other do."""
        return self.proposer_grants if ori == self.proposer_ori else self.accepter_grants

    def to_bytes(self) -> bytes:
        """The serialized terms: the bytes both parties sign, made once by the proposer."""
        message = agreement_pb2.AgreementTerms(
            agreement_id=self.agreement_id,
            federation=self.federation,
            proposer_ori=self.proposer_ori,
            accepter_ori=self.accepter_ori,
            term=self.term,
            renews_agreement_id=self.renews_agreement_id,
            proposer_grants=_sorted_values(self.proposer_grants),
            accepter_grants=_sorted_values(self.accepter_grants),
            purposes=self.purposes,
            clauses=self.clauses,
        )
        message.starts_at.FromDatetime(self.starts_at)
        message.sunsets_at.FromDatetime(self.sunsets_at)
        return message.SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Terms:
        """Parse terms whose signature was already verified.

        Raises:
            InvalidEnvelopeError: The bytes are not valid terms.
        """
        message = agreement_pb2.AgreementTerms()
        try:
            message.ParseFromString(data)
            return cls(
                agreement_id=message.agreement_id,
                federation=message.federation,
                proposer_ori=message.proposer_ori,
                accepter_ori=message.accepter_ori,
                term=message.term,
                renews_agreement_id=message.renews_agreement_id,
                starts_at=message.starts_at.ToDatetime(UTC),
                sunsets_at=message.sunsets_at.ToDatetime(UTC),
                proposer_grants=_grants(message.proposer_grants),
                accepter_grants=_grants(message.accepter_grants),
                purposes=tuple(message.purposes),
                clauses=tuple(message.clauses),
            )
        except (DecodeError, ValueError, ValidationError) as error:
            raise InvalidEnvelopeError(f"not valid agreement terms ({error})") from error


def _sorted_values(grants: Iterable[Grant]) -> list[agreement_pb2.Grant.ValueType]:
    return sorted(grant.value for grant in grants)


def _grants(values: Iterable[int]) -> frozenset[Grant]:
    return frozenset(Grant(value) for value in values)
