"""`alpr users` and `alpr login` in process against a real node: ACC-1 to ACC-5 from the CLI."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import NodeConfig
from tests.support.nodes import RunningNode, make_node, serving
from tests.support.operator import Operator
from tests.support.pki import LAPD, Federation
from tests.support.users import PASSWORD, ready_user

NEW_PASSWORD = "a much better passphrase"  # noqa: S105 (a test password)


@pytest.fixture
def config(federation: Federation, tmp_path: Path) -> NodeConfig:
    return make_node(federation, tmp_path / "lapd", LAPD)


@pytest.fixture
def node(config: NodeConfig) -> Iterator[RunningNode]:
    with serving(config) as running:
        yield running


def typed(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """What the next commands read from standard input."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


def bootstrap(config: NodeConfig, monkeypatch: pytest.MonkeyPatch) -> int:
    typed(monkeypatch, PASSWORD)
    return main(
        ["users", "bootstrap", "admin", "--dir", str(config.directory),
         "--display-name", "Chief Admin", "--password-stdin"]
    )  # fmt: skip


class TestUsersCli:
    def test_acc4_acc5_a_deactivated_user_is_refused_and_reported(
        self,
        config: NodeConfig,
        node: RunningNode,
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        assert bootstrap(config, monkeypatch) == 0
        admin = Operator(node, federation, capsys, user="admin", session=tmp_path / "admin")
        jdoe = Operator(node, federation, capsys, user="jdoe", session=tmp_path / "jdoe")
        typed(monkeypatch, PASSWORD, PASSWORD)
        assert "logged in as admin" in admin("login", "--user", "admin", "--password-stdin")
        assert (tmp_path / "admin").stat().st_mode & 0o777 == 0o600
        created = admin(
            "users", "create", "jdoe", "--display-name", "J. Doe", "--role", "data_user",
            "--password-stdin",
        )  # fmt: skip
        assert "blocked: training_not_recorded, policy_not_acknowledged" in created
        admin("users", "record", "jdoe", "training")
        assert "access: allowed" in admin("users", "record", "jdoe", "acknowledgement")
        typed(monkeypatch, PASSWORD, PASSWORD)
        jdoe("login", "--user", "jdoe", "--password-stdin")
        admin("users", "deactivate", "jdoe", "--reason", "left the agency")
        refused = jdoe("login", "--user", "jdoe", "--password-stdin", expect=1)
        assert "PERMISSION_DENIED" in refused
        report = admin("users", "report")
        assert "jdoe  deactivated  127.0.0.1" in report
        assert "deactivated (left the agency)" in admin("users", "list")

    def test_acc3_passwd_ends_sessions_and_reset_must_be_changed_at_next_login(
        self,
        config: NodeConfig,
        node: RunningNode,
        federation: Federation,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        assert bootstrap(config, monkeypatch) == 0
        ready_user(node.services.users, "jdoe")
        admin = Operator(node, federation, capsys, user="admin", session=tmp_path / "admin")
        jdoe = Operator(node, federation, capsys, user="jdoe", session=tmp_path / "jdoe")
        typed(monkeypatch, PASSWORD, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
        admin("login", "--user", "admin", "--password-stdin")
        changed = admin("users", "passwd", "--user", "admin", "--password-stdin")
        assert "password changed for admin; every session ended" in changed
        assert "UNAUTHENTICATED" in admin("users", "list", expect=1)
        admin("login", "--user", "admin", "--password-stdin")
        reset = admin("users", "reset", "jdoe")
        assert "blocked: password_change_required" in reset
        temporary = reset.rpartition("within 3 days): ")[2].strip()
        typed(monkeypatch, temporary, temporary, NEW_PASSWORD, NEW_PASSWORD)
        refused = jdoe("login", "--user", "jdoe", "--password-stdin", expect=1)
        assert "FAILED_PRECONDITION" in refused
        assert "the password was reset" in refused
        jdoe("users", "passwd", "--user", "jdoe", "--password-stdin")
        assert "logged in as jdoe" in jdoe("login", "--user", "jdoe", "--password-stdin")

    def test_acc3_user_commands_fail_without_a_login(
        self, node: RunningNode, federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert "UNAUTHENTICATED" in Operator(node, federation, capsys)("users", "list", expect=1)

    def test_bootstrap_fails_once_an_administrator_exists(
        self, config: NodeConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert bootstrap(config, monkeypatch) == 0
        assert bootstrap(config, monkeypatch) == 2
