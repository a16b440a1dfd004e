"""Ed25519 with PyNaCl: the one module that imports it for signing.

The node's key signs hotlists, agreements, receipts and audit checkpoints. Its 32-byte
seed lives in a file of mode 0600 in the node's directory and never in the database
(SEC-2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.exceptions
import nacl.signing

from node.errors import NodeError
from node.pki import write_secret
from node.signing import Key, Signature, Signer, UnverifiedSignatureError, VerificationError

PUBLIC_KEY_BYTES = 32


class SigningKeyError(NodeError):
    """The node's signing key file is missing or malformed."""


def key_id(public_key: bytes) -> str:
    """The id of a public key: SHA-256 of its bytes, hex."""
    return hashlib.sha256(public_key).hexdigest()


def fingerprint(public_key: bytes) -> str:
    """The key id in groups of four hex digits, for reading aloud over the phone."""
    digest = key_id(public_key)
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class Ed25519Key(Key):
    """An Ed25519 public key."""

    def __init__(self, public_key: bytes) -> None:
        """Wrap 32 public key bytes.

        Raises:
            VerificationError: They are not 32 bytes.
        """
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise VerificationError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
        self._verify_key = nacl.signing.VerifyKey(public_key)
        self.public_bytes = public_key

    @property
    def key_id(self) -> str:
        """The hex SHA-256 of the public key."""
        return key_id(self.public_bytes)

    def verify_signature(self, signature: Signature, data: bytes) -> None:
        """Check `signature` over `data`.

        Raises:
            VerificationError: The signature names another key.
            UnverifiedSignatureError: The signature does not verify.
        """
        if signature.key_id != self.key_id:
            raise VerificationError(f"signature by key {signature.key_id}, not {self.key_id}")
        try:
            self._verify_key.verify(data, signature.signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as error:
            raise UnverifiedSignatureError("the Ed25519 signature does not verify") from error

    def __eq__(self, other: object) -> bool:
        """Keys are equal when their public bytes are."""
        return isinstance(other, Ed25519Key) and other.public_bytes == self.public_bytes

    def __hash__(self) -> int:
        """Hash of the public bytes."""
        return hash(self.public_bytes)


class Ed25519Signer(Signer):
    """Signs bytes with an Ed25519 private key."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        """Wrap a PyNaCl signing key; use `generate` or `load` instead."""
        self._key = signing_key
        self._public = Ed25519Key(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls, path: Path | None = None) -> Ed25519Signer:
        """Make a new key, writing its seed, hex, to `path` (mode 0600) when one is given."""
        key = nacl.signing.SigningKey.generate()
        if path is not None:
            write_secret(path, key.encode().hex().encode() + b"\n")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> Ed25519Signer:
        """Read a key written by `generate`.

        Raises:
            SigningKeyError: The file is missing or does not hold a 32-byte hex seed.
        """
        try:
            seed = bytes.fromhex(path.read_text().strip())
            return cls(nacl.signing.SigningKey(seed))
        except OSError as error:
            raise SigningKeyError(
                f"{path}: cannot read the signing key ({error.strerror})"
            ) from error
        except (ValueError, nacl.exceptions.ValueError, nacl.exceptions.TypeError) as error:
            raise SigningKeyError(f"{path}: not an Ed25519 seed (64 hex digits)") from error

    @property
    def public_key(self) -> Ed25519Key:
        """The key that checks this signer's signatures."""
        return self._public

    @property
    def fingerprint(self) -> str:
        """The public key's fingerprint, for checking out of band."""
        return fingerprint(self._public.public_bytes)

    def sign(self, data: bytes) -> Signature:
        """A detached signature of `data`."""
        return Signature(self._public.key_id, self._key.sign(data).signature)
