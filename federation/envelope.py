"""Signed envelopes (DSSE): the one way signed bytes travel between nodes.

An envelope holds payload bytes, the payload's type, and signatures over DSSE's
pre-authentication encoding (PAE) of type and payload. The receiver verifies the
exact bytes it received, for the type it expects, and only then parses them: nothing
is ever re-serialized to be checked. See https://github.com/secure-systems-lab/dsse.
Large data (a hotlist snapshot) is not signed whole: a signed manifest names each
chunk's digest (see `federation.hotlist_exchange`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from alpr.common.v1 import envelope_pb2
from federation.errors import InvalidEnvelopeError
from node.signing import Key, Signature, Signer, VerificationError, pae

MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
MAX_SIGNATURES = 4
"""The most signatures an envelope from the wire may carry: ours carry one, or two (an
agreement's parties). Each costs a pass over the payload to verify: unbounded, a partner's
single 4 MB request could hold the node's worker for a minute."""


_Message = TypeVar("_Message", bound=Message)


def parse_payload(message_type: type[_Message], payload: bytes) -> _Message:
    """Parse verified payload bytes as `message_type`.

    Raises:
        InvalidEnvelopeError: They are not a well-formed message of that type.
    """
    message = message_type()
    try:
        message.ParseFromString(payload)
    except DecodeError as error:
        name = message_type.DESCRIPTOR.name
        raise InvalidEnvelopeError(f"the signed payload is not a {name}") from error
    return message


@dataclass(frozen=True)
class Verified:
    """What a verification accepted: the payload and the keys whose signatures held."""

    payload: bytes
    keys: tuple[Key, ...]


@dataclass(frozen=True)
class Envelope:
    """A payload with its type and signatures."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    @classmethod
    def sign(cls, payload: bytes, payload_type: str, signer: Signer) -> Envelope:
        """Sign `payload` as a `payload_type`."""
        return cls(payload, payload_type, (signer.sign(pae(payload_type, payload)),))

    def add_signature(self, signer: Signer) -> Envelope:
        """The same envelope with `signer`'s signature added (a countersignature)."""
        signature = signer.sign(pae(self.payload_type, self.payload))
        return Envelope(self.payload, self.payload_type, (*self.signatures, signature))

    def verify(self, keys: Sequence[Key], threshold: int, payload_type: str) -> Verified:
        """Check that at least `threshold` of `keys` signed this payload as `payload_type`.

        Args:
            keys: The keys trusted to sign it.
            threshold: How many distinct keys must have signed.
            payload_type: The type the caller expects; any other is refused.

        Returns:
            The payload and the keys whose signatures verified.

        Raises:
            ValueError: `threshold` is not positive.
            InvalidEnvelopeError: The type differs, or fewer than `threshold` keys signed.
        """
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        if self.payload_type != payload_type:
            raise InvalidEnvelopeError(f"expected a {payload_type}, got a {self.payload_type}")
        signed = pae(payload_type, self.payload)
        by_id = {key.key_id: key for key in keys}
        accepted: dict[str, Key] = {}
        tried: set[str] = set()
        for signature in self.signatures:
            key = by_id.get(signature.key_id)
            if key is None or key.key_id in tried:
                continue  # each key is tried once: a second signature under it counts for none
            tried.add(key.key_id)
            try:
                key.verify_signature(signature, signed)
            except VerificationError:
                continue
            accepted[key.key_id] = key
        if len(accepted) < threshold:
            raise InvalidEnvelopeError(
                f"not enough valid signatures on the {payload_type}: "
                f"found {len(accepted)}, expected {threshold}"
            )
        return Verified(self.payload, tuple(accepted.values()))

    def to_proto(self) -> envelope_pb2.SignedEnvelope:
        """The envelope on the wire."""
        return envelope_pb2.SignedEnvelope(
            payload=self.payload,
            payload_type=self.payload_type,
            signatures=[
                envelope_pb2.EnvelopeSignature(key_id=s.key_id, signature=s.signature)
                for s in self.signatures
            ],
        )

    def to_bytes(self) -> bytes:
        """The envelope serialized, for storing."""
        return self.to_proto().SerializeToString()

    @classmethod
    def from_proto(cls, message: envelope_pb2.SignedEnvelope) -> Envelope:
        """An envelope received on the wire.

        Raises:
            InvalidEnvelopeError: It has no type, no signature, or more than `MAX_SIGNATURES`.
        """
        if not message.payload_type:
            raise InvalidEnvelopeError("the envelope has no payload type")
        if not message.signatures:
            raise InvalidEnvelopeError("the envelope has no signature")
        if len(message.signatures) > MAX_SIGNATURES:
            raise InvalidEnvelopeError(
                f"the envelope has {len(message.signatures)} signatures, over {MAX_SIGNATURES}"
            )
        signatures = tuple(Signature(s.key_id, s.signature) for s in message.signatures)
        return cls(message.payload, message.payload_type, signatures)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """An envelope stored by `to_bytes`.

        Raises:
            InvalidEnvelopeError: The bytes are not a well-formed envelope.
        """
        if len(data) > MAX_ENVELOPE_BYTES:
            raise InvalidEnvelopeError(f"the envelope exceeds {MAX_ENVELOPE_BYTES} bytes")
        message = envelope_pb2.SignedEnvelope()
        try:
            message.ParseFromString(data)
        except DecodeError as error:
            raise InvalidEnvelopeError("the envelope is not a SignedEnvelope") from error
        return cls.from_proto(message)
