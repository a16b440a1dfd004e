"""RFC 9162 Merkle Tree Hash and proofs: the published test vectors, and random trees."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of transparency-dev/merkle, testonly/constants.go at commit
# 582a6ad190b6848f1d26f8bf08ddef29955d9db1 (LeafInputs, RootHashes, CompactTrees and the
# NodeHashes they use); the same leaves and roots are in certificate-transparency-go.
LEAF_INPUTS = [
    bytes.fromhex(leaf)
    for leaf in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# The root of the tree of the first `size` leaves, indexed by size.
ROOTS_BY_SIZE = [
    bytes.fromhex(root)
    for root in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# CompactTrees: the perfect subtrees' roots, largest first, for sizes 1 to 8.
_L0 = (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
)
_L1 = (
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
)
_L2 = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
_L3 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
COMPACT_BY_SIZE = [
    (),
    (_L0[0],),
    (_L1[0],),
    (_L1[0], _L0[1]),
    (_L2,),
    (_L2, _L0[2]),
    (_L2, _L1[1]),
    (_L2, _L1[1], _L0[3]),
    (_L3,),
]

# Serialized ranges that do not parse, and why.
MALFORMED_RANGES = {
    "shorter than a size": b"\x00" * 7,
    "size 1 with no hash": (1).to_bytes(8, "big"),
    "size 0 with a hash": bytes(8) + bytes(32),
    "size 3 with one hash": (3).to_bytes(8, "big") + bytes(32),
    "a hash cut short": (1).to_bytes(8, "big") + bytes(31),
}

# The proof vectors of transparency-dev/merkle, proof/verify_test.go at commit
# 02194e9afb6c1d95b5381350007963aa70fff472 (inclusionProofs, consistencyProofs), over the
# tree of LEAF_INPUTS above. Go numbers the leaf from 1; the index here is from 0. Its
# first inclusion vector, {0, 0, nil}, is one its own test skips as "an invalid path".
_H = {
    "leaf1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
}
INCLUSION_VECTORS = [
    (0, 1, ()),
    (0, 8, (_H["leaf1"], _H["5f08"], _H["6b47"])),
    (5, 8, (_L0[2], _H["ca85"], _L2)),
    (2, 3, (_L1[0],)),
    (1, 5, (_L0[0], _H["5f08"], _L0[2])),
]
CONSISTENCY_VECTORS = [
    (1, 1, ()),
    (1, 8, (_H["leaf1"], _H["5f08"], _H["6b47"])),
    (6, 8, (_L1[1], _H["ca85"], _L2)),
    (2, 5, (_H["5f08"], _L0[2])),
    (6, 7, (_L1[1], _L0[3], _L2)),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
PUBLISHED_LEAVES = [leaf_hash(data) for data in LEAF_INPUTS]

# Ways to spoil a good inclusion proof, after the probes of corruptInclusionProof in
# verify_test.go: (leaf hash, index, size, proof, root) -> the same, spoiled.
_Inclusion = tuple[bytes, int, int, list[bytes], bytes]
INCLUSION_PROBES: dict[str, Callable[[_Inclusion], _Inclusion]] = {
    "index - 1": lambda p: (p[0], p[1] - 1, p[2], p[3], p[4]),
    "index + 1": lambda p: (p[0], p[1] + 1, p[2], p[3], p[4]),
    "index ^ 2": lambda p: (p[0], p[1] ^ 2, p[2], p[3], p[4]),
    "size * 2": lambda p: (p[0], p[1], p[2] * 2, p[3], p[4]),
    "size // 2": lambda p: (p[0], p[1], p[2] // 2, p[3], p[4]),
    "wrong leaf": lambda p: (b"WrongLeaf", p[1], p[2], p[3], p[4]),
    "empty root": lambda p: (p[0], p[1], p[2], p[3], EMPTY_ROOT),
    "random root": lambda p: (p[0], p[1], p[2], p[3], SOME_HASH),
    "trailing garbage": lambda p: (p[0], p[1], p[2], [*p[3], b""], p[4]),
    "trailing root": lambda p: (p[0], p[1], p[2], [*p[3], p[4]], p[4]),
    "preceding garbage": lambda p: (p[0], p[1], p[2], [b"", *p[3]], p[4]),
    "preceding root": lambda p: (p[0], p[1], p[2], [p[4], *p[3]], p[4]),
    "removed component": lambda p: (p[0], p[1], p[2], p[3][:-1], p[4]),
    "inserted component": lambda p: (p[0], p[1], p[2], [*p[3][:1], SOME_HASH, *p[3][1:]], p[4]),
}
# And a good consistency proof, after corruptConsistencyProof:
# (old size, new size, old root, new root, proof) -> the same, spoiled.
_Consistency = tuple[int, int, bytes, bytes, list[bytes]]
CONSISTENCY_PROBES: dict[str, Callable[[_Consistency], _Consistency]] = {
    "old size - 1": lambda p: (p[0] - 1, p[1], p[2], p[3], p[4]),
    "old size + 1": lambda p: (p[0] + 1, p[1], p[2], p[3], p[4]),
    "old size ^ 2": lambda p: (p[0] ^ 2, p[1], p[2], p[3], p[4]),
    "new size * 2": lambda p: (p[0], p[1] * 2, p[2], p[3], p[4]),
    "new size // 2": lambda p: (p[0], p[1] // 2, p[2], p[3], p[4]),
    "wrong old root": lambda p: (p[0], p[1], b"WrongRoot", p[3], p[4]),
    "wrong new root": lambda p: (p[0], p[1], p[2], b"WrongRoot", p[4]),
    "swapped roots": lambda p: (p[0], p[1], p[3], p[2], p[4]),
    "empty proof": lambda p: (p[0], p[1], p[2], p[3], []),
    "trailing garbage": lambda p: (p[0], p[1], p[2], p[3], [*p[4], b""]),
    "trailing old root": lambda p: (p[0], p[1], p[2], p[3], [*p[4], p[2]]),
    "trailing new root": lambda p: (p[0], p[1], p[2], p[3], [*p[4], p[3]]),
    "preceding garbage": lambda p: (p[0], p[1], p[2], p[3], [b"", *p[4]]),
    "preceding old root": lambda p: (p[0], p[1], p[2], p[3], [p[2], *p[4]]),
    "preceding new root": lambda p: (p[0], p[1], p[2], p[3], [p[3], *p[4]]),
    "preceding proof[0]": lambda p: (p[0], p[1], p[2], p[3], [p[4][0], *p[4]]),
    "truncated proof": lambda p: (p[0], p[1], p[2], p[3], p[4][:-1]),
}
# Consistency between sizes RFC 9162 leaves to the caller, after TestVerifyConsistency
# (with 32-byte stand-ins for its "don't care" roots, and the empty tree's root required
# for size 0, which transparency-dev does not check).
_R1, _R2 = bytes([1]) * 32, bytes([2]) * 32
TRIVIAL_CONSISTENCY = {
    "0 to 0": (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
    "0 to 1": (0, 1, EMPTY_ROOT, _R2, [], True),
    "1 to 1": (1, 1, _R2, _R2, [], True),
    "0 to 0, other roots": (0, 0, _R1, _R2, [], False),
    "0 to 1, not the empty root": (0, 1, _R1, _R2, [], False),
    "1 to 1, other roots": (1, 1, _R1, _R2, [], False),
    "1 to 0": (1, 0, _R1, _R2, [], False),
    "2 to 1": (2, 1, _R1, _R2, [], False),
    "1 to 2, empty proof": (1, 2, _R1, _R2, [], False),
    "0 to 0, a hash too many": (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    "0 to 1, a hash too many": (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    "1 to 1, a hash too many": (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
}

leaf_lists = st.lists(st.binary(max_size=16).map(leaf_hash), max_size=70)
trees = st.lists(st.binary(max_size=16).map(leaf_hash), min_size=1, max_size=33)


def _range_of(leaves: list[bytes]) -> CompactRange:
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    return compact


class TestHashes:
    def test_succeeds_empty_root_is_sha256_of_nothing(self) -> None:
        assert EMPTY_ROOT == hashlib.sha256(b"").digest() == ROOTS_BY_SIZE[0]

    def test_succeeds_leaf_and_node_prefixes(self) -> None:
        assert leaf_hash(b"") == ROOTS_BY_SIZE[1]
        assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == ROOTS_BY_SIZE[2]


class TestReferenceRoot:
    @pytest.mark.parametrize("size", range(len(ROOTS_BY_SIZE)))
    def test_succeeds_on_the_published_vectors(self, size: int) -> None:
        leaves = [leaf_hash(data) for data in LEAF_INPUTS[:size]]
        assert root_from_leaves(leaves) == ROOTS_BY_SIZE[size]


class TestCompactRange:
    @pytest.mark.parametrize("size", range(len(ROOTS_BY_SIZE)))
    def test_succeeds_on_the_published_vectors(self, size: int) -> None:
        compact = _range_of([leaf_hash(data) for data in LEAF_INPUTS[:size]])
        assert compact.size == size
        assert [h.hex() for h in compact.hashes] == list(COMPACT_BY_SIZE[size])
        assert compact.root() == ROOTS_BY_SIZE[size]

    @given(leaf_lists)
    def test_succeeds_matching_the_reference_at_every_size(self, leaves: list[bytes]) -> None:
        compact = CompactRange()
        for count, leaf in enumerate(leaves, start=1):
            compact.append(leaf)
            assert compact.root() == root_from_leaves(leaves[:count])
            assert len(compact.hashes) == count.bit_count() <= count.bit_length()

    @given(leaf_lists)
    def test_succeeds_resuming_from_its_bytes(self, leaves: list[bytes]) -> None:
        half = len(leaves) // 2
        resumed = CompactRange.from_bytes(_range_of(leaves[:half]).to_bytes())
        for leaf in leaves[half:]:
            resumed.append(leaf)
        assert resumed.to_bytes() == _range_of(leaves).to_bytes()
        assert resumed.root() == root_from_leaves(leaves)

    @given(st.binary(max_size=200))
    @example(bytes(8))
    @example((2).to_bytes(8, "big") + bytes(32))
    def test_succeeds_round_tripping_whatever_parses(self, data: bytes) -> None:
        try:
            compact = CompactRange.from_bytes(data)
        except MerkleError:
            return
        assert compact.to_bytes() == data

    @pytest.mark.parametrize("data", MALFORMED_RANGES.values(), ids=MALFORMED_RANGES.keys())
    def test_fails_on_malformed_bytes(self, data: bytes) -> None:
        with pytest.raises(MerkleError):
            CompactRange.from_bytes(data)

    @pytest.mark.parametrize("length", [0, 31, 33])
    def test_fails_appending_what_is_not_a_hash(self, length: int) -> None:
        compact = CompactRange()
        with pytest.raises(MerkleError, match=f"not {length}"):
            compact.append(bytes(length))
        assert compact.size == 0


def _hashes(hexes: tuple[str, ...]) -> list[bytes]:
    return [bytes.fromhex(value) for value in hexes]


def _flipped(value: bytes, position: int) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]


class TestInclusionProof:
    @pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
    def test_succeeds_on_the_published_vectors(
        self, index: int, size: int, proof: tuple[str, ...]
    ) -> None:
        assert inclusion_proof(PUBLISHED_LEAVES, index, size) == _hashes(proof)
        verify_inclusion(PUBLISHED_LEAVES[index], index, size, _hashes(proof), ROOTS_BY_SIZE[size])

    @pytest.mark.parametrize(
        ("index", "size", "proof", "probe"),
        [
            pytest.param(*vector, probe, id=f"{vector[0]}-{vector[1]}-{name}")
            for vector in INCLUSION_VECTORS
            for name, probe in INCLUSION_PROBES.items()
            if vector[2] or name != "removed component"
        ],
    )
    def test_fails_on_the_published_vectors_spoiled(
        self,
        index: int,
        size: int,
        proof: tuple[str, ...],
        probe: Callable[[_Inclusion], _Inclusion],
    ) -> None:
        good = (PUBLISHED_LEAVES[index], index, size, _hashes(proof), ROOTS_BY_SIZE[size])
        with pytest.raises(MerkleError):
            verify_inclusion(*probe(good))

    @pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1), (-1, 1)])
    @pytest.mark.parametrize(
        ("leaf", "root"),
        [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)],
        ids=["short root", "short leaf", "wrong root"],
    )
    def test_fails_without_the_leaf_in_the_tree(
        self, index: int, size: int, leaf: bytes, root: bytes
    ) -> None:
        with pytest.raises(MerkleError):
            verify_inclusion(leaf, index, size, [], root)

    def test_succeeds_for_a_single_leaf_with_an_empty_proof(self) -> None:
        leaf = leaf_hash(b"data")
        verify_inclusion(leaf, 0, 1, [], leaf)
        for other_leaf, other_root in ((leaf, b""), (b"", leaf), (b"", b"")):
            with pytest.raises(MerkleError, match="a hash is 32 bytes"):
                verify_inclusion(other_leaf, 0, 1, [], other_root)

    @pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (8, 7), (-1, 3), (0, 9)])
    def test_fails_building_for_a_leaf_outside_the_tree(self, index: int, size: int) -> None:
        with pytest.raises(MerkleError):
            inclusion_proof(PUBLISHED_LEAVES, index, size)

    @given(trees)
    def test_succeeds_for_every_leaf_of_random_trees(self, leaves: list[bytes]) -> None:
        root = root_from_leaves(leaves)
        for index, leaf in enumerate(leaves):
            proof = inclusion_proof(leaves, index, len(leaves))
            assert len(proof) <= (len(leaves) - 1).bit_length()
            verify_inclusion(leaf, index, len(leaves), proof, root)

    @given(trees.filter(lambda leaves: len(leaves) > 1), st.data())
    def test_fails_with_any_byte_of_the_proof_or_root_flipped(
        self, leaves: list[bytes], data: st.DataObject
    ) -> None:
        index = data.draw(st.integers(0, len(leaves) - 1))
        proof = inclusion_proof(leaves, index, len(leaves))
        root = root_from_leaves(leaves)
        at = data.draw(st.integers(0, len(proof) - 1))
        byte = data.draw(st.integers(0, 31))
        spoiled = [*proof[:at], _flipped(proof[at], byte), *proof[at + 1 :]]
        with pytest.raises(MerkleError):
            verify_inclusion(leaves[index], index, len(leaves), spoiled, root)
        with pytest.raises(MerkleError):
            verify_inclusion(leaves[index], index, len(leaves), proof, _flipped(root, byte))
        with pytest.raises(MerkleError):
            verify_inclusion(_flipped(leaves[index], byte), index, len(leaves), proof, root)


class TestConsistencyProof:
    @pytest.mark.parametrize(("old_size", "new_size", "proof"), CONSISTENCY_VECTORS)
    def test_succeeds_on_the_published_vectors(
        self, old_size: int, new_size: int, proof: tuple[str, ...]
    ) -> None:
        assert consistency_proof(PUBLISHED_LEAVES, old_size, new_size) == _hashes(proof)
        verify_consistency(
            old_size, new_size, ROOTS_BY_SIZE[old_size], ROOTS_BY_SIZE[new_size], _hashes(proof)
        )

    @pytest.mark.parametrize("probe", CONSISTENCY_PROBES.values(), ids=CONSISTENCY_PROBES.keys())
    @pytest.mark.parametrize(
        ("old_size", "new_size", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]]
    )
    def test_fails_on_the_published_vectors_spoiled(
        self,
        old_size: int,
        new_size: int,
        proof: tuple[str, ...],
        probe: Callable[[_Consistency], _Consistency],
    ) -> None:
        good = (
            old_size,
            new_size,
            ROOTS_BY_SIZE[old_size],
            ROOTS_BY_SIZE[new_size],
            _hashes(proof),
        )
        with pytest.raises(MerkleError):
            verify_consistency(*probe(good))

    @pytest.mark.parametrize(
        ("old_size", "new_size", "old_root", "new_root", "proof", "holds"),
        TRIVIAL_CONSISTENCY.values(),
        ids=TRIVIAL_CONSISTENCY.keys(),
    )
    def test_succeeds_only_where_the_sizes_need_no_proof(
        self,
        old_size: int,
        new_size: int,
        old_root: bytes,
        new_root: bytes,
        proof: list[bytes],
        holds: bool,
    ) -> None:
        if holds:
            verify_consistency(old_size, new_size, old_root, new_root, proof)
        else:
            with pytest.raises(MerkleError):
                verify_consistency(old_size, new_size, old_root, new_root, proof)

    @pytest.mark.parametrize(("old_size", "new_size"), [(5, 0), (9, 8), (-1, 3), (1, 9)])
    def test_fails_building_for_sizes_out_of_order_or_range(
        self, old_size: int, new_size: int
    ) -> None:
        with pytest.raises(MerkleError):
            consistency_proof(PUBLISHED_LEAVES, old_size, new_size)

    @given(trees)
    def test_succeeds_for_every_pair_of_sizes_of_random_trees(self, leaves: list[bytes]) -> None:
        roots = [root_from_leaves(leaves[:size]) for size in range(len(leaves) + 1)]
        for new_size in range(len(leaves) + 1):
            for old_size in range(new_size + 1):
                proof = consistency_proof(leaves, old_size, new_size)
                verify_consistency(old_size, new_size, roots[old_size], roots[new_size], proof)

    @given(trees.filter(lambda leaves: len(leaves) > 1), st.data())
    def test_fails_with_any_byte_of_the_proof_or_a_root_flipped(
        self, leaves: list[bytes], data: st.DataObject
    ) -> None:
        new_size = len(leaves)
        old_size = data.draw(st.integers(1, new_size - 1))
        proof = consistency_proof(leaves, old_size, new_size)
        old_root, new_root = root_from_leaves(leaves[:old_size]), root_from_leaves(leaves)
        at = data.draw(st.integers(0, len(proof) - 1))
        byte = data.draw(st.integers(0, 31))
        spoiled = [*proof[:at], _flipped(proof[at], byte), *proof[at + 1 :]]
        with pytest.raises(MerkleError):
            verify_consistency(old_size, new_size, old_root, new_root, spoiled)
        with pytest.raises(MerkleError):
            verify_consistency(old_size, new_size, _flipped(old_root, byte), new_root, proof)
        with pytest.raises(MerkleError):
            verify_consistency(old_size, new_size, old_root, _flipped(new_root, byte), proof)
