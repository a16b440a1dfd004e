"""Ends every open call of a session the moment the session may no longer be used (ACC-5).

A session is checked when a call starts (`node.sessions.Sessions.authenticate`); a call
that stays open, such as a patrol car's hit stream, runs under a `SessionWatch` guard and
is registered under its user for as long as it runs. The watch ends it, with the error that
says why (`node.sessions.session_ending`), and audits the cut:

- at once when the account changes in this process: `UserDirectory` tells `notify` the
  account as committed (a deactivation, reactivation, password change or reset, whether
  over AdminService or anything else in the process), and only that user's calls are
  checked, with no read of the store;
- within `poll_seconds` otherwise: `run` re-checks every open call against the store on
  that interval (`sweep`), which covers a change made by another process serving the
  agency, a session passing its expiry, and ACC-2's yearly rules lapsing, at the time of
  the node's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from node.audit import AuditLog
from node.clock import Clock
from node.sessions import Ending, SessionUse, record_presented, session_ending
from node.users import User

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
SESSION_CUT = "session.cut"
_T = TypeVar("_T")
Lookup = Callable[[str], User | None]


class _OpenCall:
    """One call under watch: ended at most once, with why."""

    def __init__(self, use: SessionUse) -> None:
        self.use = use
        self.ending: Ending | None = None
        self._ended = asyncio.Event()

    def end(self, ending: Ending) -> None:
        if self.ending is None:
            self.ending = ending
            self._ended.set()

    async def race(self, step: Awaitable[_T]) -> _T:
        """What `step` gives, unless the call is ended first: then `step` is cancelled.

        Raises:
            NodeError: The call was ended (the ending's error).
        """
        task = asyncio.ensure_future(step)
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))  # let it unwind before anything else runs it
        if self.ending is not None:
            raise self.ending.error
        return task.result()


class SessionWatch:
    """The open calls of each user's sessions, ended when their session is over."""

    def __init__(
        self, audit: AuditLog, *, clock: Clock, poll_seconds: float = POLL_SECONDS
    ) -> None:
        """Audit cuts to `audit`, judge expiry by `clock`, re-check every `poll_seconds`."""
        self._audit = audit
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._open: dict[str, set[_OpenCall]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def stream(self, use: SessionUse, items: AsyncGenerator[_T, None]) -> AsyncIterator[_T]:
        """`items` (a call's responses) until they end, or until the session does.

        Raises:
            NodeError: The session ended while the call was open (audited).
        """
        with self._watching(use) as call:
            async with contextlib.aclosing(items):
                while True:
                    try:
                        item = await self._step(call, anext(items))
                    except StopAsyncIteration:
                        return
                    yield item

    async def result(self, use: SessionUse, step: Awaitable[_T]) -> _T:
        """What `step` (a call reading a stream of requests) gives, unless the session ends.

        Raises:
            NodeError: The session ended while the call was open (audited).
        """
        with self._watching(use) as call:
            return await self._step(call, step)

    def notify(self, user: User) -> None:
        """End `user`'s open calls their account, as now stored, no longer allows.

        Safe from any thread; does nothing before a call is watched.
        """
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._check, user.name, user)

    async def sweep(self, lookup: Lookup) -> None:
        """Re-check every open call against its account as `lookup` reads it from the store."""
        for name in list(self._open):
            self._check(name, await asyncio.to_thread(lookup, name))

    async def run(self, lookup: Lookup) -> None:
        """Sweep every `poll_seconds` until cancelled."""
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.sweep(lookup)
            except Exception:
                log.exception("open sessions could not be re-checked; retrying")

    @contextlib.contextmanager
    def _watching(self, use: SessionUse) -> Iterator[_OpenCall]:
        self._loop = asyncio.get_running_loop()
        call = _OpenCall(use)
        calls = self._open.setdefault(use.user.name, set())
        calls.add(call)
        try:
            yield call
        finally:
            calls.discard(call)
            if not calls:
                self._open.pop(use.user.name, None)

    async def _step(self, call: _OpenCall, step: Awaitable[_T]) -> _T:
        try:
            return await call.race(step)
        except Exception:
            if call.ending is not None:
                await asyncio.to_thread(self._record_cut, call.use, call.ending)
            raise

    def _check(self, name: str, user: User | None) -> None:
        now = self._clock()
        for call in list(self._open.get(name, ())):
            ending = session_ending(call.use.claims, user, now)
            if ending is not None:
                call.end(ending)

    def _record_cut(self, use: SessionUse, ending: Ending) -> None:
        record_presented(
            self._audit,
            SESSION_CUT,
            use.user.name,
            use.presenter,
            reason=ending.reason,
            method=use.method,
            session_id=use.claims.session_id,
        )
