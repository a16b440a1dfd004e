"""Signed envelopes: DSSE's encoding, and the ways a signature must fail (HOT-7, SHR-6)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from federation.envelope import Envelope
from federation.errors import InvalidEnvelopeError
from node.ed25519 import Ed25519Signer
from node.signing import Signature, pae

AGREEMENT = "application/vnd.alpr.agreement-terms.v1+protobuf"
HOTLIST = "application/vnd.alpr.hotlist.v1+protobuf"
LAPD, LASD, STRANGER = (Ed25519Signer.generate() for _ in range(3))


class TestPae:
    def test_succeeds_on_the_dsse_spec_example(self) -> None:
        # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md (test vector)
        assert (
            pae("http://example.com/HelloWorld", b"hello world")
            == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        )


class TestVerify:
    def test_succeeds_returning_the_exact_payload_and_keys(self) -> None:
        envelope = Envelope.sign(b"\x00terms\xff", AGREEMENT, LAPD)
        verified = envelope.verify([LAPD.public_key], 1, AGREEMENT)
        assert verified.payload == b"\x00terms\xff"
        assert verified.keys == (LAPD.public_key,)

    def test_succeeds_with_both_parties_signatures(self) -> None:
        envelope = Envelope.sign(b"terms", AGREEMENT, LAPD).add_signature(LASD)
        verified = envelope.verify([LAPD.public_key, LASD.public_key], 2, AGREEMENT)
        assert set(verified.keys) == {LAPD.public_key, LASD.public_key}

    def test_hot7_fails_on_an_altered_payload(self) -> None:
        envelope = replace(Envelope.sign(b"CA0194200", HOTLIST, LAPD), payload=b"CA0194201")
        with pytest.raises(InvalidEnvelopeError, match="found 0, expected 1"):
            envelope.verify([LAPD.public_key], 1, HOTLIST)

    def test_fails_when_a_signature_is_presented_as_another_type(self) -> None:
        signed_as_hotlist = Envelope.sign(b"payload", HOTLIST, LAPD)
        relabelled = replace(signed_as_hotlist, payload_type=AGREEMENT)
        with pytest.raises(InvalidEnvelopeError, match="found 0"):
            relabelled.verify([LAPD.public_key], 1, AGREEMENT)
        with pytest.raises(InvalidEnvelopeError, match="expected a"):
            signed_as_hotlist.verify([LAPD.public_key], 1, AGREEMENT)

    def test_hot7_fails_when_signed_by_an_untrusted_key(self) -> None:
        envelope = Envelope.sign(b"list", HOTLIST, STRANGER)
        with pytest.raises(InvalidEnvelopeError):
            envelope.verify([LAPD.public_key], 1, HOTLIST)

    def test_fails_when_one_key_signs_twice_for_a_threshold_of_two(self) -> None:
        envelope = Envelope.sign(b"terms", AGREEMENT, LAPD).add_signature(LAPD)
        with pytest.raises(InvalidEnvelopeError, match="found 1, expected 2"):
            envelope.verify([LAPD.public_key, LASD.public_key], 2, AGREEMENT)

    def test_fails_on_a_forged_signature_under_a_trusted_key_id(self) -> None:
        forged = Signature(LAPD.public_key.key_id, STRANGER.sign(pae(HOTLIST, b"x")).signature)
        with pytest.raises(InvalidEnvelopeError):
            Envelope(b"x", HOTLIST, (forged,)).verify([LAPD.public_key], 1, HOTLIST)

    def test_tries_each_key_once_however_many_signatures_name_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each verification hashes the payload: repeats of a bad one must not each cost one."""
        forged = Signature(LAPD.public_key.key_id, STRANGER.sign(pae(HOTLIST, b"x")).signature)
        tried: list[bytes] = []
        verify = type(LAPD.public_key).verify_signature

        def counted(key: object, signature: Signature, signed: bytes) -> None:
            tried.append(signature.signature)
            verify(key, signature, signed)  # type: ignore[arg-type]

        monkeypatch.setattr(type(LAPD.public_key), "verify_signature", counted)
        with pytest.raises(InvalidEnvelopeError):
            Envelope(b"x", HOTLIST, (forged,) * 3).verify([LAPD.public_key], 1, HOTLIST)
        assert len(tried) == 1

    def test_fails_on_a_threshold_that_is_not_positive(self) -> None:
        with pytest.raises(ValueError, match="threshold"):
            Envelope.sign(b"x", HOTLIST, LAPD).verify([LAPD.public_key], 0, HOTLIST)


class TestWire:
    @given(st.binary(max_size=512), st.text(min_size=1, max_size=80))
    @example(b"", "t")
    @example(b"DSSEv1 1 x 1 y", "application/vnd.alpr.receipt.v1+protobuf")
    def test_succeeds_round_tripping_and_still_verifying(self, payload: bytes, kind: str) -> None:
        envelope = Envelope.sign(payload, kind, LAPD)
        parsed = Envelope.from_bytes(envelope.to_bytes())
        assert parsed == envelope
        assert parsed.verify([LAPD.public_key], 1, kind).payload == payload

    @pytest.mark.parametrize(
        "data",
        [
            b"\xff\xff\xff",
            Envelope(b"x", "", ()).to_bytes(),
            Envelope(b"x", HOTLIST, ()).to_bytes(),
            Envelope.sign(b"x", HOTLIST, LAPD)
            .add_signature(LASD)
            .add_signature(STRANGER)
            .add_signature(LAPD)
            .add_signature(LASD)
            .to_bytes(),
        ],
        ids=["garbage", "no type", "no signature", "too many signatures"],
    )
    def test_fails_on_malformed_bytes(self, data: bytes) -> None:
        with pytest.raises(InvalidEnvelopeError):
            Envelope.from_bytes(data)
