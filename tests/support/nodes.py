"""Real nodes served on loopback from a background thread, for tests with sync clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from gateway.config import NodeConfig
from gateway.interceptors import Access
from gateway.node_dir import init_node, open_node
from gateway.server import (
    ACCESS,
    create_server,
    start_background,
    stop_background,
    use_worker_threads,
)
from gateway.services import Services
from gateway.tls import TLSConfig
from node.clock import Clock, system_clock
from node.store import create_engine
from node.store.capture_models import ReadRecord
from tests.support.pki import Federation

_T = TypeVar("_T")
STOP_SECONDS = 120
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningNode:
    """A node served on 127.0.0.1:`port`, with its services and its event loop."""

    config: NodeConfig
    port: int
    services: Services
    loop: asyncio.AbstractEventLoop
    engine: Engine

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the node's event loop, as the node's own work runs."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    @property
    def target(self) -> str:
        """Where clients connect."""
        return f"localhost:{self.port}"

    def stored_reads(self) -> list[ReadRecord]:
        """The reads in the node's store, read as another process would: committed ones."""
        engine = create_engine(self.config.store_url)
        try:
            with Session(engine) as session:
                return list(session.exec(select(ReadRecord)).all())
        finally:
            engine.dispose()

    def channel(self, tls: TLSConfig) -> grpc.Channel:
        """A sync channel presenting `tls`."""
        return grpc.secure_channel(self.target, tls.channel_credentials())


def make_node(
    federation: Federation, directory: Path, ori: str, *, store_url: str = "", profile: str = "lapd"
) -> NodeConfig:
    """`alpr init` a node of agency `ori` with a certificate from `federation`, under `profile`."""
    return init_node(
        directory,
        ori=ori,
        name=f"Agency {ori}",
        federation=None,
        ca=federation.ca,
        hosts=("localhost", "127.0.0.1"),
        listen="127.0.0.1:0",
        store_url=store_url,
        now=datetime.now(UTC),
        profile=profile,
    )


@contextmanager
def serving(
    config: NodeConfig,
    *,
    access: Mapping[str, Access] = ACCESS,
    extra_handlers: Sequence[grpc.GenericRpcHandler[Any, Any]] = (),
    clock: Clock = system_clock,
) -> Iterator[RunningNode]:
    """Serve the node in a thread with its own event loop until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    node = open_node(config, now=datetime.now(UTC))

    services = Services.build(node, clock=clock)

    async def start() -> tuple[grpc.aio.Server, int, list[asyncio.Task[None]]]:
        server, port, _ = create_server(
            node, access=access, extra_handlers=extra_handlers, services=services
        )
        use_worker_threads(config.worker_threads)
        await server.start()
        return server, port, start_background(services)

    async def stop() -> None:
        await server.stop(None)
        await stop_background(services, background)

    server, port, background = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    running = RunningNode(config, port, services, loop, node.engine)
    on_loop: list[str] = []

    def watch(*_: Any) -> None:
        if threading.current_thread() is thread:
            on_loop.append("".join(traceback.format_stack(limit=12)))

    # No database work on the event loop while the node serves: a call waiting on the
    # database there would hold up every other call. Starting and stopping may.
    event.listen(node.engine, "before_cursor_execute", watch)
    try:
        yield running
    finally:
        event.remove(node.engine, "before_cursor_execute", watch)
        # Generous: on a loaded machine a PostgreSQL node's stop once took over 30 s.
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=STOP_SECONDS)
        services.frames.close()
        node.engine.dispose()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
    assert not on_loop, (
        f"{len(on_loop)} database statements ran on the node's event loop; the first:\n"
        + on_loop[0]
    )


@contextmanager
def serve_process(
    directory: Path, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`alpr serve` `directory` as a real process; yields it and its port once serving.

    `env` adds to this process's environment (``ALPR_*`` overrides). The process is
    killed at the end if the test did not stop it.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", str(directory)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            entry = json.loads(line)
            if entry["msg"] == "serving":
                break
        else:
            raise AssertionError(f"alpr serve exited {process.wait()} before serving")
        yield process, int(entry["port"])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
