"""The node's Ed25519 key: signatures that verify, a seed kept in its 0600 file (SEC-2)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.ed25519 import DataKey, DecryptionError, Ed25519Key, Ed25519Signer, SigningKeyError
from node.signing import Signature, UnverifiedSignatureError, VerificationError


class TestSigner:
    def test_succeeds_signing_verifiably_after_a_reload(self, tmp_path: Path) -> None:
        path = tmp_path / "keys" / "signing.key"
        made = Ed25519Signer.generate(path)
        loaded = Ed25519Signer.load(path)
        assert loaded.public_key == made.public_key
        made.public_key.verify_signature(loaded.sign(b"hotlist"), b"hotlist")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert made.fingerprint.replace(":", "") == made.public_key.key_id

    @pytest.mark.parametrize(
        "content", ["", "zz" * 32, "ab" * 31], ids=["empty", "not hex", "short"]
    )
    def test_fails_on_a_malformed_key_file(self, tmp_path: Path, content: str) -> None:
        (tmp_path / "k").write_text(content)
        with pytest.raises(SigningKeyError, match="not an Ed25519 seed"):
            Ed25519Signer.load(tmp_path / "k")

    def test_fails_on_a_missing_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(SigningKeyError, match="cannot read"):
            Ed25519Signer.load(tmp_path / "absent")


class TestKey:
    def test_fails_on_altered_data(self) -> None:
        signer = Ed25519Signer.generate()
        with pytest.raises(UnverifiedSignatureError):
            signer.public_key.verify_signature(signer.sign(b"CA0194200"), b"CA0194201")

    def test_fails_on_another_signers_signature_under_our_key_id(self) -> None:
        ours, theirs = Ed25519Signer.generate(), Ed25519Signer.generate()
        forged = Signature(ours.public_key.key_id, theirs.sign(b"x").signature)
        with pytest.raises(UnverifiedSignatureError):
            ours.public_key.verify_signature(forged, b"x")

    def test_fails_on_a_signature_naming_another_key(self) -> None:
        ours, theirs = Ed25519Signer.generate(), Ed25519Signer.generate()
        with pytest.raises(VerificationError, match="signature by key"):
            ours.public_key.verify_signature(theirs.sign(b"x"), b"x")

    def test_fails_on_a_short_public_key(self) -> None:
        with pytest.raises(VerificationError, match="32 bytes"):
            Ed25519Key(b"short")


class TestSealing:
    def test_hot2_succeeds_sealing_to_a_node_only_it_can_open(self) -> None:
        recipient, other = Ed25519Signer.generate(), Ed25519Signer.generate()
        sealed = recipient.public_key.seal(b"snapshot key")
        assert recipient.unseal(sealed) == b"snapshot key"
        with pytest.raises(DecryptionError):
            other.unseal(sealed)

    def test_hot2_data_key_round_trips_and_refuses_tampering(self, tmp_path: Path) -> None:
        key = DataKey.load_or_create(tmp_path / "keys" / "data.key")
        assert DataKey.load_or_create(tmp_path / "keys" / "data.key").key == key.key
        assert stat.S_IMODE((tmp_path / "keys" / "data.key").stat().st_mode) == 0o600
        ciphertext = key.encrypt(b"reason: armed and dangerous")
        assert b"armed" not in ciphertext
        assert key.decrypt(ciphertext) == b"reason: armed and dangerous"
        tampered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
        with pytest.raises(DecryptionError):
            key.decrypt(tampered)
        with pytest.raises(DecryptionError):
            DataKey.generate().decrypt(ciphertext)
