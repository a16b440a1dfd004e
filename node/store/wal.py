"""SQLite WAL checkpoints in a thread of their own, so that no commit waits on one.

By default SQLite checkpoints inside the commit that grows the write-ahead log past a
thousand pages: that commit copies the log into the database file and syncs both. A
partner's 100,000-entry list is 16 MB of chunks, so the last batch of its pull paid for
a checkpoint of 70 to 80 ms on the pull's critical path (a fifth of the pull; a
million-entry list paid ten).

Here a commit only notes its file; one daemon thread per process then checkpoints the
files noted, `PASSIVE`ly (never waiting on readers or writers), once commits pause
(`QUIET_SECONDS`): a burst of writes, a pull's batches, is checkpointed once, after it
and off its path, while the node is idle; or as its engine is disposed, if sooner. Were
commits never to pause, it checkpoints `MOST_SECONDS` after the first; and SQLite's own
checkpoint stays as a bound (`BACKSTOP_PAGES`): were this thread ever behind, the log
still could not grow past it. That also bounds how long a commit stays only in the log:
with ``synchronous=NORMAL`` the log is synced at checkpoints, so a quiet node's last
commits reach the disk within seconds, not after a thousand pages.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_384
"""SQLite's own checkpoint, at this many pages in the log (256 MB at 16 KiB pages)."""
QUIET_SECONDS = 0.25
"""The files noted are checkpointed once no commit has been noted for this long ..."""
MOST_SECONDS = 5.0
"""... or this long after the first commit noted, were commits never to pause."""


class Checkpointer:
    """Checkpoints the SQLite files whose commits it is told of, in a daemon thread."""

    def __init__(self, quiet_seconds: float = QUIET_SECONDS) -> None:
        """Checkpoint the files noted once commits pause for `quiet_seconds`."""
        self._quiet = quiet_seconds
        self._noted: set[Path] = set()
        self._lock = threading.Lock()  # over what is noted and when
        self._first: float | None = None  # the first commit noted since the last round
        self._last = 0.0  # the last commit noted
        self._checkpointing = threading.Lock()  # over a round of checkpoints
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget_thread)

    def note(self, database: Path) -> None:
        """Note a commit to `database`: it will be checkpointed soon, in the thread.

        Only the first commit of a burst wakes the thread; the rest only move the time
        it waits for, instead of each handing the thread a wake-up it only spends
        going back to wait.
        """
        with self._lock:
            self._noted.add(database)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoints", daemon=True
                )
                self._thread.start()
            wake = self._began()
        if wake:
            self._wake.set()

    def run_noted(self) -> None:
        """Checkpoint every file noted so far, now, in the calling thread.

        A file whose log could not be checkpointed to its end (a reader or another
        checkpoint in the way) is noted again, for the next round.
        """
        with self._checkpointing:
            with self._lock:
                noted, self._noted = self._noted, set()
            behind = [database for database in sorted(noted) if not checkpoint(database)]
            if behind:
                with self._lock:
                    self._noted.update(behind)
                    wake = self._began()
                if wake:
                    self._wake.set()

    def forget(self, database: Path) -> None:
        """Checkpoint `database` now if a commit to it is noted, then leave it alone.

        Called as its engine is disposed, until noted again. A process that wrote to a
        node's database and is done (a command, a tool) so leaves its commits copied into
        the file and synced, not in the log for the next process that commits there to
        checkpoint: the serving node, in the middle of a partner's pull. Returns once that
        checkpoint, and any under way, has ended: the caller may then delete the file.
        """
        with self._checkpointing:
            with self._lock:
                noted = database in self._noted
                self._noted.discard(database)
            if noted:
                checkpoint(database)

    def _began(self) -> bool:
        """Note, holding the lock, a commit now; whether it begins a burst (the thread waits)."""
        self._last = time.monotonic()
        if self._first is not None:
            return False
        self._first = self._last
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while (wait := self._until_due()) > 0:
                time.sleep(wait)
            self.run_noted()

    def _until_due(self) -> float:
        """Seconds until the burst noted is due a checkpoint; at 0, the next burst begins."""
        with self._lock:
            if self._first is None:
                return 0.0
            due = min(self._last + self._quiet, self._first + MOST_SECONDS)
            wait = due - time.monotonic()
            if wait <= 0:
                self._first = None  # a commit from now on wakes the thread again
            return wait

    def _forget_thread(self) -> None:
        """In a forked child, which has none of the parent's threads: start one when needed."""
        self._lock, self._checkpointing = threading.Lock(), threading.Lock()
        self._wake = threading.Event()
        self._thread, self._first = None, None


def checkpoint(database: Path) -> bool:
    """Copy what `database`'s log holds into the file, as far as readers allow; never waits.

    Returns False if a reader or another checkpoint kept part of the log from being
    copied: worth another try. A file removed meanwhile (a test's, a node's directory deleted) is
    left alone, and not made again: the connection opens it only if it exists.
    """
    try:
        connection = sqlite3.connect(f"{database.as_uri()}?mode=rw", uri=True, timeout=0)
    except sqlite3.Error:
        return True
    try:
        busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as error:  # not a database: the next commit notes it again
        log.debug("checkpoint of %s skipped: %s", database, error)
        return True
    finally:
        connection.close()
    return not busy and copied == logged


CHECKPOINTS = Checkpointer()
"""The process's checkpointer, which every SQLite engine made here notes its commits to."""
