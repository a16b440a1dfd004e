"""Proofs about the audit log: that an event is in it, and that it only ever grew (AUD-5).

`node.audit.AuditLog.inclusion_proof` and `AuditLog.consistency_proof` read the stored
leaf hashes of the log and build their proofs here, with `node.merkle`. A proof names
the tree size and root it is for; whoever holds that root from elsewhere (a checkpoint
the node signed, a partner's copy) checks the proof with nothing but the proof.

Building a proof reads the leaf hashes of the first `size` events and hashes them again:
O(size) work for an O(log size) proof. That is fine for the sizes a node has today; a
store of the tree's interior nodes would make it O(log size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.errors import ValidationError
from node.merkle import consistency_proof, inclusion_proof, root_from_leaves, verify_inclusion


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


def prove_inclusion(leaf_hashes: Sequence[bytes], seq: int) -> InclusionProof:
    """The inclusion proof of event `seq` in the tree of all of `leaf_hashes`.

    Raises:
        ValidationError: `seq` is not 1 to ``len(leaf_hashes)``.
    """
    size = len(leaf_hashes)
    check_sizes("seq", seq, size, least=1)
    return InclusionProof(
        seq=seq,
        leaf_index=seq - 1,
        tree_size=size,
        leaf_hash=leaf_hashes[seq - 1],
        hashes=tuple(inclusion_proof(leaf_hashes, seq - 1, size)),
        root=root_from_leaves(leaf_hashes),
    )


def prove_consistency(leaf_hashes: Sequence[bytes], old_size: int) -> ConsistencyProof:
    """The consistency proof from the tree of `old_size` to that of all of `leaf_hashes`.

    Raises:
        ValidationError: `old_size` is not 0 to ``len(leaf_hashes)``.
    """
    new_size = len(leaf_hashes)
    check_sizes("old_size", old_size, new_size, least=0)
    return ConsistencyProof(
        old_size=old_size,
        new_size=new_size,
        old_root=root_from_leaves(leaf_hashes[:old_size]),
        new_root=root_from_leaves(leaf_hashes),
        hashes=tuple(consistency_proof(leaf_hashes, old_size, new_size)),
    )
