"""The RFC 9162 Merkle Tree Hash (the same as RFC 6962 §2.1), in full and incrementally.

A leaf's hash is ``SHA-256(0x00 || data)``, an interior node's ``SHA-256(0x01 || left ||
right)``, and the hash of an empty tree ``SHA-256("")``. A tree of ``n > 1`` leaves splits
at ``k``, the largest power of two smaller than ``n``: ``MTH(D[n]) = node(MTH(D[0:k]),
MTH(D[k:n]))``. `root_from_leaves` computes exactly that, and is the reference;
`CompactRange` keeps only the roots of the perfect subtrees a growing log is made of, so
appending a leaf and computing the root each take O(log n) hashes.

Proofs follow RFC 9162 too: `inclusion_proof` and `consistency_proof` build them from the
leaf hashes by the recursive definitions of §2.1.3.1 and §2.1.4.1, and `verify_inclusion`
and `verify_consistency` check them with the algorithms of §2.1.3.2 and §2.1.4.2, step
for step, so a verifier needs nothing but the proof, the sizes and the roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from node.errors import NodeError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_SIZE_BYTES = 8


class MerkleError(NodeError):
    """A hash, a serialized compact range or a proof is malformed, or a proof does not hold."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding `data`: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes, by RFC 9162's recursive definition.

    This is the reference, O(n) in time and O(log n) deep: use it to check, and
    `CompactRange` to keep a running root.
    """
    size = len(leaf_hashes)
    if size == 0:
        return EMPTY_ROOT
    if size == 1:
        return leaf_hashes[0]
    split = _split(size)
    return node_hash(root_from_leaves(leaf_hashes[:split]), root_from_leaves(leaf_hashes[split:]))


class CompactRange:
    """The frontier of a log: the roots of its perfect subtrees, largest (leftmost) first.

    A log of ``n`` leaves is a sequence of perfect subtrees whose sizes are the powers
    of two in ``n``'s binary form, so it holds ``popcount(n)`` hashes, at most
    ``log2(n) + 1``. Appending merges equal-sized subtrees from the right, as a binary
    counter carries; the root folds the subtrees from the right.
    """

    def __init__(self) -> None:
        """An empty range: no leaves, no hashes."""
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaves the range covers."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' roots, largest first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add the next leaf, given by its leaf hash (see `leaf_hash`).

        Returns:
            The roots of the perfect subtrees the leaf completed, of 2, 4, 8… leaves in
            that order: leaf ``n`` (from 0) ends one of ``2**level`` leaves for each
            level from 1 up to the number of trailing one bits of ``n``.

        Raises:
            MerkleError: `leaf` is not a 32-byte hash.
        """
        _check_hash(leaf)
        self._hashes.append(leaf)
        completed = []
        carry = self._size
        while carry & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            completed.append(self._hashes[-1])
            carry >>= 1
        self._size += 1
        return completed

    def root(self) -> bytes:
        """The Merkle Tree Hash of every leaf appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root

    def to_bytes(self) -> bytes:
        """The range as bytes: the size as 8 bytes big-endian, then each hash in order."""
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Read a range written by `to_bytes`.

        Raises:
            MerkleError: `data` is not an 8-byte size followed by one hash per set bit
                of that size.
        """
        if len(data) < _SIZE_BYTES:
            raise MerkleError(f"a compact range needs {_SIZE_BYTES} bytes of size, got {len(data)}")
        size = int.from_bytes(data[:_SIZE_BYTES], "big")
        body = data[_SIZE_BYTES:]
        expected = size.bit_count() * HASH_SIZE
        if len(body) != expected:
            raise MerkleError(
                f"a compact range of size {size} holds {expected} bytes of hashes, not {len(body)}"
            )
        compact = cls()
        compact._size = size
        compact._hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return compact


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree of its first `size` leaves (§2.1.3.1).

    The proof is ``PATH(index, D[size])``: the sibling hashes from the leaf up to the
    root. It is built from the leaf hashes, so it reads all `size` of them and takes
    O(size) hashes; the proof itself holds O(log size).

    Args:
        leaf_hashes: The log's leaf hashes in order; at least `size` of them.
        index: The leaf's zero-based index.
        size: The size of the tree the proof is for.

    Raises:
        MerkleError: `size` exceeds the leaves given, or `index` is not in ``[0, size)``.
    """
    if not 0 <= size <= len(leaf_hashes):
        raise MerkleError(f"a tree of {len(leaf_hashes)} leaves has no size {size}")
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    return _path(index, leaf_hashes[:size])


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of `old_size` leaves is a prefix of that of `new_size` (§2.1.4.1).

    The proof is ``PROOF(old_size, D[new_size])``, empty when `old_size` is 0 or equals
    `new_size`. Like `inclusion_proof` it reads the first `new_size` leaf hashes and
    takes O(new_size) hashes; the proof holds O(log new_size).

    Args:
        leaf_hashes: The log's leaf hashes in order; at least `new_size` of them.
        old_size: The size of the earlier tree.
        new_size: The size of the later tree.

    Raises:
        MerkleError: `new_size` exceeds the leaves given, or `old_size` is not in
            ``[0, new_size]``.
    """
    if not 0 <= new_size <= len(leaf_hashes):
        raise MerkleError(f"a tree of {len(leaf_hashes)} leaves has no size {new_size}")
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"old size {old_size} is not in [0, {new_size}]")
    if old_size in {0, new_size}:
        return []
    return _subproof(old_size, leaf_hashes[:new_size], complete=True)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `proof` proves leaf `index` of a tree of `size` leaves is `leaf_hash`.

    The algorithm is RFC 9162 §2.1.3.2's, step for step.

    Args:
        leaf_hash: The leaf's hash (see `leaf_hash`), not its data.
        index: The leaf's zero-based index.
        size: The size of the tree whose root is `root`.
        proof: The inclusion path, from the leaf upwards.
        root: The root the proof must lead to.

    Raises:
        MerkleError: A hash is not 32 bytes, `index` is not in ``[0, size)``, the proof
            has too many or too few hashes, or it does not lead to `root`.
    """
    for value in (leaf_hash, root, *proof):
        _check_hash(value)
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise MerkleError(
                f"the inclusion proof has more than the hashes a tree of {size} needs"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError(f"the inclusion proof lacks hashes a tree of {size} needs")
    if r != root:
        raise MerkleError(f"the inclusion proof leads to root {r.hex()}, not {root.hex()}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that `proof` proves the tree `old_root` of `old_size` is a prefix of `new_root`.

    For ``0 < old_size < new_size`` the algorithm is RFC 9162 §2.1.4.2's, step for
    step. RFC 9162 leaves the other sizes to the caller; here equal sizes need an empty
    proof and equal roots, and an old size of 0 an empty proof and the empty tree's root
    (`EMPTY_ROOT`) as `old_root`: every tree extends the empty one.

    Args:
        old_size: The size of the earlier tree.
        new_size: The size of the later tree.
        old_root: The earlier tree's root.
        new_root: The later tree's root.
        proof: The consistency path.

    Raises:
        MerkleError: A hash is not 32 bytes, `old_size` is not in ``[0, new_size]``, the
            proof has too many or too few hashes, or it does not lead to both roots.
    """
    for value in (old_root, new_root, *proof):
        _check_hash(value)
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"old size {old_size} is not in [0, {new_size}]")
    if old_size in {0, new_size}:
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    if not proof:
        raise MerkleError("a consistency proof between two nonzero sizes is never empty")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleError(
                f"the consistency proof has more than the hashes size {new_size} needs"
            )
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError(f"the consistency proof lacks hashes size {new_size} needs")
    if fr != old_root or sr != new_root:
        raise MerkleError(
            f"the consistency proof leads to roots {fr.hex()} and {sr.hex()}, "
            f"not {old_root.hex()} and {new_root.hex()}"
        )


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """`verify_consistency` where `old_size` is 0 or `new_size`, which RFC 9162 leaves open."""
    if proof:
        raise MerkleError(f"a consistency proof from size {old_size} to {new_size} is empty")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise MerkleError(f"the root of the empty tree is {EMPTY_ROOT.hex()}, not {old_root.hex()}")
    if old_size == new_size and old_root != new_root:
        raise MerkleError(
            f"two roots of size {old_size} differ: {old_root.hex()}, {new_root.hex()}"
        )


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (which is at least 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162's ``PATH(index, leaves)``, deepest sibling first."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), root_from_leaves(leaves[k:])]
    return [*_path(index - k, leaves[k:]), root_from_leaves(leaves[:k])]


def _subproof(size: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    """RFC 9162's ``SUBPROOF(size, leaves, complete)``."""
    if size == len(leaves):
        return [] if complete else [root_from_leaves(leaves)]
    k = _split(len(leaves))
    if size <= k:
        return [*_subproof(size, leaves[:k], complete=complete), root_from_leaves(leaves[k:])]
    return [*_subproof(size - k, leaves[k:], complete=False), root_from_leaves(leaves[:k])]


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"a hash is {HASH_SIZE} bytes, not {len(value)}")
