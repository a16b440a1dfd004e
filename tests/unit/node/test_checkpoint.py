"""Signed checkpoints (AUD-5, AUD-7): published vectors, round trips, cosigning, refusals."""

from __future__ import annotations

import base64

import nacl.signing
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from node.audit import AuditLog
from node.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    checkpoint_for,
    log_origin,
    open_checkpoint,
    open_note,
    sign_note,
)
from node.ed25519 import Ed25519Signer
from node.errors import ValidationError
from node.merkle import EMPTY_ROOT, verify_consistency
from tests.support.clock import ManualClock

# golang.org/x/mod sumdb/note/note_test.go (TestSign, TestOpen, TestNewVerifier), golang/mod
# at 02c991387e35f9e4c0a9b7ce137717055f8d716d:
# https://github.com/golang/mod/blob/02c991387e35f9e4c0a9b7ce137717055f8d716d/sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTG"
    "wnWLox33WWd1RvMc+QQ=\n"
).encode()

# A real sum.golang.org checkpoint and witness cosignatures of it, from
# transparency-dev/formats log/note_test.go (TestSumDBNoteParsing, BenchmarkParse) at
# 7d98d39a5b4b716489f3193e2961aacfa6471a94:
# https://github.com/transparency-dev/formats/blob/7d98d39a5b4b716489f3193e2961aacfa6471a94/log/note_test.go
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nP"
    "RYfvimWEPWL+o3GeoWwOoAw=\n"
).encode()
WITNESS_VKEYS = (
    "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT",
    "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M",
    "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN",
)
WITNESS_SIGS = (
    "\u2014 monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuIjRa"
    "U2NbvAnaepM6Y+8ww=\n"
    "\u2014 bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0E+x"
    "/MggS1mDR6t3/9rQw=\n"
    "\u2014 witness 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF+Up"
    "DbGgCdcpR8SVSoqAU=\n"
).encode()

# The example body of c2sp.org/tlog-checkpoint (C2SP/C2SP tlog-checkpoint.md at
# 2793893976c835db049c194d8f2c4f946dcb70ba); its key is not published.
C2SP_BODY = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

ORIGIN = "socal.alpr/agency/CA0194200/audit"
LOG = NoteSigner(ORIGIN, Ed25519Signer.generate())
WITNESS = NoteSigner("socal.alpr/agency/CA0190000/witness", Ed25519Signer.generate())
STRANGER = NoteSigner("elsewhere.example/log", Ed25519Signer.generate())
CHECKPOINT = Checkpoint(ORIGIN, 7, bytes(range(32)))
SIGNED = sign_note(CHECKPOINT.body(), [LOG])


def golang_signer(skey: str) -> NoteSigner:
    """A signer from golang's ``PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)`` (tests only)."""
    private, key, name, key_hash, key64 = skey.split("+", 4)
    raw = base64.b64decode(key64)
    assert (private, key, raw[0], len(raw)) == ("PRIVATE", "KEY", 1, 33)
    signer = NoteSigner(name, Ed25519Signer(nacl.signing.SigningKey(raw[1:])))
    assert f"{signer.verifier.key_hash:08x}" == key_hash
    return signer


def verifiers(*vkeys: str) -> list[NoteVerifier]:
    return [NoteVerifier.from_verifier_string(vkey) for vkey in vkeys]


class TestGolangVectors:
    def test_succeeds_signing_byte_for_byte_like_golang(self) -> None:
        peter = golang_signer(PETER_SKEY)
        assert peter.verifier.to_verifier_string() == PETER_VKEY
        assert sign_note(TEXT, [peter]) == TEXT + b"\n" + PETER_SIG

    def test_succeeds_opening_golangs_note(self) -> None:
        assert open_note(TEXT + b"\n" + PETER_SIG, verifiers(PETER_VKEY)) == (
            TEXT,
            ("PeterNeumann",),
        )

    def test_succeeds_ignoring_an_unknown_key_and_counting_a_cosignature(self) -> None:
        note = TEXT + b"\n" + PETER_SIG + ENOCH_SIG
        assert open_note(note, verifiers(PETER_VKEY))[1] == ("PeterNeumann",)
        both = verifiers(PETER_VKEY, ENOCH_VKEY)
        assert open_note(note, both, threshold=2)[1] == ("PeterNeumann", "EnochRoot")

    def test_succeeds_replacing_a_signature_by_the_same_key(self) -> None:
        note = TEXT + b"\n" + PETER_SIG + ENOCH_SIG
        assert add_signatures(note, [golang_signer(PETER_SKEY)]) == (
            TEXT + b"\n" + ENOCH_SIG + PETER_SIG
        )

    def test_succeeds_parsing_verifier_keys(self) -> None:
        peter, enoch = verifiers(PETER_VKEY, ENOCH_VKEY)
        assert (peter.name, peter.key_hash) == ("PeterNeumann", 0xC74F20A3)
        assert (enoch.name, enoch.key_hash) == ("EnochRoot", 0xAF0CFE78)
        assert enoch.to_verifier_string() == ENOCH_VKEY

    def test_fails_every_mangled_verifier_key(self) -> None:
        # TestNewVerifier: every proper substring, and every byte incremented, is refused.
        mangled = {PETER_VKEY[i:j] for i in range(len(PETER_VKEY)) for j in range(i + 1, 67)}
        mangled |= {
            PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
            for i in range(len(PETER_VKEY))
        }
        mangled |= {
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        }
        mangled.discard(PETER_VKEY)
        for text in mangled:
            with pytest.raises(CheckpointError):
                NoteVerifier.from_verifier_string(text)

    def test_fails_a_known_keys_signature_that_does_not_verify(self) -> None:
        forged = PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
        with pytest.raises(CheckpointError, match=r"PeterNeumann\+c74f20a3 does not verify"):
            open_note(TEXT + b"\n" + forged, verifiers(PETER_VKEY))

    def test_fails_without_a_signature_by_a_known_key(self) -> None:
        with pytest.raises(CheckpointError, match="signed by 0 known keys, 1 needed"):
            open_note(TEXT + b"\n" + PETER_SIG + ENOCH_SIG, [])


class TestPublishedCheckpoints:
    def test_succeeds_opening_a_sum_golang_org_checkpoint(self) -> None:
        (log,) = verifiers(SUMDB_VKEY)
        checkpoint, cosigners = open_checkpoint(SUMDB_NOTE, "go.sum database tree", log)
        assert (checkpoint.origin, checkpoint.size, cosigners) == (
            "go.sum database tree",
            6476701,
            (),
        )
        assert checkpoint.body() == SUMDB_NOTE[: SUMDB_NOTE.index(b"\n\n") + 1]

    def test_succeeds_with_three_witness_cosignatures(self) -> None:
        (log,) = verifiers(SUMDB_VKEY)
        note = SUMDB_NOTE + WITNESS_SIGS
        _checkpoint, cosigners = open_checkpoint(
            note, "go.sum database tree", log, verifiers(*WITNESS_VKEYS), threshold=3
        )
        assert cosigners == ("monkeys", "bananas", "witness")

    def test_succeeds_parsing_the_c2sp_example(self) -> None:
        checkpoint = Checkpoint.parse(C2SP_BODY)
        assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
        assert checkpoint.body() == C2SP_BODY

    def test_fails_a_wrong_origin(self) -> None:
        (log,) = verifiers(SUMDB_VKEY)
        with pytest.raises(CheckpointError, match="origin"):
            open_checkpoint(SUMDB_NOTE, "Go rocks but I might have the wrong ID", log)


checkpoints = st.builds(
    Checkpoint,
    origin=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1),
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1), max_size=3
    ).map(tuple),
)


class TestRoundTrip:
    @given(checkpoints)
    @example(Checkpoint.parse(C2SP_BODY))
    @example(Checkpoint("o", 0, EMPTY_ROOT, ("ext one", "ext two")))
    def test_succeeds_for_any_valid_checkpoint(self, checkpoint: Checkpoint) -> None:
        assert Checkpoint.parse(checkpoint.body()) == checkpoint
        note = sign_note(checkpoint.body(), [LOG])
        assert open_checkpoint(note, checkpoint.origin, LOG.verifier) == (checkpoint, ())

    @given(st.data())
    def test_fails_with_any_byte_flipped(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(SIGNED) - 1))
        flipped = bytearray(SIGNED)
        flipped[index] ^= data.draw(st.integers(1, 255))
        with pytest.raises(CheckpointError):
            open_note(bytes(flipped), [LOG.verifier])

    def test_succeeds_with_a_verifier_from_its_string(self) -> None:
        verifier = NoteVerifier.from_verifier_string(LOG.verifier.to_verifier_string())
        assert verifier == LOG.verifier
        assert open_note(SIGNED, [verifier]) == (CHECKPOINT.body(), (ORIGIN,))


class TestCosigning:
    """AUD-7: a partner cosigns our checkpoint; the cosignature is counted and checked."""

    def test_succeeds_with_a_witness_cosignature_and_threshold_two(self) -> None:
        cosigned = add_signatures(SIGNED, [WITNESS])
        assert cosigned.startswith(SIGNED)
        names = open_note(cosigned, [LOG.verifier, WITNESS.verifier], threshold=2)[1]
        assert names == (ORIGIN, WITNESS.verifier.name)
        assert open_checkpoint(cosigned, ORIGIN, LOG.verifier, [WITNESS.verifier], threshold=1) == (
            CHECKPOINT,
            (WITNESS.verifier.name,),
        )

    def test_succeeds_ignoring_unknown_keys_and_counting_one_key_once(self) -> None:
        note = add_signatures(sign_note(CHECKPOINT.body(), [STRANGER, LOG]), [WITNESS])
        assert open_note(note + SIGNED[SIGNED.rindex(b"\n\n") + 2 :], [LOG.verifier])[1] == (
            ORIGIN,
        )
        with pytest.raises(CheckpointError, match="signed by 1 known keys, 2 needed"):
            open_note(sign_note(CHECKPOINT.body(), [LOG, LOG]), [LOG.verifier], threshold=2)

    def test_fails_below_the_threshold(self) -> None:
        with pytest.raises(CheckpointError, match="1 known keys, 2 needed"):
            open_note(SIGNED, [LOG.verifier, WITNESS.verifier], threshold=2)
        with pytest.raises(CheckpointError, match="0 cosignatures, 1 needed"):
            open_checkpoint(SIGNED, ORIGIN, LOG.verifier, [WITNESS.verifier], threshold=1)
        with pytest.raises(CheckpointError, match="threshold must be 1 or more"):
            open_note(SIGNED, [LOG.verifier], threshold=0)

    def test_fails_a_cosignature_of_another_checkpoint(self) -> None:
        other = sign_note(Checkpoint(ORIGIN, 8, bytes(32)).body(), [WITNESS])
        spliced = SIGNED + other[other.rindex(b"\n\n") + 2 :]
        assert open_note(spliced, [LOG.verifier])[1] == (ORIGIN,)
        with pytest.raises(CheckpointError, match="does not verify"):
            open_note(spliced, [LOG.verifier, WITNESS.verifier])

    def test_fails_without_the_logs_signature(self) -> None:
        witnessed = sign_note(CHECKPOINT.body(), [WITNESS])
        with pytest.raises(CheckpointError, match="not signed by its log"):
            open_checkpoint(witnessed, ORIGIN, LOG.verifier, [WITNESS.verifier], threshold=1)


def _sig_line() -> bytes:
    return SIGNED[SIGNED.rindex(b"\n\n") + 2 :]


BODY = CHECKPOINT.body()
MALFORMED_NOTES = {
    "missing blank line": BODY + _sig_line(),
    "no signature": BODY + b"\n",
    "last line without newline": BODY + b"\n" + _sig_line()[:-1],
    "en dash": BODY + b"\n" + _sig_line().replace("\u2014".encode(), "\u2013".encode()),
    "hyphen": BODY + b"\n" + _sig_line().replace("\u2014".encode(), b"-"),
    "no space after the dash": BODY + b"\n" + _sig_line().replace(b"\x94 ", b"\x94"),
    "trailing line": SIGNED + b"Unexpected line.\n",
    "trailing data": SIGNED + b"xyz",
    "name with a space": BODY + b"\n" + _sig_line().replace(ORIGIN.encode(), b"Bad Name"),
    "name with a plus": BODY + b"\n" + _sig_line().replace(ORIGIN.encode(), b"a+b"),
    "control character": b"\x01" + SIGNED,
    "carriage return": SIGNED.replace(b"\n", b"\r\n"),
    "invalid UTF-8": b"\xff" + SIGNED,
    "bad base64 signature": SIGNED[:-3] + b"!=\n",
    "non-canonical base64 signature": SIGNED[:-3] + b"B=\n",
    "signature shorter than a key ID": BODY + "\n\u2014 x AAAAAA==\n".encode(),
    "101 signatures": BODY + b"\n" + _sig_line() * 101,
}
MALFORMED_BODIES = {
    "two lines": b"o\n1\n",
    "empty origin": b"\n1\n" + base64.b64encode(bytes(32)) + b"\n",
    "hex size": b"o\n0x10\n" + base64.b64encode(bytes(32)) + b"\n",
    "negative size": b"o\n-1\n" + base64.b64encode(bytes(32)) + b"\n",
    "leading zero": b"o\n01\n" + base64.b64encode(bytes(32)) + b"\n",
    "size over 2^64-1": b"o\n18446744073709551616\n" + base64.b64encode(bytes(32)) + b"\n",
    "bad base64 root": b"o\n1\n!!!!\n",
    "unpadded root": b"o\n1\n" + base64.b64encode(bytes(32)).rstrip(b"=") + b"\n",
    "root of 31 bytes": b"o\n1\n" + base64.b64encode(bytes(31)) + b"\n",
    "root of 33 bytes": b"o\n1\n" + base64.b64encode(bytes(33)) + b"\n",
    "empty extension": b"o\n1\n" + base64.b64encode(bytes(32)) + b"\n\next\n",
    "not a checkpoint": b"if this is a valid checkpoint then I'll eat my hat\n",
}


class TestMalformed:
    @pytest.mark.parametrize("note", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
    def test_fails_a_malformed_note(self, note: bytes) -> None:
        with pytest.raises(CheckpointError):
            open_note(note, [LOG.verifier])

    @pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
    def test_fails_a_signed_body_that_is_not_a_checkpoint(self, body: bytes) -> None:
        note = sign_note(body, [LOG])
        assert open_note(note, [LOG.verifier])[0] == body
        with pytest.raises(CheckpointError):
            open_checkpoint(note, "o", LOG.verifier)

    @pytest.mark.parametrize(
        ("origin", "size", "root", "extensions"),
        [
            ("", 0, EMPTY_ROOT, ()),
            ("two\nlines", 0, EMPTY_ROOT, ()),
            ("tab\there", 0, EMPTY_ROOT, ()),
            ("o", -1, EMPTY_ROOT, ()),
            ("o", 2**64, EMPTY_ROOT, ()),
            ("o", 0, bytes(31), ()),
            ("o", 0, EMPTY_ROOT, ("",)),
        ],
        ids=["empty origin", "newline", "tab", "negative", "too big", "short root", "empty ext"],
    )
    def test_fails_constructing_an_invalid_checkpoint(
        self, origin: str, size: int, root: bytes, extensions: tuple[str, ...]
    ) -> None:
        with pytest.raises(CheckpointError):
            Checkpoint(origin, size, root, extensions)

    @pytest.mark.parametrize("name", ["", "Bad Name", "a+b", "tab\tname", "nul\x00"])
    def test_fails_an_invalid_key_name(self, name: str) -> None:
        with pytest.raises(CheckpointError, match="key name"):
            NoteSigner(name, Ed25519Signer.generate())

    def test_fails_signing_text_without_a_final_newline_or_without_signers(self) -> None:
        with pytest.raises(CheckpointError, match="newline"):
            sign_note(b"abc", [LOG])
        with pytest.raises(CheckpointError, match="at least one signer"):
            sign_note(BODY, [])


class TestLogOrigin:
    def test_succeeds(self) -> None:
        assert log_origin("socal.alpr", "CA0194200") == ORIGIN

    def test_fails_an_invalid_ori(self) -> None:
        with pytest.raises(ValidationError):
            log_origin("socal.alpr", "XX01")


class TestCheckpointFor:
    """AUD-5/AUD-7: checkpoints of a real audit log, on SQLite and PostgreSQL."""

    def test_succeeds_signing_consistent_checkpoints_of_a_growing_log(
        self, engine: Engine, clock: ManualClock
    ) -> None:
        log = AuditLog(engine, clock=clock)
        assert checkpoint_for(log, ORIGIN) == Checkpoint(ORIGIN, 0, EMPTY_ROOT)
        for number in range(3):
            log.append("query", actor="system", agency="CA0194200", details={"n": number})
        first = checkpoint_for(log, ORIGIN)
        for number in range(4):
            log.append("login", actor="system", agency="CA0194200", details={"n": number})
        second = checkpoint_for(log, ORIGIN)
        assert (first.size, second.size) == (3, 7)
        assert second.root == log.recompute_root() == log.head().root
        opened = [
            open_checkpoint(sign_note(c.body(), [LOG]), ORIGIN, LOG.verifier)[0]
            for c in (first, second)
        ]
        assert opened == [first, second]
        proof = log.consistency_proof(first.size)
        verify_consistency(first.size, second.size, first.root, second.root, proof.hashes)
