"""Signed evidence packages of the reads a legal hold keeps (RET-6): `alpr evidence`.

A package is one zip file: ``reads.json`` (each held read: plate, confidence, time,
place, camera, image hashes), the plate and vehicle images by content hash under
``images/``, ``manifest.json`` (the agency, the hold, when it was made, and the SHA-256
of every other file) and ``manifest.sig``, a DSSE envelope over the manifest's exact
bytes signed with the node's Ed25519 key. `verify_package` needs nothing but the file
and the agency's public key (from `alpr admin info`): it checks the signature, then
that every file named is present with its digest and nothing else is in the package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from federation.envelope import Envelope
from federation.errors import FederationError
from gateway.config import load_config
from gateway.errors import GatewayError
from gateway.node_dir import open_node
from node.ed25519 import Ed25519Key, Ed25519Signer
from node.errors import NotFoundError, ValidationError
from node.reads import ImageStore
from node.retention import holds_cover
from node.signing import VerificationError
from node.store.capture_models import LegalHoldRecord, ReadRecord
from node.store.models import utc

MANIFEST_TYPE = "application/vnd.alpr.evidence-manifest.v1+json"
MANIFEST, SIGNATURE, READS = "manifest.json", "manifest.sig", "reads.json"
EXIT_FAILS = 1


class EvidenceError(GatewayError):
    """An evidence package does not hold: bad signature, missing or altered file."""


@dataclass(frozen=True)
class Checked:
    """A package that verified: whose, which hold, how many reads."""

    ori: str
    hold_id: str
    case_number: str
    reads: int


def export_package(
    reads: list[ReadRecord],
    hold: LegalHoldRecord,
    *,
    ori: str,
    signer: Ed25519Signer,
    images: ImageStore,
    out: Path,
) -> int:
    """Write the package of `reads` kept by `hold` to `out`; how many reads."""
    files: dict[str, bytes] = {}
    listed = []
    for read in reads:
        listed.append(
            {
                "read_id": read.id,
                "plate": read.plate,
                "confidence": read.confidence,
                "captured_at": utc(read.captured_at).isoformat(),
                "camera_id": read.camera_id,
                "latitude": read.latitude,
                "longitude": read.longitude,
                "plate_image_sha256": read.plate_image_sha256,
                "vehicle_image_sha256": read.vehicle_image_sha256,
                # where in the frame the node found the plate; None for a camera's own read
                "box": None
                if read.box_x0 is None
                else [read.box_x0, read.box_y0, read.box_x1, read.box_y1],
            }
        )
        for digest in (read.plate_image_sha256, read.vehicle_image_sha256):
            if digest and images.path(digest).exists():
                image = images.path(digest).read_bytes()
                files[f"images/{digest}{_suffix(image)}"] = image
    files[READS] = json.dumps(listed, indent=2, sort_keys=True).encode()
    manifest = json.dumps(
        {
            "agency": ori,
            "hold": {
                "hold_id": hold.id,
                "case_number": hold.case_number,
                "plate": hold.plate,
                "since": utc(hold.since).isoformat(),
                "until": utc(hold.until).isoformat(),
                "reason": hold.reason,
                "investigator_contact": hold.investigator_contact,
                "supervisor_approval": hold.supervisor_approval,
            },
            "created_at": datetime.now(UTC).isoformat(),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        },
        indent=2,
        sort_keys=True,
    ).encode()
    signature = Envelope.sign(manifest, MANIFEST_TYPE, signer).to_bytes()
    partial = out.with_suffix(out.suffix + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in {**files, MANIFEST: manifest, SIGNATURE: signature}.items():
            package.writestr(name, data)
    partial.replace(out)
    return len(listed)


def verify_package(path: Path, public_key: bytes) -> Checked:
    """Check a package against the agency's public key.

    Raises:
        EvidenceError: It is not a package, the signature does not verify, or a file is
            missing, altered or extra.
    """
    try:
        with zipfile.ZipFile(path) as package:
            contents = {name: package.read(name) for name in package.namelist()}
    except (OSError, zipfile.BadZipFile) as error:
        raise EvidenceError(f"{path} is not an evidence package: {error}") from error
    try:
        envelope = Envelope.from_bytes(contents.pop(SIGNATURE, b""))
        manifest = envelope.verify([Ed25519Key(public_key)], 1, MANIFEST_TYPE).payload
    except (FederationError, VerificationError) as error:
        raise EvidenceError(f"the manifest's signature does not hold: {error}") from error
    if contents.pop(MANIFEST, None) != manifest:
        raise EvidenceError("manifest.json is not the manifest that was signed")
    parsed = json.loads(manifest)
    expected: dict[str, str] = parsed["files"]
    for name, digest in expected.items():
        if name not in contents:
            raise EvidenceError(f"{name} is missing")
        if hashlib.sha256(contents[name]).hexdigest() != digest:
            raise EvidenceError(f"{name} was altered")
    if extra := sorted(set(contents) - set(expected)):
        raise EvidenceError(f"files not in the manifest: {', '.join(extra)}")
    hold = parsed["hold"]
    return Checked(
        parsed["agency"], hold["hold_id"], hold["case_number"], len(json.loads(contents[READS]))
    )


def _export(args: argparse.Namespace) -> int:
    config = load_config(args.directory, os.environ)
    node = open_node(config, now=datetime.now(UTC))
    try:
        with Session(node.engine) as session:
            hold = session.get(LegalHoldRecord, args.hold)
            if hold is None:
                raise NotFoundError(f"no legal hold {args.hold!r}")
            hold.since, hold.until = utc(hold.since), utc(hold.until)
            candidates = session.exec(
                select(ReadRecord)
                .where(
                    col(ReadRecord.captured_at) >= hold.since,
                    col(ReadRecord.captured_at) < hold.until,
                )
                .order_by(col(ReadRecord.captured_at))
            ).all()
            held = [read for read in candidates if holds_cover([hold], read)]
        count = export_package(
            held, hold, ori=config.ori, signer=node.signer, images=ImageStore(config.images),
            out=args.out,
        )  # fmt: skip
    finally:
        node.engine.dispose()
    print(f"wrote {count} reads of legal hold {args.hold} (case {hold.case_number}) to {args.out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        key = bytes.fromhex(args.public_key)
    except ValueError as error:
        raise ValidationError("--public-key", "is not hex") from error
    try:
        checked = verify_package(args.file, key)
    except EvidenceError as error:
        print(f"evidence package does not hold: {error}")
        return EXIT_FAILS
    print(f"evidence package holds: {checked.reads} reads of {checked.ori}, legal hold "
          f"{checked.hold_id}, case {checked.case_number}, signed by the agency's key")  # fmt: skip
    return 0


def add_evidence_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alpr evidence export` and `alpr evidence verify`."""
    evidence = commands.add_parser("evidence", help="signed packages of held reads (RET-6)")
    actions = evidence.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="package the reads a legal hold keeps")
    export.add_argument("directory", type=Path, help="the node's directory")
    export.add_argument("--hold", required=True, help="the legal hold's id")
    export.add_argument("--out", type=Path, required=True, help="the package to write (.zip)")
    export.set_defaults(run=_export)
    check = actions.add_parser("verify", help="check a package, without the node's data")
    check.add_argument("file", type=Path, help="the package")
    check.add_argument("--public-key", required=True, help="the agency's signing key (hex)")
    check.set_defaults(run=_verify)


def _suffix(image: bytes) -> str:
    """The file suffix of a kept image: cameras send JPEG or PNG."""
    return ".png" if image.startswith(b"\x89PNG\r\n\x1a\n") else ".jpg"
