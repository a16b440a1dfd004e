"""`alpr audit` commands: check a node's audit log, and prove an event is in it (AUD-5).

`verify` and `prove` read the node's database from its directory; no running node is
needed. `prove` writes a JSON proof that `check-proof` checks with nothing else: the
event's canonical bytes (`node.audit.leaf_bytes`, base64), its leaf index, the tree
size, the inclusion path (hex) and the root (hex). An auditor passes ``--root`` with a
root obtained elsewhere (a checkpoint the node signed, a partner's copy), so that the
root in the file itself need not be trusted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from federation.peers import PeerRegistry
from federation.witness import witness_verifier
from gateway.cli_admin import parse_moment
from gateway.config import load_config
from gateway.node_dir import open_node
from node.audit import AuditLog, AuditLogError, leaf_bytes
from node.audit_checkpoints import CheckpointStore
from node.audit_proofs import InclusionProof
from node.checkpoint import Checkpoint, NoteVerifier, log_origin
from node.clock import system_clock
from node.errors import NodeError, ValidationError
from node.merkle import HASH_SIZE, MerkleError, leaf_hash
from node.oversight import (
    PublicSummary,
    TrainingRow,
    access_summary,
    query_sample,
    summarize,
    training_report,
)
from node.store.models import AuditEvent
from node.users import UserDirectory

EXIT_FAILS = 1
PROOF_FORMAT = "alpr-audit-inclusion-proof/v1"
_T = TypeVar("_T")


class _ProofFileError(NodeError):
    """A proof file does not hold a well-formed proof, or the event in it is not the one proved."""


@dataclass(frozen=True)
class _Site:
    """A node's audit log, the checkpoints it signed, and its partners' witness keys."""

    ori: str
    log: AuditLog
    checkpoints: CheckpointStore
    peers: PeerRegistry
    users: UserDirectory

    def witnesses(self) -> dict[str, NoteVerifier]:
        """Each registered partner's witness key, by ORI."""
        return {peer.ori: witness_verifier(peer) for peer in self.peers.every()}


def _with_log(directory: Path, action: Callable[[_Site], _T]) -> _T:
    """Open the node in `directory` and run `action` on its audit log and checkpoints."""
    config = load_config(directory, os.environ)
    node = open_node(config, now=datetime.now(UTC))
    checkpoints = CheckpointStore(
        node.engine,
        signer=node.signer,
        origin=log_origin(config.federation, config.ori),
        clock=system_clock,
    )
    site = _Site(
        config.ori,
        AuditLog(node.engine, clock=system_clock),
        checkpoints,
        PeerRegistry(node.engine, clock=system_clock),
        UserDirectory(node.engine, clock=system_clock),
    )
    try:
        return action(site)
    finally:
        node.engine.dispose()


def _verify(args: argparse.Namespace) -> int:
    def check(site: _Site) -> int:
        try:
            head = site.log.head()
            site.log.verify()
            signed = site.checkpoints.verify(site.log, site.witnesses())
        except AuditLogError as error:
            where = "" if error.seq is None else f" (first bad event: {error.seq})"
            print(f"audit log fails{where}: {error}")
            return EXIT_FAILS
        print(f"tree size {head.size}, root {head.root.hex()}: ok")
        print(f"{signed} signed checkpoints and partners' cosignatures hold")
        return 0

    return _with_log(args.directory, check)


def _checkpoint(args: argparse.Namespace) -> int:
    note = _with_log(args.directory, lambda site: site.checkpoints.latest())
    if note is None:
        print("the node has signed no checkpoint yet (the scheduler signs one every 10 minutes)")
        return EXIT_FAILS
    print(note.decode(), end="")
    return 0


def _prove(args: argparse.Namespace) -> int:
    def prove(site: _Site) -> dict[str, object]:
        proof = site.log.inclusion_proof(args.seq, args.size)
        [event] = site.log.events(after_seq=args.seq - 1, limit=1)
        data = leaf_bytes(event)
        if leaf_hash(data) != proof.leaf_hash:
            raise AuditLogError(
                f"audit event {args.seq} was altered: its fields do not match its leaf hash",
                seq=args.seq,
            )
        return {
            "format": PROOF_FORMAT,
            "event": base64.b64encode(data).decode("ascii"),
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "hashes": [value.hex() for value in proof.hashes],
            "root": proof.root.hex(),
        }

    text = json.dumps(_with_log(args.directory, prove), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    _write(args.out, text, "--out")
    print(f"wrote the proof of event {args.seq} to {args.out}")
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    root = None if args.root is None else _hash_arg(args.root)
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError("FILE", f"cannot read {args.file}: {error}") from error
    try:
        data, proof = _read_proof(text)
        proof.verify(root)
        seq = _event_seq(data)
        if seq != proof.seq:
            raise _ProofFileError(f"the event is number {seq}, not {proof.seq} as its index says")
    except (_ProofFileError, MerkleError) as error:
        print(f"proof does not hold: {error}")
        return EXIT_FAILS
    against = "the root given" if root is not None else "the root in the file"
    print(
        f"proof holds: event {proof.seq} is in the tree of size {proof.tree_size} "
        f"with root {(root or proof.root).hex()} ({against})"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    since, until = parse_moment(args.since, "--since"), parse_moment(args.until, "--until")

    def summarize_site(site: _Site) -> tuple[PublicSummary, Checkpoint]:
        note = site.checkpoints.sign(site.log.head())
        summary = summarize(site.log, ori=site.ori, since=since, until=until, checkpoint=note)
        return summary, site.checkpoints.open(note)

    summary, checkpoint = _with_log(args.directory, summarize_site)
    for path, text in ((args.csv, summary.to_csv()), (args.json, summary.to_json())):
        if path is not None:
            _write(path, text, "--csv" if path is args.csv else "--json")
    print(summary.to_text(checkpoint))
    return 0


def _period(args: argparse.Namespace) -> tuple[datetime, datetime]:
    return parse_moment(args.since, "--since"), parse_moment(args.until, "--until")


def _access(args: argparse.Namespace) -> int:
    since, until = _period(args)
    rows = _with_log(
        args.directory, lambda site: access_summary(site.log, since=since, until=until)
    )
    table = [
        (row.actor, row.searches, row.refused_searches, row.logins, row.refused_logins,
         "; ".join(f"{purpose}: {count}" for purpose, count in sorted(row.purposes.items())))
        for row in rows
    ]  # fmt: skip
    header = ("user", "searches", "refused searches", "logins", "refused logins", "purposes")
    if args.csv is not None:
        _write(args.csv, _csv([header, *table]), "--csv")
    print(f"Access summary, {since:%Y-%m-%d} to {until:%Y-%m-%d} (AUD-4): {len(rows)} users")
    for row in table:
        print(f"  {row[0]}: {row[1]} searches ({row[5] or 'none'}), {row[2]} refused; "
              f"{row[3]} logins, {row[4]} refused")  # fmt: skip
    return 0


def _training(args: argparse.Namespace) -> int:
    def report(site: _Site) -> list[TrainingRow]:
        now = datetime.now(UTC)
        return training_report(site.users.every(), year=args.year, reference_time=now)

    rows = _with_log(args.directory, report)
    header = ("user", "roles", "trained", "acknowledged", "acknowledgement lapses", "current",
              "blocked by")  # fmt: skip
    table = [
        (r.name, " ".join(r.roles), _day(r.trained_at), _day(r.acknowledged_at),
         _day(r.acknowledgement_expires_at), "yes" if r.current_in_year else "NO",
         " ".join(r.blocks))
        for r in rows
    ]  # fmt: skip
    if args.csv is not None:
        _write(args.csv, _csv([header, *table]), "--csv")
    current = sum(r.current_in_year for r in rows)
    print(f"Training and policy acknowledgement, {args.year} (AUD-4, ACC-2): "
          f"{current} of {len(rows)} users current")  # fmt: skip
    for row in table:
        print("  " + "  ".join(str(cell) for cell in row))
    return 0


def _day(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment else "-"


def _sample(args: argparse.Namespace) -> int:
    since, until = _period(args)

    def draw(site: _Site) -> tuple[str, list[AuditEvent]]:
        seed = args.seed or site.checkpoints.open(site.checkpoints.sign(site.log.head())).root.hex()
        events = query_sample(site.log, since=since, until=until, size=args.size, seed=seed)
        return seed, events

    seed, events = _with_log(args.directory, draw)
    header = ("seq", "time", "user", "kind", "purpose", "case")
    table = [
        (e.seq, f"{e.recorded_at:%Y-%m-%d %H:%M}", e.actor, e.kind, e.purpose, e.case_number)
        for e in events
    ]
    if args.csv is not None:
        _write(args.csv, _csv([header, *table]), "--csv")
    print(f"Random sample of {len(events)} queries for review (AUD-3), seed {seed}:")
    for row in table:
        print("  " + "  ".join(str(cell) for cell in row))
    return 0


def _csv(rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _write(path: Path, text: str, field: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ValidationError(field, f"cannot write {path}: {error.strerror}") from error


def _hash_arg(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError as error:
        raise ValidationError("--root", "is not hex") from error
    if len(value) != HASH_SIZE:
        raise ValidationError("--root", f"is {len(value)} bytes, not {HASH_SIZE}")
    return value


def _read_proof(text: str) -> tuple[bytes, InclusionProof]:
    """The event bytes and the proof a file written by `alpr audit prove` holds.

    Raises:
        _ProofFileError: The text is not such a file.
    """
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _ProofFileError(f"the file is not JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != PROOF_FORMAT:
        raise _ProofFileError(f"the file is not a JSON object of format {PROOF_FORMAT}")
    index, size = _integer(document, "leaf_index"), _integer(document, "tree_size")
    hashes = document.get("hashes")
    if not isinstance(hashes, list):
        raise _ProofFileError("hashes: not a list")
    try:
        data = base64.b64decode(_string(document, "event"), validate=True)
    except binascii.Error as error:
        raise _ProofFileError(f"event: not base64 ({error})") from error
    return data, InclusionProof(
        seq=index + 1,
        leaf_index=index,
        tree_size=size,
        leaf_hash=leaf_hash(data),
        hashes=tuple(_hex(value, "hashes") for value in hashes),
        root=_hex(document.get("root"), "root"),
    )


def _event_seq(data: bytes) -> object:
    """The ``seq`` an event's canonical bytes name, or None where they name none.

    Raises:
        _ProofFileError: The bytes are not JSON.
    """
    try:
        event = json.loads(data)
    except ValueError as error:
        raise _ProofFileError("event: not the canonical JSON of an audit event") from error
    return event.get("seq") if isinstance(event, dict) else None


def _integer(document: dict[str, object], key: str) -> int:
    value = document.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ProofFileError(f"{key}: not an integer")
    return value


def _string(document: dict[str, object], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise _ProofFileError(f"{key}: not a string")
    return value


def _hex(value: object, key: str) -> bytes:
    if not isinstance(value, str):
        raise _ProofFileError(f"{key}: {value!r} is not a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as error:
        raise _ProofFileError(f"{key}: {value!r} is not hex") from error


def add_audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit` and its `verify`, `checkpoint`, `prove`, `summary`, `check-proof`."""
    audit = commands.add_parser("audit", help="the node's tamper-evident audit log")
    actions = audit.add_subparsers(dest="action", required=True)

    verify = actions.add_parser(
        "verify", help="recompute the tree from the stored events; name the first bad one"
    )
    verify.add_argument("directory", type=Path, help="the node's directory")
    verify.set_defaults(run=_verify)

    latest = actions.add_parser(
        "checkpoint", help="print the latest checkpoint the node signed (C2SP signed note)"
    )
    latest.add_argument("directory", type=Path, help="the node's directory")
    latest.set_defaults(run=_checkpoint)

    prove = actions.add_parser("prove", help="write an inclusion proof of one event")
    prove.add_argument("directory", type=Path, help="the node's directory")
    prove.add_argument("--seq", type=int, required=True, help="the event's number, from 1")
    prove.add_argument("--size", type=int, help="the tree size to prove it in (default: all)")
    prove.add_argument("--out", type=Path, help="write the proof here (default: print it)")
    prove.set_defaults(run=_prove)

    summary = actions.add_parser(
        "summary",
        help="the redacted public summary of a period, pinned to a signed checkpoint (AUD-4)",
    )
    summary.add_argument("directory", type=Path, help="the node's directory")
    summary.add_argument("--since", required=True, help="start of the period (ISO 8601, UTC)")
    summary.add_argument("--until", required=True, help="end of the period, excluded")
    summary.add_argument("--csv", type=Path, help="also write the counts as CSV here")
    summary.add_argument("--json", type=Path, help="also write the summary as JSON here")
    summary.set_defaults(run=_summary)

    access = actions.add_parser(
        "access", help="each user's searches, refusals and logins in a period (AUD-4)"
    )
    sample = actions.add_parser(
        "sample", help="a reproducible random sample of user queries for review (AUD-3)"
    )
    for command in (access, sample):
        command.add_argument("directory", type=Path, help="the node's directory")
        command.add_argument("--since", required=True, help="start of the period (ISO 8601)")
        command.add_argument("--until", required=True, help="end of the period, excluded")
        command.add_argument("--csv", type=Path, help="also write it as CSV here")
    sample.add_argument("--size", type=int, default=25, help="how many queries (default 25)")
    sample.add_argument(
        "--seed", help="the draw's seed (default: the root of a checkpoint signed now)"
    )
    training = actions.add_parser(
        "training", help="each user's training and policy acknowledgement in a year (AUD-4)"
    )
    training.add_argument("directory", type=Path, help="the node's directory")
    training.add_argument("--year", type=int, required=True)
    training.add_argument("--csv", type=Path, help="also write it as CSV here")
    training.set_defaults(run=_training)
    access.set_defaults(run=_access)
    sample.set_defaults(run=_sample)

    check = actions.add_parser(
        "check-proof", help="check a proof from `alpr audit prove`, without the node's data"
    )
    check.add_argument("file", type=Path, help="the proof file")
    check.add_argument("--root", help="the root to check against (hex), e.g. from a checkpoint")
    check.set_defaults(run=_check_proof)
