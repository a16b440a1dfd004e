"""RFC 9162 Merkle Tree Hash: the published test vectors, and the frontier against the reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleError,
    leaf_hash,
    node_hash,
    root_from_leaves,
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

leaf_lists = st.lists(st.binary(max_size=16).map(leaf_hash), max_size=70)


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
