"""Signing and verification behind two small interfaces, so no caller touches a crypto library.

Modelled on securesystemslib: a `Signer` makes a `Signature` over bytes; a `Key`
checks one, raising `UnverifiedSignatureError` when the signature is wrong and
`VerificationError` for anything else that stops the check. The Ed25519 adapter is
`node.ed25519`, the only module that imports PyNaCl.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from node.errors import NodeError


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes every signature covers.

    Binding the payload's type into what is signed means a signature over one kind of
    message (a hotlist, a session token) can never pass for another.
    """
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


class VerificationError(NodeError):
    """A signature could not be checked (wrong key id, malformed key or signature)."""


class UnverifiedSignatureError(VerificationError):
    """The signature does not verify: data or signature altered, or another key signed."""


@dataclass(frozen=True)
class Signature:
    """A detached signature and the id of the key that made it."""

    key_id: str
    signature: bytes


class Key(abc.ABC):
    """A public key that checks signatures."""

    @property
    @abc.abstractmethod
    def key_id(self) -> str:
        """The key's id: the hex SHA-256 of its public bytes."""

    @abc.abstractmethod
    def verify_signature(self, signature: Signature, data: bytes) -> None:
        """Check `signature` over `data`.

        Raises:
            VerificationError: The signature names another key id or is malformed.
            UnverifiedSignatureError: The signature does not verify.
        """


class Signer(abc.ABC):
    """A private key that signs."""

    @property
    @abc.abstractmethod
    def public_key(self) -> Key:
        """The key that checks this signer's signatures."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> Signature:
        """Sign `data`."""
