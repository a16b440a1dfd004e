"""OCR-confusable characters, canonical plates, and what differed between a read and an entry.

A camera's OCR confuses characters that look alike (0/O/D/Q, 1/I/L, 2/Z, 5/S, 8/B, 6/G).
Mapping each of those classes to one character gives a plate's canonical form: a read and an
entry that differ only in such characters have the same canonical form. Canonical forms are
ASCII `bytes`, which `bytes.translate` computes several times faster than `str.translate`.

Everything here works on plates as `normalize_plate` returns them and patterns as
`PlatePattern.parse` returns them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Each class maps to its first character.
CONFUSABLE_CLASSES = ("0ODQ", "1IL", "2Z", "5S", "8B", "6G")
_CANONICAL = bytes.maketrans(
    "".join(c[1:] for c in CONFUSABLE_CLASSES).encode(),
    "".join(c[0] * (len(c) - 1) for c in CONFUSABLE_CLASSES).encode(),
)

_CLASS_OF = {char: members for members in CONFUSABLE_CLASSES for char in members}


def canonical(text: str) -> bytes:
    """The canonical form of a plate or pattern: each confusable character replaced by its class's.

    Wildcards are kept, so the canonical form of a pattern is a pattern over canonical plates.

    Args:
        text: A normalized plate or canonical pattern (ASCII).
    """
    return text.encode("ascii").translate(_CANONICAL)


def canonical_bytes(raw: bytes) -> bytes:
    """`canonical` of a plate already encoded as ASCII bytes."""
    return raw.translate(_CANONICAL)


def canonical_column(texts: Sequence[str]) -> list[bytes]:
    """`canonical` of each of `texts` (none holding a newline), in one pass in C."""
    if not texts:
        return []
    return "\n".join(texts).encode("ascii").translate(_CANONICAL).split(b"\n")


def spellings(plate: str, limit: int) -> list[str] | None:
    """Every plate with the canonical form of `plate`, or None when there are over `limit`.

    A read of any of them is the plate or one of its confusable misreadings: looking these
    up in a table of reads finds the reads that match `plate` whole (``7A8C123`` for
    ``7ABC123``).
    """
    choices = [_CLASS_OF.get(char, char) for char in plate]
    if math.prod(len(choice) for choice in choices) > limit:
        return None
    return ["".join(spelling) for spelling in itertools.product(*choices)]


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a read differs from the entry it matched.

    Attributes:
        position: The index in the read (for a character the read lacks, where it would be).
        read: The character read, or empty when the read lacks the listed one.
        listed: The character on the list, or empty when the read has an extra one.
    """

    position: int
    read: str
    listed: str


def substitutions(read: str, listed: str) -> tuple[Difference, ...]:
    """The positions where two plates of the same length differ."""
    return tuple(
        Difference(place, got, wanted)
        for place, (got, wanted) in enumerate(zip(read, listed, strict=True))
        if got != wanted
    )


def one_edit(read: bytes, listed: bytes) -> tuple[int, int] | None:
    """Where one edit turns canonical `listed` into canonical `read`, or None.

    Returns:
        ``(position, change)``: `change` is 0 for a substituted character at `position`,
        1 for an extra character the read has at `position`, -1 for a character the read
        lacks at `position`. None when the two are equal or more than one edit apart.
    """
    change = len(read) - len(listed)
    if change not in {-1, 0, 1}:
        return None
    place = next(
        (i for i, (a, b) in enumerate(zip(read, listed, strict=False)) if a != b),
        min(len(read), len(listed)),
    )
    if change == 0:
        same = place < len(read) and read[place + 1 :] == listed[place + 1 :]
    elif change == 1:
        same = read[place + 1 :] == listed[place:]
    else:
        same = read[place:] == listed[place + 1 :]
    return (place, change) if same else None


def edit_differences(read: str, listed: str, edit: tuple[int, int]) -> tuple[Difference, ...]:
    """What differs between a read and a plate one edit apart (as `one_edit` found it).

    Besides the edit itself, lists every confusable character the two differ in elsewhere.
    """
    place, change = edit
    if change == 0:
        return substitutions(read, listed)
    if change == 1:
        aligned_read, aligned_listed = read[:place] + read[place + 1 :], listed
        edited = Difference(place, read[place], "")
    else:
        aligned_read, aligned_listed = read, listed[:place] + listed[place + 1 :]
        edited = Difference(place, "", listed[place])
    shift = 1 if change > 0 else 0
    others = [
        Difference(d.position + (shift if d.position >= place else 0), d.read, d.listed)
        for d in substitutions(aligned_read, aligned_listed)
    ]
    return tuple(sorted([edited, *others], key=lambda d: (d.position, d.listed)))


def pattern_regex(pattern: bytes, *, capture: bool = False) -> re.Pattern[bytes]:
    """A regular expression, for `fullmatch`, of a (canonical) pattern over ASCII plates.

    ``?`` is any one character and ``*`` any run, as in `PlatePattern`. With `capture`, each
    literal character is a group, so a match tells where each literal was found.
    """
    parts = []
    for char in pattern.decode("ascii"):
        if char == "?":
            parts.append(".")
        elif char == "*":
            parts.append(".*")
        else:
            parts.append(f"({char})" if capture else char)
    return re.compile("".join(parts).encode("ascii"), re.DOTALL)


def partial_differences(read: str, pattern: str) -> tuple[Difference, ...]:
    """Where a read matched a pattern only through confusable characters.

    Args:
        read: A plate whose canonical form matches the canonical form of `pattern`.
        pattern: A canonical partial pattern.
    """
    found = pattern_regex(canonical(pattern), capture=True).fullmatch(canonical(read))
    if found is None:
        return ()
    literals = [char for char in pattern if char not in "?*"]
    return tuple(
        Difference(found.start(group), read[found.start(group)], wanted)
        for group, wanted in enumerate(literals, start=1)
        if read[found.start(group)] != wanted
    )
