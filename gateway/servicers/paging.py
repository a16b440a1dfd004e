"""Offset pagination for list RPCs (AIP-158): opaque tokens, bounded pages."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from node.errors import ValidationError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_Item = TypeVar("_Item")


def page(
    items: Sequence[_Item], page_size: int, page_token: str, kind: str
) -> tuple[Sequence[_Item], str]:
    """One page of `items` and the token of the next, empty at the end (AIP-158).

    Args:
        items: Everything listed, in a stable order.
        page_size: At most this many; 0 means `DEFAULT_PAGE_SIZE`; capped at `MAX_PAGE_SIZE`.
        page_token: A token this function returned for the same `kind`, or empty to start.
        kind: What is listed; a token made for another kind is refused.

    Raises:
        ValidationError: `page_size` is negative, or `page_token` is not one of ours.
    """
    if page_size < 0:
        raise ValidationError("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    start = _offset(page_token, kind)
    end = start + size
    token = base64.urlsafe_b64encode(f"{kind}:{end}".encode()).decode()
    return items[start:end], token if end < len(items) else ""


def _offset(token: str, kind: str) -> int:
    if not token:
        return 0
    try:
        found, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if found == kind and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ValidationError("page_token", "is not a token this node issued")
