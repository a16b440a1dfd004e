"""An agency's operator running `alpr` commands in process against its own node."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.cli import main
from node.identity import PrincipalKind
from tests.support.nodes import RunningNode
from tests.support.pki import Federation


class Operator:
    """Runs `alpr` as a user of the node's agency, with that user's own certificate."""

    def __init__(
        self,
        node: RunningNode,
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        *,
        user: str = "operator",
        prefix: Sequence[str] = (),
        session: Path | None = None,
    ) -> None:
        """Act as `user` of the node's agency; `prefix` goes before every command's words.

        With `session`, commands keep and send the user's login session in that file.
        """
        cert, key = federation.client_files(node.config.ori, PrincipalKind.USER, user)
        self.connection = ["--target", node.target, "--ca", str(federation.ca_file),
                           "--cert", str(cert), "--key", str(key)]  # fmt: skip
        if session is not None:
            self.connection += ["--session", str(session)]
        self.prefix = list(prefix)
        self.capsys = capsys

    def __call__(self, *argv: str, expect: int = 0) -> str:
        """Run one command; its standard output, or its standard error when it fails."""
        code = main([*self.prefix, *argv, *self.connection])
        out, err = self.capsys.readouterr()
        assert code == expect, err
        return out if expect == 0 else err
