"""The node's Ed25519 signing key: the one module that imports PyNaCl for signing.

The key signs hotlists, receipts and audit checkpoints. Its 32-byte seed lives in a
file of mode 0600 in the node's directory and never in the database (SEC-2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.exceptions
import nacl.signing

from node.errors import NodeError
from node.pki import write_secret


class SigningKeyError(NodeError):
    """The node's signing key file is missing or malformed."""


def fingerprint(public_key: bytes) -> str:
    """SHA-256 of a public key, hex, in groups of four for reading aloud."""
    digest = hashlib.sha256(public_key).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class Ed25519Signer:
    """Signs bytes with the node's Ed25519 key."""

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        """Wrap a PyNaCl signing key; use `generate` or `load` instead."""
        self._key = signing_key

    @classmethod
    def generate(cls, path: Path) -> Ed25519Signer:
        """Make a new key and write its seed, hex, to `path` (mode 0600)."""
        key = nacl.signing.SigningKey.generate()
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
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return bytes(self._key.verify_key)

    @property
    def fingerprint(self) -> str:
        """The public key's fingerprint, for checking out of band."""
        return fingerprint(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte detached signature of `data`."""
        return self._key.sign(data).signature
