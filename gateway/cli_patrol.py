"""`alpr patrol`: the terminal client a patrol car runs (HOT-3, HOT-4, HOT-5).

It connects with the car's device certificate (``--cert``/``--key`` or ALPR_CERT/ALPR_KEY,
``--ca``/ALPR_CA, ``--target``/ALPR_TARGET), streams the agency's hits and shows each as
it arrives, with a terminal bell, and takes a disposition with one key per hit, oldest
hit first. Keys are read a line at a time from standard input (the key, then Enter), so a
script can drive it as an officer would.

The last cursor shown is kept in a small state file (``--state``): after a dropped
connection it reconnects, with backoff, from there, and so does a restarted client, so no
hit is lost and none is shown twice.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import grpc

from alpr.patrol.v1 import patrol_service_pb2 as pb
from alpr.patrol.v1 import patrol_service_pb2_grpc as pb_grpc
from gateway.cli_admin import _connection, _connection_options, _with_session
from node.errors import ValidationError

EXIT_REFUSED = 1
DEFAULT_STATE = Path("alpr-patrol.json")
KEYS = {
    "v": pb.DISPOSITION_VISUALLY_VERIFIED,
    "s": pb.DISPOSITION_CONFIRMED_WITH_STATE_SYSTEM,
    "m": pb.DISPOSITION_MISREAD,
    "n": pb.DISPOSITION_NO_LONGER_WANTED,
}
QUIT = "q"
PROMPT = (
    "  disposition for {plate}: [v] visually verified  [s] confirmed with state system  "
    "[m] misread  [n] no longer wanted  (Enter: none for now, q: quit)"
)
# Codes after which reconnecting cannot help: the request or the caller is refused.
_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
_KINDS = {
    pb.MATCH_KIND_CONFUSABLE: "confusable characters",
    pb.MATCH_KIND_PARTIAL: "partial plate",
    pb.MATCH_KIND_EDIT: "one character off",
    pb.MATCH_KIND_PARTIAL_CONFUSABLE: "partial plate, confusable characters",
}


class CursorFile:
    """The last cursor shown, kept in a small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        """Keep the cursor in `path`."""
        self.path = path

    def load(self) -> int:
        """The cursor saved, or 0 (only what happens from now on) when there is none.

        Raises:
            ValidationError: The file is not one this command wrote.
        """
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as error:
            raise ValidationError("--state", f"{self.path} is unreadable ({error})") from error
        cursor = saved.get("cursor") if isinstance(saved, dict) else None
        if not isinstance(cursor, int) or cursor < 0:
            raise ValidationError("--state", f"{self.path} holds no cursor")
        return cursor

    def save(self, cursor: int) -> None:
        """Replace the saved cursor."""
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_text(json.dumps({"cursor": cursor}))
        partial.replace(self.path)


@dataclass(frozen=True)
class _Key:
    text: str


@dataclass(frozen=True)
class _EndOfKeys:
    pass


@dataclass(frozen=True)
class _Refused:
    problem: str


_Item = pb.StreamHitsResponse | _Key | _EndOfKeys | _Refused


class _Follower:
    """Follows the stream in a thread: reconnects with backoff from the last cursor received."""

    def __init__(
        self,
        stub: pb_grpc.PatrolServiceStub,
        cursor: int,
        into: queue.Queue[_Item],
        *,
        retry_seconds: float,
        max_retry_seconds: float,
        say: Callable[[str], None],
    ) -> None:
        self._stub = stub
        self._cursor = cursor
        self._into = into
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._say = say
        self._stopped = threading.Event()
        self._call: grpc.CallIterator[pb.StreamHitsResponse] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = self._retry
        while not self._stopped.is_set():
            self._call = self._stub.StreamHits(pb.StreamHitsRequest(after_cursor=self._cursor))
            try:
                for message in self._call:
                    delay = self._retry
                    self._cursor = message.cursor
                    self._into.put(message)
                    if message.HasField("overflow"):
                        break
                self._call.cancel()  # type: ignore[no-untyped-call]
                continue  # the node ended the stream (an overflow): resume from the cursor
            except grpc.RpcError as error:
                if self._stopped.is_set():
                    return
                code = error.code() if isinstance(error, grpc.Call) else None
                problem = f"{code.name if code else ''} {error.details() if code else error}"
                if code in _FATAL:
                    self._into.put(_Refused(problem))
                    return
            self._say(f"connection lost ({problem.strip()}); reconnecting in {delay:g} s")
            if self._stopped.wait(delay):
                return
            delay = min(delay * 2, self._max_retry)


class PatrolConsole:
    """Shows hits as they arrive and settles them with one key each, oldest first."""

    def __init__(
        self, stub: pb_grpc.PatrolServiceStub, cursors: CursorFile, out: TextIO, timeout: float
    ) -> None:
        """Talk to the node through `stub`, keep cursors in `cursors`, write to `out`."""
        self._stub = stub
        self._cursors = cursors
        self._out = out
        self._timeout = timeout
        self._pending: deque[pb.Hit] = deque()
        self._keys: deque[str] = deque()

    def say(self, line: str) -> None:
        """Write one line and flush it (the officer reads as it happens)."""
        print(line, file=self._out, flush=True)

    def run(self, items: queue.Queue[_Item]) -> int:
        """Handle stream messages and keys until `q`, the end of the keys, or a refusal."""
        ended = False
        while not (ended and not self._keys):
            item = items.get()
            match item:
                case pb.StreamHitsResponse():
                    self._show(item)
                case _Key(text=text) if text == QUIT:
                    return 0
                case _Key(text=text):
                    self._keys.append(text)
                case _EndOfKeys():
                    ended = True
                case _Refused(problem=problem):
                    self.say(f"alpr: error: {problem}")
                    return EXIT_REFUSED
            self._settle()
        return 0

    def _show(self, message: pb.StreamHitsResponse) -> None:
        event = message.WhichOneof("event")
        if event == "hit":
            self.say("\a" + describe_hit(message.hit))
            self._pending.append(message.hit)
            if len(self._pending) == 1:
                self.say(PROMPT.format(plate=message.hit.plate))
        elif event == "cancellation":
            cancelled = message.cancellation
            void = set(cancelled.hit_ids)
            self.say(
                f"\aCANCELLED entry {cancelled.entry_id} on {cancelled.list_name}: "
                f"{len(void)} hit(s) on it are void (HOT-5)"
            )
            self._pending = deque(hit for hit in self._pending if hit.hit_id not in void)
        elif event == "disposition":
            settled = message.disposition
            name = pb.Disposition.Name(settled.disposition).removeprefix("DISPOSITION_")
            self.say(f"hit {settled.hit_id}: {name.lower()} by {settled.recorded_by}")
        elif event == "overflow":
            self.say("fell behind; catching up from the last hit shown")
        self._cursors.save(message.cursor)

    def _settle(self) -> None:
        while self._pending and self._keys:
            key, hit = self._keys.popleft(), self._pending.popleft()
            if key and key not in KEYS:
                self.say(f"  {key!r} is not a key: v, s, m, n, Enter or q")
                self._pending.appendleft(hit)
                continue
            if key:
                try:
                    self._stub.RecordDisposition(
                        pb.RecordDispositionRequest(hit_id=hit.hit_id, disposition=KEYS[key]),
                        timeout=self._timeout,
                    )
                except grpc.RpcError as error:
                    details = error.details() if isinstance(error, grpc.Call) else error
                    self.say(f"  not recorded ({details}); press the key again")
                    self._pending.appendleft(hit)
                    continue
                self.say(f"  recorded {pb.Disposition.Name(KEYS[key])} for {hit.plate}")
            if self._pending:
                self.say(PROMPT.format(plate=self._pending[0].plate))


def describe_hit(hit: pb.Hit) -> str:
    """What an officer is shown of a hit: plate, list, reason, where and when, the crop."""
    seen = hit.seen_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    place = f" at {hit.latitude:.5f}, {hit.longitude:.5f}" if hit.latitude or hit.longitude else ""
    lines = [
        f"{'RETROSPECTIVE ' if hit.retrospective else ''}HIT {hit.plate}  "
        f"list {hit.list_name} ({hit.issuer_ori})  {hit.list_type}",
        f"  reason   {hit.reason or '-'}",
        f"  seen     {seen}  camera {hit.camera_id}{place}",
    ]
    if hit.retrospective:
        lines.append("  note     read before the entry was listed: the car may be gone")
    if hit.plate_image_sha256:
        digest = hit.plate_image_sha256
        lines.append(f"  crop     sha256 {digest} (node: images/{digest[:2]}/{digest}.jpg)")
    if hit.contact:
        lines.append(f"  contact  {hit.contact}")
    if hit.kind == pb.MATCH_KIND_EXACT:
        lines.append("  match    exact")
    else:
        differed = "; ".join(hit.differences)
        lines.append(
            f"  match    ~ {_KINDS.get(hit.kind, 'inexact')} (confidence {hit.confidence:.2f}): "
            f"listed {hit.listed}{'; ' + differed if differed else ''}. Check the plate."
        )
    return "\n".join(lines)


def _read_keys(keys: TextIO, into: queue.Queue[_Item]) -> None:
    for line in keys:
        into.put(_Key(line.strip().lower()))
    into.put(_EndOfKeys())


def _patrol(args: argparse.Namespace) -> int:
    tls = _connection(args)
    cursors = CursorFile(args.state)
    items: queue.Queue[_Item] = queue.Queue()
    # The channel's own reconnection waits no longer than ours.
    backoff = [
        ("grpc.initial_reconnect_backoff_ms", int(args.retry_seconds * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(args.retry_seconds * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(args.max_retry_seconds * 1000)),
    ]
    with grpc.secure_channel(args.target, tls.channel_credentials(), backoff) as channel:
        # With `[access] require_login`, the officer's session (`alpr login`) goes along.
        stub = pb_grpc.PatrolServiceStub(_with_session(channel, args.session))
        console = PatrolConsole(stub, cursors, sys.stdout, args.timeout)
        follower = _Follower(
            stub,
            cursors.load(),
            items,
            retry_seconds=args.retry_seconds,
            max_retry_seconds=args.max_retry_seconds,
            say=console.say,
        )
        console.say(f"patrol: following hits on {args.target} (state in {args.state})")
        follower.start()
        threading.Thread(target=_read_keys, args=(sys.stdin, items), daemon=True).start()
        try:
            return console.run(items)
        finally:
            follower.stop()


def add_patrol_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `patrol` command to the `alpr` parser."""
    patrol = commands.add_parser(
        "patrol",
        help="the patrol car's client: hits as they happen, a disposition key per hit",
        description=(
            "Stream the agency's hits, each shown with a bell, and record a disposition "
            "with one key per hit, oldest first, typed then Enter: v visually verified, "
            "s confirmed with the state system, m misread, n no longer wanted; Enter "
            "records none for it (it stays a lead), q quits (so does the end of input). "
            "Connects with the car's device certificate, and with the officer's session from "
            "`alpr login` (--session) where the node requires logins. The last "
            "cursor is kept in --state, so a dropped connection or a restart loses no hit."
        ),
    )
    _connection_options(patrol)
    patrol.add_argument(
        "--state",
        type=Path,
        default=Path(os.environ.get("ALPR_PATROL_STATE", DEFAULT_STATE)),
        help="file keeping the last cursor (or ALPR_PATROL_STATE; default %(default)s)",
    )
    patrol.add_argument(
        "--retry-seconds", type=float, default=1.0, help="first wait before reconnecting"
    )
    patrol.add_argument(
        "--max-retry-seconds", type=float, default=30.0, help="longest wait before reconnecting"
    )
    patrol.set_defaults(run=_patrol)
