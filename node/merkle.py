"""The RFC 9162 Merkle Tree Hash (the same as RFC 6962 §2.1), in full and incrementally.

A leaf's hash is ``SHA-256(0x00 || data)``, an interior node's ``SHA-256(0x01 || left ||
right)``, and the hash of an empty tree ``SHA-256("")``. A tree of ``n > 1`` leaves splits
at ``k``, the largest power of two smaller than ``n``: ``MTH(D[n]) = node(MTH(D[0:k]),
MTH(D[k:n]))``. `root_from_leaves` computes exactly that, and is the reference;
`CompactRange` keeps only the roots of the perfect subtrees a growing log is made of, so
appending a leaf and computing the root each take O(log n) hashes.
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
    """A hash or a serialized compact range is malformed."""


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
    split = 1 << ((size - 1).bit_length() - 1)
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

    def append(self, leaf: bytes) -> None:
        """Add the next leaf, given by its leaf hash (see `leaf_hash`).

        Raises:
            MerkleError: `leaf` is not a 32-byte hash.
        """
        _check_hash(leaf)
        self._hashes.append(leaf)
        carry = self._size
        while carry & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            carry >>= 1
        self._size += 1

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


def _check_hash(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"a hash is {HASH_SIZE} bytes, not {len(value)}")
