"""The `alpr` command as an operator uses it: create, serve, reach, stop; bad config in one line."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.cli import main
from gateway.tls import TLSConfig
from node.capture import ModelFiles
from tests.support.nodes import serve_process
from tests.support.pki import LAPD, LASD

SHIPPED = ModelFiles.shipped()

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A federation CA, an LAPD node and its operator's certificate, made with the CLI."""
    assert main(["pki", "init-ca", str(tmp_path / "ca"), "--federation", "test.alpr"]) == 0
    assert (
        main(
            [
                "init",
                str(tmp_path / "lapd"),
                "--ori",
                LAPD,
                "--name",
                "LAPD",
                "--profile",
                "lapd",
                "--ca",
                str(tmp_path / "ca"),
                "--listen",
                "127.0.0.1:0",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "pki",
                "issue-client",
                str(tmp_path / "ca"),
                "--ori",
                LAPD,
                "--user",
                "admin",
                "--out",
                str(tmp_path / "ops"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    return tmp_path


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The root logger as it was: `alpr serve` sends every record to stderr as JSON."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith("alpr: error: ")
    return err


class TestBadConfiguration:
    @pytest.mark.parametrize(
        ("edit", "expected"),
        [
            (lambda t: "not = [toml", "cannot read it as TOML"),
            (
                lambda t: t.replace('ori = "CA0194200"', 'ori = "CA01"'),
                "[node] ori: 'CA01' is not an ORI",
            ),
            (lambda t: t + "\n[surprise]\nx = 1\n", "unknown section [surprise]"),
            (
                lambda t: t.replace("[server]", "[server]\nlisten_port = 5"),
                "unknown key 'listen_port'",
            ),
            (
                lambda t: t.replace("max_message_bytes = 4194304", "max_message_bytes = 10"),
                "[server] max_message_bytes: 10 is not a byte count",
            ),
            (
                lambda t: t.replace("worker_threads = 16", "worker_threads = 0"),
                "[server] worker_threads: 0 is not a whole number from 1 to 256",
            ),
            (
                lambda t: t.replace('ori = "CA0194200"', 'ori = "CA0190000"'),
                "names spiffe://test.alpr/agency/CA0194200, not this node",
            ),
        ],
        ids=["toml", "ori", "section", "key", "size", "threads", "certificate of another agency"],
    )
    def test_fails_in_one_line_with_exit_2(
        self, site: Path, capsys: pytest.CaptureFixture[str], edit: object, expected: str
    ) -> None:
        path = site / "lapd" / "node.toml"
        path.write_text(edit(path.read_text()))  # type: ignore[operator]
        assert expected in one_line_error(capsys, main(["serve", str(site / "lapd")]))

    @pytest.mark.parametrize(
        ("key", "value", "expected"),
        [
            ("detector", "gone.onnx", "gone.onnx: no such file"),
            ("ocr_model", str(SHIPPED.detector), "expected an input named 'input'"),
        ],
        ids=["missing", "wrong shape"],
    )
    @pytest.mark.usefixtures("logging_restored")  # serve configures the process's logging
    def test_cap2_fails_in_one_line_for_a_model_missing_or_of_the_wrong_shape(
        self, site: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, expected: str
    ) -> None:
        """Found at start-up, before the node serves: not at a camera's first frame."""
        pytest.importorskip("onnxruntime", reason="the capture extra is not installed")
        path = site / "lapd" / "node.toml"
        path.write_text(path.read_text().replace(f'{key} = ""', f"{key} = {json.dumps(value)}"))
        assert expected in one_line_error(capsys, main(["serve", str(site / "lapd")]))

    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("ALPR_SERVER_LISTEN", "nowhere", "ALPR_SERVER_LISTEN: 'nowhere' is not host:port"),
            ("ALPR_STORE_URL", "mysql://x/y", "store.url: 'mysql' is not supported"),
            ("ALPR_STORE_URL", "postgresql://postgres@127.0.0.1:1/none", "cannot open"),
            ("ALPR_SERVER_SHUTDOWN_GRACE_SECONDS", "-1", "is not a positive number"),
            ("ALPR_ACCESS_REQUIRE_LOGIN", "maybe", "'maybe' is not true or false"),
            ("ALPR_ACCESS_SESSION_MINUTES", "0", "is not a whole number of minutes"),
            ("ALPR_FEDERATION_QUERIES_PER_MINUTE", "0", "is not a positive whole number"),
        ],
    )
    def test_fails_in_one_line_for_a_bad_environment_override(
        self,
        site: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        variable: str,
        value: str,
        expected: str,
    ) -> None:
        monkeypatch.setenv(variable, value)
        assert expected in one_line_error(capsys, main(["serve", str(site / "lapd")]))

    def test_fails_when_not_a_node_directory(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert "not found; create a node with `alpr init`" in one_line_error(
            capsys, main(["serve", str(tmp_path)])
        )

    def test_fails_when_a_file_is_missing(
        self, site: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (site / "lapd" / "tls" / "node.key").unlink()
        assert "node.key: cannot read a PEM private key" in one_line_error(
            capsys, main(["serve", str(site / "lapd")])
        )

    def test_fails_on_another_agencys_database(
        self, site: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert (
            main(
                [
                    "init",
                    str(site / "lasd"),
                    "--ori",
                    LASD,
                    "--name",
                    "LASD",
                    "--profile",
                    "lasd",
                    "--ca",
                    str(site / "ca"),
                ]
            )
            == 0
        )
        capsys.readouterr()
        for suffix in ("", "-wal", "-shm"):
            (site / "lapd" / f"node.db{suffix}").unlink(missing_ok=True)
        shutil.copy(site / "lasd" / "node.db", site / "lapd" / "node.db")
        assert "the database belongs to CA0190000" in one_line_error(
            capsys, main(["serve", str(site / "lapd")])
        )

    def test_fails_init_over_an_existing_node(
        self, site: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(
            [
                "init",
                str(site / "lapd"),
                "--ori",
                LAPD,
                "--name",
                "x",
                "--profile",
                "lapd",
                "--ca",
                str(site / "ca"),
            ]
        )
        assert "already holds a node" in one_line_error(capsys, code)

    @pytest.mark.parametrize(
        ("profile", "expected"),
        [
            ("nypd", "profile: 'nypd' is no file and no shipped profile"),
            ("BROKEN", "retention.read_period: P6M is less than 1 year"),
        ],
        ids=["unknown", "breaks RET-1"],
    )
    def test_ret1_fails_init_with_a_profile_that_is_unknown_or_breaks_a_rule(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, expected: str
    ) -> None:
        if profile == "BROKEN":
            lapd = (ROOT / "node" / "profiles" / "lapd.toml").read_text()
            profile = str(tmp_path / "ours.toml")
            Path(profile).write_text(lapd.replace('read_period = "P2Y"', 'read_period = "P6M"'))
        code = main(["init", str(tmp_path / "n"), "--ori", LAPD, "--name", "x",
                     "--profile", profile, "--federation", "f.alpr"])  # fmt: skip
        assert expected in one_line_error(capsys, code)
        assert not (tmp_path / "n").exists()

    def test_fails_serve_when_the_profile_was_edited_to_break_a_rule(
        self, site: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = site / "lapd" / "profile.toml"
        path.write_text(path.read_text().replace('retention = "P5Y"', 'retention = "P1Y"'))
        assert "audit.retention" in one_line_error(capsys, main(["serve", str(site / "lapd")]))

    def test_fails_init_with_a_bad_ori(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(
            [
                "init",
                str(tmp_path / "n"),
                "--ori",
                "XX123",
                "--name",
                "x",
                "--profile",
                "lapd",
                "--federation",
                "f.alpr",
            ]
        )
        assert "ori: 'XX123' is not an ORI" in one_line_error(capsys, code)


@pytest.fixture
def served(site: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`alpr serve` as a real process; yields it and its port once it is serving."""
    with serve_process(site / "lapd", {"ALPR_SERVER_SHUTDOWN_GRACE_SECONDS": "2"}) as served:
        yield served


class TestServe:
    def test_succeeds_reached_by_an_operator_then_stops_cleanly_on_sigterm(
        self,
        site: Path,
        served: tuple[subprocess.Popen[str], int],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        process, port = served
        ops = site / "ops"
        code = main(
            [
                "admin",
                "info",
                "--target",
                f"localhost:{port}",
                "--ca",
                str(ops / "ca.crt"),
                "--cert",
                str(ops / "admin.crt"),
                "--key",
                str(ops / "admin.key"),
            ]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert f"node        {LAPD} LAPD (federation test.alpr)" in out
        assert "health      SERVING" in out
        assert f"you are     spiffe://test.alpr/agency/{LAPD}/user/admin" in out

        tls = TLSConfig.from_files(ca=ops / "ca.crt", cert=ops / "admin.crt", key=ops / "admin.key")
        with grpc.secure_channel(f"localhost:{port}", tls.channel_credentials()) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=30
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            process.send_signal(signal.SIGTERM)
            # The in-flight stream is told the node is going away before it is drained.
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        messages = [json.loads(line)["msg"] for line in process.stderr]
        assert messages[-1] == "stopped"
        assert "stopping" in messages

    def test_fails_to_reach_a_stopped_node_in_one_line(
        self,
        site: Path,
        served: tuple[subprocess.Popen[str], int],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        process, port = served
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        ops = site / "ops"
        code = main(
            [
                "admin",
                "info",
                "--target",
                f"localhost:{port}",
                "--ca",
                str(ops / "ca.crt"),
                "--cert",
                str(ops / "admin.crt"),
                "--key",
                str(ops / "admin.key"),
                "--timeout",
                "2",
            ]
        )
        assert code == 1
        err = capsys.readouterr().err
        assert err.startswith(f"alpr: error: localhost:{port}: UNAVAILABLE")
        assert err.count("\n") == 1
