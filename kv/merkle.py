"""Per-record digests and Merkle leaf arithmetic.

A leaf is a key-hash bucket whose hash is the XOR of its records' digests, so replacing a record
is `leaf ^= old_digest ^ new_digest` and the root (the XOR of all leaves) is maintained the same
way. Two nodes holding the same records have the same leaves and the same root.
"""

import hashlib

from django.conf import settings

DIGEST_HEX = 32
ZERO = "0" * DIGEST_HEX


def bucket_of(key: str) -> int:
    """The Merkle leaf a key falls in."""
    head = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    return head % settings.KVS_MERKLE_BUCKETS


def record_digest(*, key: str, version: str, hlc: int, deleted: bool) -> str:
    """The 128-bit digest that identifies one stored version of one key."""
    material = f"{key}\x00{version}\x00{hlc}\x00{int(deleted)}".encode()
    return hashlib.sha256(material).hexdigest()[:DIGEST_HEX]


def xor_hex(*digests: str) -> str:
    """XOR of hex digests, as a hex digest."""
    acc = 0
    for digest in digests:
        acc ^= int(digest, 16)
    return f"{acc:0{DIGEST_HEX}x}"


# --- The tree over the leaves --------------------------------------------------------------------
# Interior nodes have FANOUT children; node `index` at `level` covers a contiguous range of
# buckets, and its hash is the XOR of those leaves (level 0 is the root, the last level the leaves).

FANOUT = 16


def tree_depth() -> int:
    """The level of the leaves (4096 buckets, fanout 16: 3); the bucket count is a power of 16."""
    depth, span = 0, 1
    while span < settings.KVS_MERKLE_BUCKETS:
        span *= FANOUT
        depth += 1
    assert span == settings.KVS_MERKLE_BUCKETS, "KVS_MERKLE_BUCKETS must be a power of 16"
    return depth


def node_buckets(level: int, index: int) -> range:
    """The buckets under node `index` at `level`."""
    span = FANOUT ** (tree_depth() - level)
    return range(index * span, (index + 1) * span)


def node_children(index: int) -> range:
    """The indices, one level down, of the children of node `index`."""
    return range(index * FANOUT, (index + 1) * FANOUT)


def node_hash(leaves: dict[int, str], level: int, index: int) -> str:
    """The hash of a tree node: the XOR of the leaves below it (`leaves` maps bucket → hash)."""
    acc = 0
    for bucket in node_buckets(level, index):
        digest = leaves.get(bucket)
        if digest is not None:
            acc ^= int(digest, 16)
    return f"{acc:0{DIGEST_HEX}x}"
