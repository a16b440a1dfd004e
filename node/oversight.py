"""The redacted public summary of a node's use (AUD-4), pinned to its audit log (AUD-5).

The summary counts, over a period, the searches the agency's users ran by stated
purpose, and the exchanges with each partner agency; it names no plate, no person and
no case. It states the range of audit events it was computed from and carries the
node's signed checkpoint of the log at the moment it was computed, so anyone can
later hold the agency to those numbers: the events counted are in a log whose head
the agency signed, and every later checkpoint must extend it (partners witness that).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from node.audit import AuditLog
from node.checkpoint import Checkpoint
from node.errors import ValidationError
from node.store.models import AuditEvent, utc
from node.users import User

SEARCH_PREFIX = "search."
"""Kinds of the agency's own users' searches (``search.plate``, ``search.federated``…)."""
EXCHANGE_PREFIX = "exchange."
"""Kinds of exchanges with partners; ``exchange.denied`` counts as a refused request."""
DENIED = "exchange.denied"


@dataclass(frozen=True)
class PublicSummary:
    """Counts over `[since, until)`, computed from events `first_seq` to `last_seq`.

    Attributes:
        since: The start of the period (inclusive).
        until: The end of the period (exclusive).
        first_seq: The first audit event in the period, 0 if none.
        last_seq: The last audit event in the period, 0 if none.
        searches_by_purpose: The agency's searches, by the purpose stated (ACC-6).
        exchanges_by_partner: Exchanges with each partner agency, by its ORI.
        refused_by_partner: Partners' requests we refused (SHR-6), by its ORI.
        checkpoint: The node's signed checkpoint of its log when the summary was made.
    """

    since: datetime
    until: datetime
    first_seq: int
    last_seq: int
    searches_by_purpose: dict[str, int] = field(default_factory=dict)
    exchanges_by_partner: dict[str, int] = field(default_factory=dict)
    refused_by_partner: dict[str, int] = field(default_factory=dict)
    checkpoint: bytes = b""

    def rows(self) -> Iterator[tuple[str, str, int]]:
        """(measure, key, count) rows, sorted, as the CSV holds them."""
        for measure, counts in (
            ("searches_by_purpose", self.searches_by_purpose),
            ("exchanges_by_partner", self.exchanges_by_partner),
            ("refused_by_partner", self.refused_by_partner),
        ):
            for key in sorted(counts):
                yield measure, key, counts[key]

    def to_csv(self) -> str:
        """The counts as CSV: measure, key, count."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["measure", "key", "count"])
        writer.writerows(self.rows())
        return out.getvalue()

    def to_text(self, checkpoint: Checkpoint) -> str:
        """A readable document: the period, the counts, and the checkpoint to hold us to."""
        lines = [
            "Public summary of ALPR system use (redacted: no plates, persons or cases)",
            f"Period: {self.since.isoformat()} to {self.until.isoformat()}",
            f"Audit events counted: {self.first_seq} to {self.last_seq}",
            "",
        ]
        titles = {
            "searches_by_purpose": "Searches by stated purpose",
            "exchanges_by_partner": "Exchanges with partner agencies",
            "refused_by_partner": "Requests from partners refused",
        }
        rows = list(self.rows())
        for measure, title in titles.items():
            lines.append(f"{title}:")
            found = [(key, count) for name, key, count in rows if name == measure]
            lines.extend(f"  {key}: {count}" for key, count in found)
            lines.extend([] if found else ["  none"])
        lines += [
            "",
            f"Computed at audit log size {checkpoint.size}, root {checkpoint.root.hex()}.",
            "The node's signed checkpoint of that log (C2SP signed note):",
            "",
            self.checkpoint.decode("utf-8"),
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        """The summary as JSON, for publishing beside the document."""
        return json.dumps(
            {
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "searches_by_purpose": self.searches_by_purpose,
                "exchanges_by_partner": self.exchanges_by_partner,
                "refused_by_partner": self.refused_by_partner,
                "checkpoint": self.checkpoint.decode("utf-8"),
            },
            indent=2,
            sort_keys=True,
        )


def summarize(
    log: AuditLog, *, ori: str, since: datetime, until: datetime, checkpoint: bytes
) -> PublicSummary:
    """Count the period's searches and exchanges from the audit log.

    Args:
        log: The node's audit log.
        ori: Our agency, so a partner is told from ourselves.
        since: The start of the period (inclusive, timezone-aware).
        until: The end (exclusive).
        checkpoint: Our signed checkpoint at the log's head, taken before counting.

    Raises:
        ValidationError: The period is empty or a bound has no time zone.
    """
    searches: Counter[str] = Counter()
    exchanges: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    first = last = 0
    for event in _in_period(log, since, until):
        first, last = first or event.seq, event.seq
        if event.kind.startswith(SEARCH_PREFIX):
            searches[event.purpose or "(none stated)"] += 1
        elif event.kind == DENIED:
            refused[event.agency] += 1
        elif event.kind.startswith(EXCHANGE_PREFIX):
            exchanges[_partner(event, ori)] += 1
    return PublicSummary(
        since, until, first, last, dict(searches), dict(exchanges), dict(refused), checkpoint
    )


@dataclass
class AccessRow:
    """One user's use of the system over a period, for the semi-annual summary (AUD-4)."""

    actor: str
    searches: int = 0
    refused_searches: int = 0
    logins: int = 0
    refused_logins: int = 0
    purposes: dict[str, int] = field(default_factory=dict)


_ACCESS_COUNTS = {
    "search.refused": "refused_searches",
    "login": "logins",
    "login.refused": "refused_logins",
}


def access_summary(log: AuditLog, *, since: datetime, until: datetime) -> list[AccessRow]:
    """Each user's searches (by purpose), refused queries and logins in `[since, until)`.

    Raises:
        ValidationError: The period is empty or a bound has no time zone.
    """
    rows: dict[str, AccessRow] = {}
    for event in _in_period(log, since, until):
        counted = _ACCESS_COUNTS.get(event.kind)
        if counted is None and not event.kind.startswith(SEARCH_PREFIX):
            continue
        row = rows.setdefault(event.actor, AccessRow(event.actor))
        if counted is not None:
            setattr(row, counted, getattr(row, counted) + 1)
        else:
            row.searches += 1
            row.purposes[event.purpose] = row.purposes.get(event.purpose, 0) + 1
    return [rows[actor] for actor in sorted(rows)]


@dataclass(frozen=True)
class TrainingRow:
    """One user's training and policy acknowledgement, for the annual report (AUD-4, ACC-2)."""

    name: str
    roles: tuple[str, ...]
    trained_at: datetime | None
    acknowledged_at: datetime | None
    acknowledgement_expires_at: datetime | None
    current_in_year: bool
    blocks: tuple[str, ...]


def training_report(
    users: Iterable[User], *, year: int, reference_time: datetime
) -> list[TrainingRow]:
    """Each user's training and acknowledgement, and whether they held for `year` (ACC-2).

    A user is current in the year when trained and when an acknowledgement recorded in
    or before the year still held at its end (or now, for the year under way).
    """
    end = min(datetime(year + 1, 1, 1, tzinfo=reference_time.tzinfo), reference_time)
    rows = []
    for user in sorted(users, key=lambda user: user.name):
        expires = user.acknowledgement_expires_at
        current = (
            user.trained_at is not None
            and user.trained_at < end
            and user.acknowledged_at is not None
            and user.acknowledged_at < end
            and expires is not None
            and expires >= end
        )
        rows.append(
            TrainingRow(
                user.name,
                tuple(sorted(role.value for role in user.roles)),
                user.trained_at,
                user.acknowledged_at,
                expires,
                current,
                tuple(block.value for block in user.blocks(reference_time)),
            )
        )
    return rows


def query_sample(
    log: AuditLog, *, since: datetime, until: datetime, size: int, seed: str
) -> list[AuditEvent]:
    """A random sample of the period's user queries for review (AUD-3), in log order.

    The draw is reproducible from `seed` (state it in the review's record, e.g. the
    checkpoint the sample was drawn at), so an auditor can show it was not hand-picked.

    Raises:
        ValidationError: `size` is not positive.
    """
    if size < 1:
        raise ValidationError("size", "must be 1 or more")
    queries = [
        event
        for event in _in_period(log, since, until)
        if event.kind.startswith(SEARCH_PREFIX) and event.kind != "search.refused"
    ]
    chosen = random.Random(seed).sample(queries, min(size, len(queries)))  # noqa: S311 (a review sample, reproducible by design)
    return sorted(chosen, key=lambda event: event.seq)


def _in_period(log: AuditLog, since: datetime, until: datetime) -> Iterator[AuditEvent]:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationError("since", "the period's bounds need a time zone")
    if since >= until:
        raise ValidationError("until", "must be after since")
    return (event for event in _events(log) if since <= utc(event.recorded_at) < until)


def _events(log: AuditLog) -> Iterator[AuditEvent]:
    after = 0
    while page := log.events(after_seq=after):
        yield from page
        after = page[-1].seq


def _partner(event: AuditEvent, ori: str) -> str:
    """The partner of an exchange event: the requesting agency, or the one we asked."""
    if event.agency != ori:
        return event.agency
    partner = json.loads(event.details).get("partner", "")
    return partner if isinstance(partner, str) and partner else "(unknown)"
