"""Proofs about the audit log: that an event is in it, and that it only ever grew (AUD-5).

`node.audit.AuditLog.inclusion_proof` and `AuditLog.consistency_proof` build their
proofs here. A proof names the tree size and root it is for; whoever holds that root
from elsewhere (a checkpoint the node signed, a partner's copy) checks the proof with
nothing but the proof.

Every hash in an RFC 9162 proof, and every root, is the Merkle Tree Hash of a range
``[start, end)`` of leaves that is either a perfect subtree (``2**level`` leaves from a
multiple of ``2**level``) or the right edge of one, itself the fold of at most
``log2(end - start) + 1`` perfect subtrees. The log stores every perfect subtree's hash
as it completes, so `prove_inclusion` and `prove_consistency` follow the recursions of
RFC 9162 §2.1.3.1 and §2.1.4.1 over ranges, ask for the O(log size) perfect subtrees
those ranges are made of in one batch, and fold them. `node.merkle`'s builders over the
full list of leaf hashes are the reference they are tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from node.errors import ValidationError
from node.merkle import EMPTY_ROOT, node_hash, verify_inclusion

Subtree = tuple[int, int]
"""A perfect subtree as ``(level, index)``: the ``2**level`` leaves from ``index * 2**level``."""

Lookup = Callable[[Collection[Subtree]], Mapping[Subtree, bytes]]
"""Gives the stored hash of each subtree asked for (leaves are level 0), or raises."""


@dataclass(frozen=True)
class InclusionProof:
    """The proof that event `seq` is leaf `leaf_index` of the tree of `tree_size` with `root`.

    Attributes:
        seq: The event's number, from 1.
        leaf_index: Its leaf's index in the tree, ``seq - 1``.
        tree_size: The size of the tree the proof is for.
        leaf_hash: The event's leaf hash.
        hashes: The inclusion path (RFC 9162 §2.1.3), from the leaf upwards.
        root: The root of the tree of `tree_size` events.
    """

    seq: int
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes

    def verify(self, root: bytes | None = None) -> None:
        """Check the proof against `root`, or against its own root when none is given.

        Raises:
            node.merkle.MerkleError: The proof does not lead from the leaf to the root.
        """
        verify_inclusion(
            self.leaf_hash,
            self.leaf_index,
            self.tree_size,
            self.hashes,
            self.root if root is None else root,
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """The proof that the tree of `old_size` events is a prefix of the tree of `new_size`.

    Check it with `node.merkle.verify_consistency`.

    Attributes:
        old_size: The size of the earlier tree.
        new_size: The size of the later tree.
        old_root: The earlier tree's root.
        new_root: The later tree's root.
        hashes: The consistency path (RFC 9162 §2.1.4); empty when `old_size` is 0 or
            equals `new_size`.
    """

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    hashes: tuple[bytes, ...]


def check_sizes(field: str, smaller: int, larger: int, *, least: int) -> None:
    """Require ``least <= smaller <= larger`` of the value named `field`.

    Raises:
        ValidationError: `smaller` is below `least` or above `larger`.
    """
    if not least <= smaller <= larger:
        raise ValidationError(field, f"must be {least} to {larger}, not {smaller}")


def prove_inclusion(seq: int, size: int, lookup: Lookup) -> InclusionProof:
    """The inclusion proof of event `seq` in the tree of the first `size` events.

    Args:
        seq: The event's number, from 1.
        size: The size of the tree the proof is for.
        lookup: Gives stored subtree hashes; it is called once.

    Raises:
        ValidationError: `seq` is not 1 to `size`.
        Exception: Whatever `lookup` raises for a hash it cannot give.
    """
    check_sizes("seq", seq, size, least=1)
    index = seq - 1
    leaf, root, *path = _hashes_of([(index, seq), (0, size), *_path(index, 0, size)], lookup)
    return InclusionProof(
        seq=seq, leaf_index=index, tree_size=size, leaf_hash=leaf, hashes=tuple(path), root=root
    )


def prove_consistency(old_size: int, new_size: int, lookup: Lookup) -> ConsistencyProof:
    """The consistency proof from the tree of `old_size` events to that of `new_size`.

    Args:
        old_size: The size of the earlier tree.
        new_size: The size of the later tree.
        lookup: Gives stored subtree hashes; it is called once.

    Raises:
        ValidationError: `old_size` is not 0 to `new_size`.
        Exception: Whatever `lookup` raises for a hash it cannot give.
    """
    check_sizes("old_size", old_size, new_size, least=0)
    ranges = [] if old_size in {0, new_size} else _subproof(old_size, 0, new_size, complete=True)
    old_root, new_root, *path = _hashes_of([(0, old_size), (0, new_size), *ranges], lookup)
    return ConsistencyProof(
        old_size=old_size,
        new_size=new_size,
        old_root=old_root,
        new_root=new_root,
        hashes=tuple(path),
    )


def perfect_subtrees(start: int, end: int) -> list[Subtree]:
    """The perfect subtrees that make up the leaves ``[start, end)``, leftmost first.

    Each is the largest that starts at its first leaf and fits; for the ranges a proof
    names, they shrink from left to right, and their fold is the range's hash.
    """
    subtrees = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        subtrees.append((level, start >> level))
        start += 1 << level
    return subtrees


def _hashes_of(ranges: Sequence[tuple[int, int]], lookup: Lookup) -> list[bytes]:
    """The Merkle Tree Hash of each range ``[start, end)``, from one call to `lookup`."""
    covers = [perfect_subtrees(start, end) for start, end in ranges]
    stored = lookup({subtree for cover in covers for subtree in cover})
    hashes = []
    for cover in covers:
        folded = stored[cover[-1]] if cover else EMPTY_ROOT
        for subtree in reversed(cover[:-1]):
            folded = node_hash(stored[subtree], folded)
        hashes.append(folded)
    return hashes


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (which is at least 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _path(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 9162's ``PATH(index, D[start:end])`` as leaf ranges, deepest sibling first."""
    if end - start == 1:
        return []
    middle = start + _split(end - start)
    if index < middle:
        return [*_path(index, start, middle), (middle, end)]
    return [*_path(index, middle, end), (start, middle)]


def _subproof(size: int, start: int, end: int, *, complete: bool) -> list[tuple[int, int]]:
    """RFC 9162's ``SUBPROOF(size, D[start:end], complete)`` as leaf ranges."""
    if size == end - start:
        return [] if complete else [(start, end)]
    split = _split(end - start)
    if size <= split:
        return [*_subproof(size, start, start + split, complete=complete), (start + split, end)]
    return [*_subproof(size - split, start + split, end, complete=False), (start, start + split)]
