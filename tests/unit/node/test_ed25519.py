"""The node's signing key stays in its own 0600 file (SEC-2)."""

from __future__ import annotations

import stat
from pathlib import Path

import nacl.signing
import pytest

from node.ed25519 import Ed25519Signer, SigningKeyError


class TestSigner:
    def test_succeeds_signing_verifiably_after_a_reload(self, tmp_path: Path) -> None:
        path = tmp_path / "keys" / "signing.key"
        made = Ed25519Signer.generate(path)
        loaded = Ed25519Signer.load(path)
        assert loaded.public_key == made.public_key
        signature = loaded.sign(b"hotlist")
        nacl.signing.VerifyKey(made.public_key).verify(b"hotlist", signature)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(made.fingerprint.replace(":", "")) == 64

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
