"""Partial patterns filed by an anchored literal n-gram, so a read checks only a few (CAP-5).

Checking each of 10,000 patterns against every read is too slow, so each pattern is filed
under one n-gram of its canonical literals, and a read looks up only its own n-grams:

- a gram with no ``*`` before it sits at a fixed offset from the plate's start
  (``7AB?12*``: ``7AB`` at 0), so it is filed with that offset;
- else one with no ``*`` after it sits at a fixed distance from the plate's end
  (``*C123``: ``123`` starts 3 from the end), and is filed with that distance;
- else it floats (``*AB?C*``), and is looked up at every offset of a read.

Trigrams are preferred to bigrams and bigrams to single characters, anchored keys to
floating ones, and among those the least crowded bucket, so buckets stay small. A pattern
with no anchored gram and no two literals side by side (``*A*B*``) is checked for every
read; there are few. A candidate is then checked by a compiled regex of its canonical form.
"""

from __future__ import annotations

from node.matching.canonical import canonical, pattern_regex

START, END, FLOATING = 0, 1, 2
_SIZES = (3, 2, 1)
# A pattern has at most 16 characters, so an anchored gram is at most 16 from either end.
_PLACES = 17

# (anchor, gram size, offset or distance from the end, gram)
_Key = tuple[int, int, int, bytes]


class FiledPattern:
    """A partial pattern: its text, its matchers, and the bucket it is filed in."""

    __slots__ = ("canonical", "exact", "key", "text")

    def __init__(self, text: str, key: _Key | None) -> None:
        """Compile `text` (a canonical pattern) for canonical and exact reads."""
        self.text = text
        self.key = key
        self.canonical = pattern_regex(canonical(text))
        self.exact = pattern_regex(text.encode("ascii"))


class PatternFiles:
    """Partial patterns by slot, filed by anchored n-gram. The caller holds the index's lock.

    Anchored buckets are kept per offset (or distance from the end): a list of dicts, so a
    read looks up its gram at offset i in dict i without building a key.
    """

    def __init__(self) -> None:
        """Start with no patterns."""
        self.patterns: dict[int, FiledPattern] = {}
        # (anchor, size) -> one dict per place (START, END), or a single one (FLOATING)
        self._tables: dict[tuple[int, int], list[dict[bytes, list[int]]]] = {}
        self._active: list[tuple[int, int, list[dict[bytes, list[int]]]]] = []
        self._unkeyed: list[int] = []

    def __bool__(self) -> bool:
        """Whether any pattern is filed."""
        return bool(self.patterns)

    def add(self, slot: int, text: str, key: bytes) -> None:
        """File the pattern `text`, whose canonical form is `key`, under `slot`."""
        filed = FiledPattern(text, self._choose(key))
        self.patterns[slot] = filed
        if filed.key is None:
            self._unkeyed.append(slot)
            return
        anchor, size, place, gram = filed.key
        tables = self._tables.get((anchor, size))
        if tables is None:
            tables = self._tables[anchor, size] = [{} for _ in range(_PLACES)]
            self._active = [(a, s, t) for (a, s), t in sorted(self._tables.items())]
        tables[place].setdefault(gram, []).append(slot)

    def remove(self, slot: int) -> FiledPattern | None:
        """Unfile the pattern under `slot`, if one is; it."""
        filed = self.patterns.pop(slot, None)
        if filed is None:
            return None
        if filed.key is None:
            self._unkeyed.remove(slot)
            return filed
        anchor, size, place, gram = filed.key
        tables = self._tables[anchor, size]
        slots = tables[place][gram]
        slots.remove(slot)
        if not slots:
            del tables[place][gram]
            if not any(tables):
                del self._tables[anchor, size]
                self._active = [(a, s, t) for (a, s), t in sorted(self._tables.items())]
        return filed

    def candidates(self, key: bytes) -> list[int]:
        """Slots of the patterns a read whose canonical form is `key` may match."""
        found: list[int] = []
        last = len(key)
        for anchor, size, tables in self._active:
            if anchor == FLOATING:
                table = tables[0]
                for i in range(last - size + 1):
                    slots = table.get(key[i : i + size])
                    if slots:
                        found += slots
                continue
            for i in range(last - size + 1):
                table = tables[i if anchor == START else last - i]
                if table:
                    slots = table.get(key[i : i + size])
                    if slots:
                        found += slots
        if self._unkeyed:
            found += self._unkeyed
        return found

    def _choose(self, key: bytes) -> _Key | None:
        """The least crowded anchored bucket for a pattern, else a floating one, else None."""
        text = key.decode("ascii")
        first_star, last_star = text.find("*"), text.rfind("*")
        options: list[tuple[bool, int, int, int, int, str]] = []
        for size in _SIZES:
            for i in range(len(text) - size + 1):
                gram = text[i : i + size]
                if "?" in gram or "*" in gram:
                    continue
                if first_star < 0 or i < first_star:
                    anchor, place = START, i
                elif i > last_star:
                    anchor, place = END, len(text) - i
                elif size == 1:
                    continue  # a floating single character matches too many reads
                else:
                    anchor, place = FLOATING, 0
                tables = self._tables.get((anchor, size))
                crowd = len(tables[place].get(gram.encode(), ())) if tables else 0
                options.append((anchor == FLOATING, -size, crowd, anchor, place, gram))
        if not options:
            return None
        _, minus_size, _, anchor, place, gram = min(options)
        return anchor, -minus_size, place, gram.encode("ascii")
