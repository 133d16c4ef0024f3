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
