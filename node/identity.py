"""Agency identifiers (ORIs) and the SPIFFE IDs that name principals in certificates.

A node's certificate names its agency as ``spiffe://<federation>/agency/<ORI>``;
a user's as ``.../agency/<ORI>/user/<name>``; a patrol device's or camera's as
``.../agency/<ORI>/device/<id>``. The caller of an RPC is whatever its verified
certificate names (SEC-1); nothing here trusts a request field.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from node.errors import ValidationError

# USPS codes of the states, DC and the territories: the first two characters of an NCIC ORI.
STATE_CODES = frozenset(
    (  # noqa: SIM905 (a table is easier to check as one string)
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
        "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI"
    ).split()
)
_ORI_TAIL = re.compile(r"[A-Z0-9]{7}")
_TRUST_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SPIFFE_SCHEME = "spiffe://"


def validate_ori(value: str, field: str = "ori") -> str:
    """Return `value` if it is a well-formed NCIC ORI.

    Args:
        value: The candidate, e.g. ``CA0194200``.
        field: The field name to report on failure.

    Raises:
        ValidationError: It is not 9 characters, a state code then 7 uppercase letters or digits.
    """
    if len(value) != 9 or value[:2] not in STATE_CODES or not _ORI_TAIL.fullmatch(value[2:]):
        raise ValidationError(
            field,
            f"{value!r} is not an ORI: 9 characters, a 2-letter state code then 7 uppercase "
            "letters or digits (e.g. CA0194200)",
        )
    return value


def validate_name(value: str, field: str = "name") -> str:
    """Return `value` if it can name a user or device in a certificate's SPIFFE ID.

    Raises:
        ValidationError: It is not 1-64 letters, digits, '.', '-', '_', starting with a letter
            or digit.
    """
    if not _NAME.fullmatch(value):
        raise ValidationError(
            field, f"{value!r} is not a name: 1-64 letters, digits, '.', '-', '_'"
        )
    return value


def validate_federation(value: str, field: str = "federation") -> str:
    """Return `value` if it is a valid SPIFFE trust domain (e.g. ``socal.alpr``).

    Raises:
        ValidationError: It is not lowercase letters, digits, dots, dashes or underscores.
    """
    if not _TRUST_DOMAIN.fullmatch(value):
        raise ValidationError(
            field, f"{value!r} is not a trust domain: lowercase letters, digits, '.', '-', '_'"
        )
    return value


class PrincipalKind(enum.Enum):
    """What a certificate names: an agency's node, one of its users, or one of its devices."""

    NODE = "node"
    USER = "user"
    DEVICE = "device"


@dataclass(frozen=True)
class Principal:
    """A node, user or device of an agency in a federation.

    The constructor validates every part, so a `Principal` that exists is well formed.
    """

    federation: str
    ori: str
    kind: PrincipalKind
    name: str = ""

    def __post_init__(self) -> None:
        """Validate every part.

        Raises:
            ValidationError: A part is malformed, or a node has a name or a user or device has none.
        """
        validate_federation(self.federation)
        validate_ori(self.ori)
        if self.kind is PrincipalKind.NODE:
            if self.name:
                raise ValidationError("name", "a node principal has no name")
        elif not _NAME.fullmatch(self.name):
            raise ValidationError(
                "name",
                f"{self.name!r} is not a {self.kind.value} name: "
                "1-64 letters, digits, '.', '-', '_'",
            )

    @property
    def spiffe_id(self) -> str:
        """The SPIFFE ID a certificate for this principal carries as its URI SAN."""
        base = f"{SPIFFE_SCHEME}{self.federation}/agency/{self.ori}"
        return base if self.kind is PrincipalKind.NODE else f"{base}/{self.kind.value}/{self.name}"

    @classmethod
    def from_spiffe_id(cls, uri: str) -> Principal:
        """Parse a SPIFFE ID written by `spiffe_id`.

        Raises:
            ValidationError: It is not one of the three shapes this federation uses.
        """
        if not uri.startswith(SPIFFE_SCHEME):
            raise ValidationError("spiffe_id", f"{uri!r} is not a spiffe:// URI")
        parts = uri[len(SPIFFE_SCHEME) :].split("/")
        if len(parts) == 3 and parts[1] == "agency":
            return cls(parts[0], parts[2], PrincipalKind.NODE)
        kinds = {k.value: k for k in PrincipalKind if k is not PrincipalKind.NODE}
        if len(parts) == 5 and parts[1] == "agency" and parts[3] in kinds:
            return cls(parts[0], parts[2], kinds[parts[3]], parts[4])
        raise ValidationError(
            "spiffe_id",
            f"{uri!r} names no agency principal: expected spiffe://<federation>/agency/<ORI>"
            "[/user/<name> | /device/<id>]",
        )
