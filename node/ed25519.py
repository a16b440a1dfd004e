"""PyNaCl's adapter: the one module that imports it.

The node's Ed25519 key signs hotlists, agreements, receipts and audit checkpoints; its
Curve25519 form opens sealed boxes addressed to the node. A `DataKey` (SecretBox)
encrypts hotlist fields at rest. Both keys live in files of mode 0600 in the node's
directory and never in the database (SEC-2). Users' passwords are kept only as argon2id
hashes (`hash_password`, `password_matches`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.pwhash.argon2id
import nacl.secret
import nacl.signing
import nacl.utils

from node.errors import NodeError
from node.pki import write_secret
from node.signing import Key, Signature, Signer, UnverifiedSignatureError, VerificationError

PUBLIC_KEY_BYTES = 32


class SigningKeyError(NodeError):
    """The node's signing key file is missing or malformed."""


class DecryptionError(NodeError):
    """Ciphertext that does not open: altered, truncated, or for another key."""


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

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt `plaintext` so only the holder of this key's private half can read it."""
        recipient = self._verify_key.to_curve25519_public_key()
        return bytes(nacl.public.SealedBox(recipient).encrypt(plaintext))

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
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(signing_key))[1]

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

    def unseal(self, ciphertext: bytes) -> bytes:
        """Open a box sealed to this key's public half (`Ed25519Key.seal`).

        Raises:
            DecryptionError: It was not sealed to us, or was altered.
        """
        box = nacl.public.SealedBox(self._key.to_curve25519_private_key())
        try:
            return bytes(box.decrypt(ciphertext))
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as error:
            raise DecryptionError("the sealed box does not open with this node's key") from error


class DataKey:
    """A symmetric key (XSalsa20-Poly1305 SecretBox) for encrypting data at rest or in transit."""

    SIZE = nacl.secret.SecretBox.KEY_SIZE

    def __init__(self, key: bytes) -> None:
        """Wrap 32 key bytes.

        Raises:
            DecryptionError: They are not 32 bytes.
        """
        if len(key) != self.SIZE:
            raise DecryptionError(f"a data key is {self.SIZE} bytes, not {len(key)}")
        self.key = key
        self._box = nacl.secret.SecretBox(key)

    @classmethod
    def generate(cls) -> DataKey:
        """A fresh random key."""
        return cls(nacl.utils.random(cls.SIZE))

    @classmethod
    def load_or_create(cls, path: Path) -> DataKey:
        """The key in `path`, made (mode 0600) if the file does not exist yet.

        Raises:
            SigningKeyError: The file exists but does not hold a 32-byte hex key.
        """
        if not path.exists():
            key = cls.generate()
            write_secret(path, key.key.hex().encode() + b"\n")
            return key
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except (ValueError, DecryptionError) as error:
            raise SigningKeyError(f"{path}: not a data key (64 hex digits)") from error

    def encrypt(self, plaintext: bytes) -> bytes:
        """Nonce and ciphertext, authenticated."""
        return bytes(self._box.encrypt(plaintext))

    def decrypt_many(self, ciphertexts: Iterable[bytes]) -> list[bytes]:
        """`decrypt` for many values, with less overhead per value (whole lists at a time).

        Raises:
            DecryptionError: One was altered or made with another key.
        """
        key, nonce_size = self.key, nacl.secret.SecretBox.NONCE_SIZE
        open_box = nacl.bindings.crypto_secretbox_open
        try:
            return [open_box(c[nonce_size:], c[:nonce_size], key) for c in ciphertexts]
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as error:
            raise DecryptionError("a ciphertext does not open with this key") from error

    def decrypt(self, ciphertext: bytes) -> bytes:
        """The plaintext of `encrypt`'s output.

        Raises:
            DecryptionError: It was altered or made with another key.
        """
        try:
            return bytes(self._box.decrypt(ciphertext))
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as error:
            raise DecryptionError("the ciphertext does not open with this key") from error


def hash_password(password: str) -> bytes:
    """An argon2id hash of `password`, salted, with libsodium's interactive cost (ACC-3).

    The result is the modular-crypt string ``$argon2id$v=19$m=...`` that names its own
    parameters, so raising the cost later leaves stored hashes checkable.
    """
    return bytes(nacl.pwhash.argon2id.str(password.encode()))


def password_matches(stored: bytes, password: str) -> bool:
    """Whether `password` is the one `stored` (from `hash_password`) was made from."""
    try:
        return bool(nacl.pwhash.argon2id.verify(stored, password.encode()))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False
