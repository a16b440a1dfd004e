"""Signed checkpoints of the audit log: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint commits to the audit log's tree head (AUD-5); the node signs it, and
partners cosign it after checking a consistency proof (AUD-7). The formats are
followed exactly, so any note or checkpoint tool reads ours and we read theirs:

- tlog-checkpoint, https://c2sp.org/tlog-checkpoint (C2SP/C2SP ``tlog-checkpoint.md`` at
  2793893976c835db049c194d8f2c4f946dcb70ba): origin line, decimal tree size, base64
  root hash, optional non-empty extension lines, each ending in a newline.
- signed-note, https://c2sp.org/signed-note (C2SP/C2SP ``signed-note.md`` at
  055287621bf3cd13ff4394418a3e8efc2d5e8ed7): the text, a blank line, then lines
  ``— <key name> base64(key ID || signature)``; Ed25519 key ID =
  SHA-256(name || 0x0A || 0x01 || public key)[:4]; unknown keys are ignored.
- The verifier key ``<name>+<hex key ID>+base64(0x01 || public key)`` and the
  parsing rules are golang.org/x/mod's ``sumdb/note/note.go`` (golang/mod at
  605edab4323bfdf06a0d8ac68b4b18e9e0df249b), including its cap of 100 signatures.

We are stricter than note.go in two places: base64 must be canonical (so a signature
line has one spelling), and every signature by a known key is checked, not only the
first. Nothing is parsed as a checkpoint before its note verifies (`open_checkpoint`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from node.audit import AuditLog
from node.ed25519 import Ed25519Key, Ed25519Signer
from node.errors import NodeError
from node.identity import validate_federation, validate_ori
from node.merkle import HASH_SIZE
from node.signing import Signature, VerificationError

ED25519_TYPE = b"\x01"
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 2**64 - 1
_DASH = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")


class CheckpointError(NodeError):
    """A checkpoint or signed note that is malformed, unsigned, or signed wrongly."""


def log_origin(federation: str, ori: str) -> str:
    """The origin (and note key name) of an agency's audit log: ``<federation>/agency/<ORI>/audit``.

    Raises:
        ValidationError: `federation` is not a trust domain or `ori` not an ORI.
    """
    return f"{validate_federation(federation)}/agency/{validate_ori(ori)}/audit"


def witness_name(federation: str, ori: str) -> str:
    """The key name an agency cosigns partners' checkpoints under: ``…/agency/<ORI>/witness``.

    Raises:
        ValidationError: `federation` is not a trust domain or `ori` not an ORI.
    """
    return f"{validate_federation(federation)}/agency/{validate_ori(ori)}/witness"


@dataclass(frozen=True)
class Checkpoint:
    """An audit log's origin, tree size and root, with optional extension lines.

    Raises:
        CheckpointError: A field cannot be written as a tlog-checkpoint line.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse what the checkpoint format cannot carry."""
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line or _CONTROL.search(line):
                raise CheckpointError(f"the origin and extensions are non-empty lines: {line!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"the tree size must be 0 to 2^64-1, not {self.size!r}")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"the root hash is {HASH_SIZE} bytes, not {len(self.root)}")

    def body(self) -> bytes:
        """The note text that gets signed: one line per field, each ending in a newline."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = (self.origin, str(self.size), root, *self.extensions)
        return "".join(f"{line}\n" for line in lines).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Read a checkpoint body, already verified (see `open_checkpoint`).

        Raises:
            CheckpointError: It is not UTF-8, lacks a line, has a size that is not
                plain decimal, or a root that is not canonical base64 of 32 bytes.
        """
        text = _text(body, "the checkpoint")
        if not text.endswith("\n"):
            raise CheckpointError("the checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:  # origin, size, root
            raise CheckpointError(f"the checkpoint has {len(lines)} lines, not 3 or more")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise CheckpointError(f"the tree size {size!r} is not a decimal number")
        return cls(origin, int(size), _b64decode(root, "the root hash"), tuple(extensions))


def _key_hash(name: str, public_key: Ed25519Key) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key.public_bytes)
    return int.from_bytes(digest.digest()[:4], "big")


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() or c < " " for c in name):
        raise CheckpointError(f"a key name is non-empty, without spaces or '+', not {name!r}")
    return name


@dataclass(frozen=True)
class NoteVerifier:
    """A named Ed25519 public key that checks note signatures; equal when name and key are.

    Attributes:
        name: The key name in signature lines (for our log, its origin).
        public_key: The Ed25519 key.
        key_hash: The 32-bit key ID, computed from the two.

    Raises:
        CheckpointError: The name is empty or holds a space, '+' or control character.
    """

    name: str
    public_key: Ed25519Key
    key_hash: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        """Check the name and compute the key ID."""
        object.__setattr__(self, "key_hash", _key_hash(_check_name(self.name), self.public_key))

    def to_verifier_string(self) -> str:
        """The key as ``<name>+<hex key ID>+<base64(0x01 || key)>``, golang's verifier key."""
        key = base64.b64encode(ED25519_TYPE + self.public_key.public_bytes).decode("ascii")
        return f"{self.name}+{self.key_hash:08x}+{key}"

    @classmethod
    def from_verifier_string(cls, text: str) -> NoteVerifier:
        """Read `to_verifier_string`'s form (or golang's ``note.NewVerifier``'s).

        Raises:
            CheckpointError: It is malformed, not Ed25519, or its key ID is wrong.
        """
        name, _, rest = text.partition("+")
        key_id, _, key64 = rest.partition("+")
        if not _HEX_ID.fullmatch(key_id):
            raise CheckpointError(f"{text!r} is not <name>+<8 hex digits>+<base64 key>")
        key = _b64decode(key64, "the verifier key")
        if key[:1] != ED25519_TYPE or len(key) != 1 + HASH_SIZE:
            raise CheckpointError(f"{text!r} is not an Ed25519 verifier key")
        verifier = cls(name, Ed25519Key(key[1:]))
        if verifier.key_hash != int(key_id, 16):
            raise CheckpointError(f"{text!r}: the key ID should be {verifier.key_hash:08x}")
        return verifier


class NoteSigner:
    """A named Ed25519 signer of notes; its `verifier` checks what it signs."""

    def __init__(self, name: str, signer: Ed25519Signer) -> None:
        """Name a signing key (for our log, `log_origin`).

        Raises:
            CheckpointError: The name is empty or holds a space, '+' or control character.
        """
        self.verifier = NoteVerifier(name, signer.public_key)
        self._signer = signer

    def signature_line(self, text: bytes) -> str:
        """The line ``— <name> base64(key ID || signature of text)``, with its newline."""
        raw = self.verifier.key_hash.to_bytes(4, "big") + self._signer.sign(text).signature
        return f"{_DASH}{self.verifier.name} {base64.b64encode(raw).decode('ascii')}\n"


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_hash: int
    signature: bytes
    line: str


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """A signed note: `text`, a blank line, and one signature line per signer.

    Raises:
        CheckpointError: There is no signer, or `text` does not end in a newline, is
            not UTF-8, or holds a control character other than newline.
    """
    if not text.endswith(b"\n"):
        raise CheckpointError("the note text must end in a newline")
    return add_signatures(text + b"\n", signers)


def add_signatures(note: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """`note` with the signers' signatures appended, replacing any of theirs it held.

    This is how a witness cosigns; it checks nothing, so open the note first.

    Raises:
        CheckpointError: There is no signer, or `note` is malformed.
    """
    if not signers:
        raise CheckpointError("a note needs at least one signer")
    text, lines = _split(note, require_signatures=False)
    replaced = {(s.verifier.name, s.verifier.key_hash) for s in signers}
    kept = [line.line for line in lines if (line.name, line.key_hash) not in replaced]
    new = [signer.signature_line(text) for signer in signers]
    return text + b"\n" + "".join(kept + new).encode("utf-8")


def open_note(
    note: bytes, verifiers: Sequence[NoteVerifier], threshold: int = 1
) -> tuple[bytes, tuple[str, ...]]:
    """Verify a signed note: its text, and the names of the known keys that signed it.

    Signatures by unknown keys (name and key ID not both known) are ignored, as the
    spec requires; one key signing twice counts once.

    Raises:
        CheckpointError: The note is malformed, a signature by a known key does not
            verify, fewer than `threshold` known keys signed, or `threshold` < 1.
    """
    text, signed = _verified(note, verifiers, threshold)
    return text, tuple(verifier.name for verifier in signed)


def open_checkpoint(
    note: bytes,
    origin: str,
    log: NoteVerifier,
    cosigners: Sequence[NoteVerifier] = (),
    threshold: int = 0,
) -> tuple[Checkpoint, tuple[str, ...]]:
    """Verify a checkpoint of the log `origin`, signed by the log and by cosigners.

    Args:
        note: The signed checkpoint.
        origin: The log's origin, which the checkpoint must name (for ours, `log_origin`).
        log: The log's key (for ours, named by its origin as tlog-checkpoint advises).
        cosigners: Witnesses' keys (partner agencies).
        threshold: How many of `cosigners` must have signed.

    Returns:
        The checkpoint and the names of the cosigners that signed it.

    Raises:
        CheckpointError: The note does not verify (see `open_note`), the log did not
            sign it, too few cosigners did, or the body is not a checkpoint of `origin`.
    """
    text, signed = _verified(note, [log, *cosigners], 1)
    if log not in signed:
        raise CheckpointError(f"the checkpoint is not signed by its log {log.name}")
    cosigned = tuple(verifier.name for verifier in signed if verifier != log)
    if len(cosigned) < threshold:
        raise CheckpointError(
            f"the checkpoint has {len(cosigned)} cosignatures, {threshold} needed"
        )
    checkpoint = Checkpoint.parse(text)
    if checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint's origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint, cosigned


def checkpoint_for(audit_log: AuditLog, origin: str) -> Checkpoint:
    """The checkpoint of `audit_log`'s current head (`AuditLog.head`).

    Raises:
        AuditLogError: The store has no audit head, or a malformed one.
        CheckpointError: `origin` is not one non-empty line.
    """
    head = audit_log.head()
    return Checkpoint(origin, head.size, head.root)


def _verified(
    note: bytes, verifiers: Sequence[NoteVerifier], threshold: int
) -> tuple[bytes, list[NoteVerifier]]:
    """The note's text and the known keys whose signatures verify, at least `threshold`."""
    if threshold < 1:
        raise CheckpointError(f"the threshold must be 1 or more, not {threshold}")
    text, lines = _split(note, require_signatures=True)
    known = {(v.name, v.key_hash): v for v in verifiers}
    signed: list[NoteVerifier] = []
    for line in lines:
        verifier = known.get((line.name, line.key_hash))
        if verifier is None:
            continue
        key = verifier.public_key
        try:
            key.verify_signature(Signature(key.key_id, line.signature), text)
        except VerificationError as error:
            raise CheckpointError(
                f"the signature by {line.name}+{line.key_hash:08x} does not verify"
            ) from error
        if verifier not in signed:
            signed.append(verifier)
    if len(signed) < threshold:
        raise CheckpointError(f"the note is signed by {len(signed)} known keys, {threshold} needed")
    return text, signed


def _text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{what} is not UTF-8") from error
    if _CONTROL.search(text):
        raise CheckpointError(f"{what} holds a control character other than newline")
    return text


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as error:
        raise CheckpointError(f"{what} is not base64: {text!r}") from error
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64: {text!r}")
    return raw


def _split(note: bytes, *, require_signatures: bool) -> tuple[bytes, list[_SignatureLine]]:
    """The text of a note and its parsed signature lines, per signed-note's format."""
    _text(note, "the note")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :].decode("utf-8")
    if not block and not require_signatures:
        return text, []
    if not block.endswith("\n"):
        raise CheckpointError("the note has no signature lines, or its last lacks a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"the note has {len(lines)} signatures, over {MAX_SIGNATURES}")
    parsed = []
    for line in lines:
        name, _, sig64 = line.removeprefix(_DASH).partition(" ")
        if not line.startswith(_DASH) or not sig64:
            raise CheckpointError(f"not a signature line: {line!r}")
        _check_name(name)
        raw = _b64decode(sig64, f"the signature by {name}")
        if len(raw) < 5:  # a key ID and one byte or more
            raise CheckpointError(f"the signature by {name} is too short")
        parsed.append(_SignatureLine(name, int.from_bytes(raw[:4], "big"), raw[4:], f"{line}\n"))
    return text, parsed
