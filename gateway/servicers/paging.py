"""Pagination for list RPCs (AIP-158): opaque tokens, bounded pages.

A token holds where the next page starts: an offset into what `page` is given whole, or,
for what is too large to read for every page, a place in the store's order that the
store pages from itself (`page_size_of`, `place`, `token`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from node.errors import ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_MAX_DIGITS = 18
"""Of a number in a token: 10**18 and less fit in a 64-bit integer."""
_Item = TypeVar("_Item")


def page(
    items: Sequence[_Item], page_size: int, page_token: str, kind: str
) -> tuple[Sequence[_Item], str]:
    """One page of `items` and the token of the next, empty at the end (AIP-158).

    Args:
        items: Everything listed, in a stable order.
        page_size: As `page_size_of` reads it.
        page_token: A token this function returned for the same `kind`, or empty to start.
        kind: What is listed; a token made for another kind is refused.

    Raises:
        ValidationError: `page_size` is negative, or `page_token` is not one of ours.
    """
    size = page_size_of(page_size)
    [start] = place(page_token, kind, 1) or (0,)
    end = start + size
    return items[start:end], token(kind, (end,)) if end < len(items) else ""


def page_size_of(page_size: int) -> int:
    """How many a page holds: 0 means `DEFAULT_PAGE_SIZE`; capped at `MAX_PAGE_SIZE`.

    Raises:
        ValidationError: `page_size` is negative.
    """
    if page_size < 0:
        raise ValidationError("page_size", "must not be negative")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def token(kind: str, where: Sequence[int]) -> str:
    """The token of the page of `kind` that starts at `where` (what `place` reads back)."""
    text = ":".join([kind, *map(str, where)])
    return base64.urlsafe_b64encode(text.encode()).decode()


def place(page_token: str, kind: str, length: int) -> tuple[int, ...] | None:
    """Where the page `page_token` asks for starts: `length` integers, or None to start.

    Raises:
        ValidationError: `page_token` is not a token of `kind` that `token` made.
    """
    if not page_token:
        return None
    try:
        found, *numbers = base64.urlsafe_b64decode(page_token.encode()).decode().split(":")
    except (ValueError, UnicodeDecodeError):
        found, numbers = "", []
    if found != kind or len(numbers) != length or not all(map(_is_number, numbers)):
        raise ValidationError("page_token", "is not a token this node issued")
    return tuple(int(n) for n in numbers)


def _is_number(text: str) -> bool:
    """Whether `text` is a number a 64-bit column compares with: ASCII digits, not too many."""
    return text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS
