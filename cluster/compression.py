"""zstd for the bodies nodes exchange: replication pushes, anti-entropy answers, gossip.

A body of KVS_COMPRESS_MIN_BYTES or more goes compressed, marked `X-KVS-Encoding: zstd`; a node
asks for compressed answers with `X-KVS-Accept-Encoding: zstd`. The signatures cover the bytes
on the wire. The headers are the cluster's own, not HTTP's Content-Encoding, so that no HTTP
library or proxy in between decodes a body before its signature is checked, and a body is
inflated only here, to at most a bounded size.
"""

from __future__ import annotations

import zstandard
from django.conf import settings

HEADER_ENCODING = "X-KVS-Encoding"
HEADER_ACCEPT = "X-KVS-Accept-Encoding"
ZSTD = "zstd"
LEVEL = 3
# Most bytes an answer from a peer may inflate to (a request: DATA_UPLOAD_MAX_MEMORY_SIZE).
MAX_ANSWER_BYTES = 256 * 1024 * 1024


class BadEncoding(ValueError):
    """A body marked compressed that does not inflate, or inflates beyond the limit."""


def body_encode(body: bytes, *, allowed: bool = True) -> tuple[bytes, dict[str, str]]:
    """`body` as it goes on the wire, and the header that says how (none: as it is)."""
    if not allowed or len(body) < settings.KVS_COMPRESS_MIN_BYTES:
        return body, {}
    return zstandard.ZstdCompressor(level=LEVEL).compress(body), {HEADER_ENCODING: ZSTD}


def body_decode(data: bytes, encoding: str | None, *, limit: int) -> bytes:
    """The body sent as `data` with `X-KVS-Encoding: encoding`; raise BadEncoding."""
    if not encoding:
        return data
    if encoding != ZSTD:
        raise BadEncoding(f"unknown {HEADER_ENCODING} {encoding[:20]!r}")
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            body = reader.read(limit + 1)
    except zstandard.ZstdError as error:
        raise BadEncoding(f"the zstd body does not decompress: {error}") from None
    if len(body) > limit:
        raise BadEncoding(f"the zstd body inflates beyond {limit} bytes")
    return body


def accepts_zstd(headers) -> bool:
    """Whether a request asks for a compressed answer."""
    return ZSTD in (headers.get(HEADER_ACCEPT) or "").split(",")
