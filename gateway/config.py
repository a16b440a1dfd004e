"""The node's configuration: `node.toml` in the node's directory, with environment overrides.

Any value can be overridden by ``ALPR_<SECTION>_<KEY>`` (``ALPR_SERVER_LISTEN=0.0.0.0:7443``).
Relative paths are relative to the node's directory. Every problem is reported as one
`ConfigError` naming the file or variable, the key and what is wrong.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.plate_queries import QUERIES_PER_MINUTE
from gateway.errors import ConfigError
from node.capture.files import (
    MIN_DETECTOR_SCORE,
    MIN_TEXT_CONFIDENCE,
    ModelFiles,
    ReadThresholds,
)
from node.capture.frames import MAX_FRAME_BYTES
from node.capture.limits import FRAMES_PER_SECOND, READS_PER_SECOND
from node.errors import ValidationError
from node.identity import validate_federation, validate_ori
from node.reads import MAX_CALL_IMAGE_BYTES
from node.store import DEFAULT_CONNECTIONS, sqlite_url

CONFIG_FILE = "node.toml"
DATABASE_FILE = "node.db"
PROFILE_FILE = "profile.toml"
ENV_PREFIX = "ALPR_"
MAX_MESSAGE_BYTES_LIMIT = 64 * 1024 * 1024
MAX_WORKERS = 64
MAX_WORKER_THREADS = 256
# The least a node takes in one message: one SubmitFrames call with a frame of the largest
# size, or a SubmitReads call with the most images a call may hold (with room for times,
# places, ids and the camera), so that every valid frame and every valid call of reads can
# be sent.
MIN_MESSAGE_BYTES = max(MAX_FRAME_BYTES, MAX_CALL_IMAGE_BYTES) + 64 * 1024


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """A node's settings, validated.

    Attributes:
        directory: The node's directory; relative paths in the file are resolved from it.
        ori: The agency's ORI.
        name: The agency's name.
        federation: The federation's trust domain.
        listen: ``host:port`` the gRPC server binds; port 0 picks a free one.
        shutdown_grace_seconds: How long in-flight calls may finish after SIGTERM.
        max_message_bytes: The largest message the server receives; a larger one is refused
            with RESOURCE_EXHAUSTED naming the limit. At least `MIN_MESSAGE_BYTES`.
        worker_threads: The threads that run the node's blocking work (database, crypto)
            for its calls and jobs; its database pool is sized to match (`create_engine`).
        tls_ca: The federation CA certificate.
        tls_cert: The node's certificate.
        tls_key: The node's TLS private key.
        signing_key: The node's Ed25519 seed.
        data_key: The key that encrypts hotlist fields at rest (HOT-2).
        profile: The agency's policy profile (retention, purposes, approvers, audit).
        store_url: The database URL.
        images: Where plate and vehicle images are kept, by content hash.
        detector: The plate detector (YOLO ONNX), or None for the one the node ships.
        ocr_model: The OCR model (fast-plate-ocr ONNX), or None for the one the node ships.
        ocr_config: The OCR model's plate config (YAML), or None for the shipped model's.
        min_score: The least detector score a box needs to be read.
        min_confidence: The least text confidence (its least sure character) a read needs
            to be kept.
        capture_workers: The processes frames are read in, each holding both models; 0 for
            one per core the node may use (`usable_cores`).
        frames_per_second: How many frames each camera may send a second, on average
            (bursts of up to a full batch); more are refused with RESOURCE_EXHAUSTED.
        reads_per_second: How many reads each camera may send a second (`SubmitReads`), on
            average (bursts of up to a full call); more are refused the same way.
        heartbeat_seconds: How long a patrol stream stays quiet before a heartbeat.
        require_login: Whether the agency's data and admin methods need a logged-in user's
            session besides the certificate (ACC-3). Managing users always does.
        session_minutes: How long a login's session lasts.
        queries_per_minute: How many plate queries each partner may ask in any minute.
        poll_seconds: How often the hit broker reads the feed unwoken: the longest a hit
            committed by another process can take to reach this one's streams on SQLite
            (on PostgreSQL a NOTIFY wakes it at once). Open streams are re-checked against
            their user's account as often: the longest a deactivation made by another process
            takes to end this one's streams (one made in this process ends them at once).
        retrospective_hours: How far back the agency's own reads are searched when an
            entry is added to one of its lists (retrospective hits).
    """

    directory: Path
    ori: str
    name: str
    federation: str
    listen: str = "127.0.0.1:50051"
    shutdown_grace_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    worker_threads: int = DEFAULT_CONNECTIONS  # a connection for each
    tls_ca: Path
    tls_cert: Path
    tls_key: Path
    signing_key: Path
    data_key: Path
    profile: Path
    store_url: str
    images: Path
    detector: Path | None = None
    ocr_model: Path | None = None
    ocr_config: Path | None = None
    min_score: float = MIN_DETECTOR_SCORE
    min_confidence: float = MIN_TEXT_CONFIDENCE
    capture_workers: int = 0
    frames_per_second: float = FRAMES_PER_SECOND
    reads_per_second: float = READS_PER_SECOND
    heartbeat_seconds: float = 15.0
    require_login: bool = False
    session_minutes: int = 480
    queries_per_minute: int = QUERIES_PER_MINUTE
    poll_seconds: float = 2.0
    retrospective_hours: float = 72.0

    @property
    def model_files(self) -> ModelFiles:
        """The capture models: those given by path, the shipped ones for the rest."""
        return ModelFiles.shipped().replace(
            detector=self.detector, ocr_model=self.ocr_model, ocr_config=self.ocr_config
        )

    @property
    def read_thresholds(self) -> ReadThresholds:
        """How sure the reader must be of a plate to report it."""
        return ReadThresholds(min_score=self.min_score, min_confidence=self.min_confidence)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _listen(value: object) -> str:
    host, separator, port = _text(value).rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not host:port")
    return str(value)


def _number(value: object) -> float:
    """`value` as a float; NaN, which every range check refuses, if it is not a number."""
    if isinstance(value, bool):  # TOML's true is an int to Python, never a number here
        return float("nan")
    try:
        return float(value) if isinstance(value, (int, float, str)) else float("nan")
    except ValueError:
        return float("nan")


def _positive_float(value: object) -> float:
    number = _number(value)
    if not number > 0:
        raise ValueError(f"{value!r} is not a positive number")
    return number


def fraction(value: object) -> float:
    """`value` as a number from 0 to 1.

    Raises:
        ValueError: It is not one.
    """
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{value!r} is not a number from 0 to 1")
    return number


def score(value: object) -> float:
    """`value` as a number above 0 and at most 1: a detector score floor.

    A floor of 0 would keep boxes the detector sees no sign of a plate in; however low the
    floor, the reader reads at most `MAX_PLATES_A_FRAME` boxes a frame.

    Raises:
        ValueError: It is not one.
    """
    number = _number(value)
    if not 0 < number <= 1:
        raise ValueError(f"{value!r} is not a number above 0 and at most 1")
    return number


def _whole_number(low: int, high: int) -> Callable[[object], int]:
    """A parser of whole numbers from `low` to `high`, given as such or as digits."""

    def parse(value: object) -> int:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
        return value

    return parse


def _positive_int(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return value


def _message_bytes(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not MIN_MESSAGE_BYTES <= value <= MAX_MESSAGE_BYTES_LIMIT:
        raise ValueError(
            f"{value!r} is not a byte count from {MIN_MESSAGE_BYTES} to {MAX_MESSAGE_BYTES_LIMIT}"
        )
    return value


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{value!r} is not true or false")


def _minutes(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 24 * 60:
        raise ValueError(f"{value!r} is not a whole number of minutes from 1 to 1440")
    return value


def _checked(check: Callable[[str], str]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        try:
            return check(_text(value))
        except ValidationError as error:
            raise ValueError(error.problem) from error

    return parse


# (section, key) -> (NodeConfig field, parser, default or None when required).
_SCHEMA: dict[tuple[str, str], tuple[str, Callable[[object], Any], object]] = {
    ("node", "ori"): ("ori", _checked(validate_ori), None),
    ("node", "name"): ("name", _text, None),
    ("node", "federation"): ("federation", _checked(validate_federation), None),
    ("server", "listen"): ("listen", _listen, NodeConfig.listen),
    ("server", "shutdown_grace_seconds"): (
        "shutdown_grace_seconds",
        _positive_float,
        NodeConfig.shutdown_grace_seconds,
    ),
    ("server", "max_message_bytes"): (
        "max_message_bytes",
        _message_bytes,
        NodeConfig.max_message_bytes,
    ),
    ("server", "worker_threads"): (
        "worker_threads",
        _whole_number(1, MAX_WORKER_THREADS),
        NodeConfig.worker_threads,
    ),
    ("tls", "ca"): ("tls_ca", _text, "tls/ca.crt"),
    ("tls", "cert"): ("tls_cert", _text, "tls/node.crt"),
    ("tls", "key"): ("tls_key", _text, "tls/node.key"),
    ("keys", "signing_key"): ("signing_key", _text, "keys/signing.key"),
    ("keys", "data_key"): ("data_key", _text, "keys/data.key"),
    ("policy", "profile"): ("profile", _text, PROFILE_FILE),
    ("store", "url"): ("store_url", str, ""),
    ("capture", "images"): ("images", _text, "images"),
    ("capture", "detector"): ("detector", str, ""),
    ("capture", "ocr_model"): ("ocr_model", str, ""),
    ("capture", "ocr_config"): ("ocr_config", str, ""),
    ("capture", "min_score"): ("min_score", score, NodeConfig.min_score),
    ("capture", "min_confidence"): ("min_confidence", fraction, NodeConfig.min_confidence),
    ("capture", "workers"): (
        "capture_workers",
        _whole_number(0, MAX_WORKERS),
        NodeConfig.capture_workers,
    ),
    ("capture", "frames_per_second"): (
        "frames_per_second",
        _positive_float,
        NodeConfig.frames_per_second,
    ),
    ("capture", "reads_per_second"): (
        "reads_per_second",
        _positive_float,
        NodeConfig.reads_per_second,
    ),
    ("patrol", "heartbeat_seconds"): (
        "heartbeat_seconds",
        _positive_float,
        NodeConfig.heartbeat_seconds,
    ),
    ("access", "require_login"): ("require_login", _boolean, NodeConfig.require_login),
    ("access", "session_minutes"): ("session_minutes", _minutes, NodeConfig.session_minutes),
    ("federation", "queries_per_minute"): (
        "queries_per_minute",
        _positive_int,
        NodeConfig.queries_per_minute,
    ),
    ("patrol", "poll_seconds"): ("poll_seconds", _positive_float, NodeConfig.poll_seconds),
    ("patrol", "retrospective_hours"): (
        "retrospective_hours",
        _positive_float,
        NodeConfig.retrospective_hours,
    ),
}
_PATHS = {"tls_ca", "tls_cert", "tls_key", "signing_key", "data_key", "profile", "images"}
_MODELS = ("detector", "ocr_model", "ocr_config")


def load_config(directory: Path, environ: Mapping[str, str]) -> NodeConfig:
    """Read and validate `directory`/node.toml, applying ``ALPR_*`` overrides from `environ`.

    Raises:
        ConfigError: The file is missing or not TOML, has an unknown section or key,
            or a value (from the file or the environment) is invalid.
    """
    path = directory / CONFIG_FILE
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: not found; create a node with `alpr init`") from error
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it as TOML ({error})") from error
    _reject_unknown(path, document)
    values: dict[str, Any] = {"directory": directory.resolve()}
    for (section, key), (attribute, parse, default) in _SCHEMA.items():
        variable = f"{ENV_PREFIX}{section}_{key}".upper()
        source, raw = (
            (variable, environ[variable])
            if variable in environ
            else (
                f"{path} [{section}] {key}",
                document.get(section, {}).get(key, default),
            )
        )
        if raw is None:
            raise ConfigError(f"{source}: missing")
        try:
            values[attribute] = parse(raw)
        except ValueError as error:
            raise ConfigError(f"{source}: {error}") from error
    for attribute in _PATHS:
        values[attribute] = directory.resolve() / values[attribute]
    for attribute in _MODELS:  # empty: the model the node ships
        values[attribute] = directory.resolve() / values[attribute] if values[attribute] else None
    values["store_url"] = values["store_url"] or sqlite_url(directory / DATABASE_FILE)
    return NodeConfig(**values)


def _reject_unknown(path: Path, document: Mapping[str, Any]) -> None:
    sections = {section for section, _ in _SCHEMA}
    for section, table in document.items():
        if section not in sections or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown section [{section}]")
        for key in table:
            if (section, key) not in _SCHEMA:
                raise ConfigError(f"{path} [{section}]: unknown key {key!r}")


def render_config(*, ori: str, name: str, federation: str, listen: str, store_url: str) -> str:
    """The text of a new node.toml, with every setting present and explained."""

    def quoted(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    return f"""\
# Node configuration, written by `alpr init`. Relative paths are relative to this directory.
# Any value can be overridden by an environment variable ALPR_<SECTION>_<KEY>,
# e.g. ALPR_SERVER_LISTEN=0.0.0.0:7443 or ALPR_STORE_URL=postgresql://...

[node]
ori = {quoted(ori)}
name = {quoted(name)}
federation = {quoted(federation)}

[server]
listen = {quoted(listen)}
shutdown_grace_seconds = {NodeConfig.shutdown_grace_seconds}
# The largest call taken, in bytes (at least {MIN_MESSAGE_BYTES}: one frame of 2 MiB).
# A larger call is refused with RESOURCE_EXHAUSTED; `alpr capture watch` splits its
# batches to fit (its --batch-bytes, by default this default).
max_message_bytes = {NodeConfig.max_message_bytes}
# Threads that do the node's blocking work for its calls and jobs: database, signatures,
# encryption. Each holds at most one database connection at a time; the node allows that
# many connections, and as many again for its other threads (see the operator guide).
# A call finding every thread busy waits for one; the event loop and open streams do not.
worker_threads = {NodeConfig.worker_threads}

[tls]
# Issued by the federation CA: `alpr pki issue-node`.
ca = "tls/ca.crt"
cert = "tls/node.crt"
key = "tls/node.key"

[keys]
# The node's Ed25519 signing key and the key that encrypts hotlist fields at rest
# (mode 0600). Neither is ever copied into the database.
signing_key = "keys/signing.key"
data_key = "keys/data.key"

[policy]
# The agency's policy profile: retention, authorized purposes, approvers, audit retention.
# `alpr init --profile` copied it here with the policy sections each value comes from.
profile = "{PROFILE_FILE}"

[store]
# Empty: the SQLite file {DATABASE_FILE} in this directory. Or postgresql://user@host:port/db
url = {quoted(store_url)}

[capture]
# Plate and vehicle images, kept by the SHA-256 of their bytes.
images = "images"
# The models that find and read plates; empty: the small ones the node ships (trained on
# synthetic plates). A stronger model is given by path: a YOLO detector exported to ONNX
# (input [1, 3, S, S], output [1, 5, N]) and a fast-plate-ocr ONNX model with its plate config.
detector = ""
ocr_model = ""
ocr_config = ""
# How sure the reader must be to report a plate: the detector's score for a box, and the
# text's confidence (its least sure character). The shipped models' values; a stronger
# model may want others (`alpr capture read --min-confidence 0 --min-score 0.1` shows more).
min_score = {NodeConfig.min_score}
min_confidence = {NodeConfig.min_confidence}
# Processes reading frames, each holding both models; 0: one per core the node may use
# (its CPU affinity, within a container's CPU limit).
workers = {NodeConfig.capture_workers}
# Frames each camera may send a second, on average, in bursts of up to one full call
# (16 frames); a camera sending more is refused with RESOURCE_EXHAUSTED and told when to
# try again (`alpr capture watch` waits and resends).
frames_per_second = {NodeConfig.frames_per_second}
# Reads each camera that reads plates itself may send a second, on average, in bursts of
# up to one full call (100 reads); more are refused the same way.
reads_per_second = {NodeConfig.reads_per_second}

[patrol]
# A patrol stream with nothing to send sends a heartbeat this often.
heartbeat_seconds = {NodeConfig.heartbeat_seconds}
# Hits committed by another process serving this agency reach this one's streams at least
# this often (at once on PostgreSQL, which sends a NOTIFY); an account deactivated by
# another process has its open streams here ended at least as often (ACC-5).
poll_seconds = {NodeConfig.poll_seconds}
# An entry added to one of our lists is searched for among our reads of this many hours
# back; each read found raises a hit flagged retrospective.
retrospective_hours = {NodeConfig.retrospective_hours}

[access]
# Users log in (`alpr login`) and get a session bound to their certificate (ACC-3).
# Managing users always needs a system administrator's session. With require_login = true,
# every admin and patrol call needs a session too, checked against the roles of ACC-1, the
# training and yearly acknowledgement of ACC-2, and deactivation (ACC-4). false in this
# release so certificate-only clients keep working while agencies enrol their users.
require_login = {"true" if NodeConfig.require_login else "false"}
session_minutes = {NodeConfig.session_minutes}

[federation]
# Plate queries each partner may ask in any minute; more are refused (the uniform denial).
queries_per_minute = {NodeConfig.queries_per_minute}
"""
