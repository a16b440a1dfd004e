"""Every AdminService method has an `alpr` command that calls it.

An operator manages the node through its admin RPCs with `alpr`, never around the node; a
method no command calls is one an operator can only reach by writing a gRPC client. The
check reads the code each command runs: the names its function, the functions nested in it
and the gateway functions it calls refer to, among them the stub methods it calls.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable, Iterator

from alpr.admin.v1 import admin_service_pb2
from gateway.cli import _parser

ADMIN_METHODS = frozenset(
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].methods_by_name
)


def commands(parser: argparse.ArgumentParser) -> Iterator[Callable[..., object]]:
    """The function each command under `parser` runs (its `run` default)."""
    run = parser.get_default("run")
    if run is not None:
        yield run
    # argparse lists subcommands nowhere public; its subparsers action holds them.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield from commands(subparser)


def names_used(function: types.FunctionType) -> set[str]:
    """The names `function` refers to, and those of the gateway functions it reaches."""
    names: set[str] = set()
    pending, seen = [function], {function}
    while pending:
        current = pending.pop()
        codes = [current.__code__]
        while codes:
            code = codes.pop()
            names |= set(code.co_names)
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
            for name in code.co_names:
                found = current.__globals__.get(name)
                if (
                    isinstance(found, types.FunctionType)
                    and found.__module__.startswith("gateway.")
                    and found not in seen
                ):
                    seen.add(found)
                    pending.append(found)
    return names


class TestAdminCommands:
    def test_succeeds_with_a_command_calling_every_admin_method(self) -> None:
        called: set[str] = set()
        for run in commands(_parser()):
            assert isinstance(run, types.FunctionType), run
            called |= names_used(run)
        assert sorted(ADMIN_METHODS - called) == []

    def test_fails_to_see_a_method_that_no_command_calls(self) -> None:
        def lists_peers(admin: object) -> None:
            admin.ListPeers()  # type: ignore[attr-defined]

        assert isinstance(lists_peers, types.FunctionType)
        assert ADMIN_METHODS & names_used(lists_peers) == {"ListPeers"}
