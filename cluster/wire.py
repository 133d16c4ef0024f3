"""What peers send, checked as strictly as client input before anything is applied.

A peer holds the cluster secret, but a bug, a version skew or a stolen secret must not store what
the key API would refuse (a value that is not JSON, a mode beyond 12 bits, an hlc beyond 64 bits,
a key no client could write). Every version that arrives from another node — a push, the versions
an anti-entropy answer gives, the versions an anti-entropy peer pushes — goes through
`versions_parse`; the other internal bodies and answers through the parsers below. A bad item
raises WireError naming its index and field; the caller applies nothing of that message.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from urllib.parse import unquote

from django.conf import settings

from kv.keys import InvalidKey, key_validate
from kv.merkle import DIGEST_HEX, FANOUT, bucket_of, tree_depth
from kv.versions import EXPIRY_JOINED_AT, Version
from kvsite.exceptions import InvalidInput, InvalidJson
from kvsite.parsers import json_parse

from .messages import MAX_NODE_ID
from .records import RECORD_KINDS, record_key, record_validate

MAX_INT = 2**63  # every integer on the wire fits a signed 64-bit column
MAX_MODE = 0o7777
MAX_PRINCIPAL = 150  # owner and group: a username or group name (Django's 150)
# Nesting the JSON values of versions may have: more than clients may send now
# (KVS_MAX_JSON_DEPTH), because values stored before that limit replicate too (a node must never
# refuse what its peers hold, or their stores would never converge). Earlier kvsites accepted up
# to about 990 levels (the standard library's recursion); orjson's own limit is 1024.
MAX_VALUE_DEPTH = 1024
BUCKETS_PER_MESSAGE = 256  # a digests request: the asking side sends at most this many
VERSION_FIELDS = frozenset(f.name for f in fields(Version))
# Fields a peer may leave out: nodes of earlier releases send versions without an actor.
OPTIONAL_VERSION_FIELDS = frozenset({"actor"})
UNKNOWN_ACTOR = "unknown"  # the actor of a version whose writer's node did not say


class WireError(InvalidInput):
    """A message from a peer that does not have the expected shape (400 `invalid`, with the
    `field` and, for an item of a list, its `index`)."""


def _fail(field: str, problem: str, *, index: int | None = None, what: str = "versions") -> None:
    where = f"{what}[{index}].{field}" if index is not None else field
    extra = {"field": field} if index is None else {"index": index, "field": field}
    raise WireError(f"{where}: {problem}", **extra)


def _int(value: object, low: int = 0, high: int = MAX_INT) -> bool:
    return type(value) is int and low <= value < high


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _uuid(value: object) -> uuid.UUID | None:
    """`value` as a UUID if it is one in the form nodes send (`str(uuid)`), else None."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


# --- Keys and values -----------------------------------------------------------------------------


def key_check(key: object) -> str | None:
    """Why `key` could not have been written by any node (None: it could)."""
    try:
        key_validate(key, allow_reserved=True, from_peer=True)
    except InvalidKey as error:
        return str(error.detail)
    if key.startswith("_"):
        kind, _, name = key.removeprefix("_sys/").partition("/")
        if not key.startswith("_sys/") or kind not in RECORD_KINDS or not name:
            return f"reserved keys are `_sys/<kind>/<name>`, kind one of {sorted(RECORD_KINDS)}"
        if record_key(kind, unquote(name)) != key:
            return "the record name is not percent-encoded as nodes encode it"
    return None


def value_check(key: str, value: str) -> tuple[object, str | None]:
    """(the parsed value, why it is refused or None). Values are JSON text within the size
    limits; a system record may be as large as the request body that made it."""
    limit = settings.KVS_MAX_VALUE_BYTES
    if key.startswith("_"):
        limit = max(limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        return None, f"{size} bytes; at most {limit} are allowed"
    try:
        return json_parse(value, what="value", max_depth=MAX_VALUE_DEPTH), None
    except InvalidJson as error:
        return None, str(error.detail)


# --- Versions ------------------------------------------------------------------------------------


def version_parse(data: object, *, index: int | None = None) -> Version:
    """One version in wire form (`Version.as_wire()`), checked field by field; WireError."""

    def fail(field: str, problem: str) -> None:
        _fail(field, problem, index=index)

    if not isinstance(data, dict):
        fail("*", "a version is a JSON object")
    missing = VERSION_FIELDS - OPTIONAL_VERSION_FIELDS - data.keys()
    unknown = data.keys() - VERSION_FIELDS
    if missing or unknown:
        field = sorted(missing or unknown)[0]
        fail(field, "missing" if missing else "unknown field")
    key = data["key"]
    problem = key_check(key)
    if problem:
        fail("key", problem)
    version = _uuid(data["version"])
    if version is None:
        fail("version", "a UUID in its canonical form (lowercase, hyphenated)")
    for name in ("hlc", "origin_joined_at"):
        if not _int(data[name]):
            fail(name, "an integer from 0 to 2^63 - 1")
    if not (data["expires_at"] is None or _int(data["expires_at"])):
        fail("expires_at", "null or an integer from 0 to 2^63 - 1 (ms)")
    if not _text(data["origin"], MAX_NODE_ID):
        fail("origin", f"a node id (printable, 1 to {MAX_NODE_ID} characters)")
    if not _int(data["mode"], 0, MAX_MODE + 1):
        fail("mode", f"an integer from 0 to {MAX_MODE}")
    for name in ("owner", "group", "actor"):
        if name not in data:
            continue
        value = data[name]
        if not (value is None or (isinstance(value, str) and len(value) <= MAX_PRINCIPAL)):
            fail(name, f"null or a name of at most {MAX_PRINCIPAL} characters")
    deleted, value = data["deleted"], data["value"]
    if not isinstance(deleted, bool):
        fail("deleted", "true or false")
    if deleted:
        if value is not None:
            fail("value", "a tombstone has no value (null)")
    elif not isinstance(value, str):
        fail("value", "JSON text (a string)")
    else:
        document, problem = value_check(key, value)
        if problem is None and key.startswith("_"):
            kind, _, name = key.removeprefix("_sys/").partition("/")
            problem = record_validate(kind, unquote(name), document)
        if problem:
            fail("value", problem)
    if "actor" not in data:  # an earlier release's version: an expiry has no actor anyway
        expiry = deleted and data["origin_joined_at"] == EXPIRY_JOINED_AT
        data = {**data, "actor": None if expiry else UNKNOWN_ACTOR}
    return Version(**{**data, "version": version})


def versions_parse(items: object) -> list[Version]:
    """A message's list of versions, every one checked before any is applied; WireError."""
    if not isinstance(items, list):
        _fail("versions", "a list of versions")
    return [version_parse(item, index=index) for index, item in enumerate(items)]


def version_problem(v: Version) -> str | None:
    """Why a peer would refuse to receive `v` (None: it would take it), for the sending side."""
    try:
        version_parse(v.as_wire())
    except WireError as error:
        return error.detail
    return None


# --- Anti-entropy and membership requests --------------------------------------------------------


def _object(data: object) -> dict:
    if not isinstance(data, dict):
        _fail("*", "a JSON object")
    return data


def merkle_request_parse(data: object) -> tuple[int, list[int]]:
    """`{"level", "nodes"}`: distinct nodes of that level, so at most FANOUT**level of them (the
    leaf level, KVS_MERKLE_BUCKETS, is what a walk asks for at most)."""
    data = _object(data)
    level, nodes = data.get("level"), data.get("nodes")
    if not _int(level, 0, tree_depth() + 1):
        _fail("level", f"an integer from 0 to {tree_depth()}")
    width = FANOUT**level
    if not isinstance(nodes, list) or not 0 < len(nodes) <= width:
        _fail("nodes", f"a list of 1 to {width} node indices at level {level}")
    if not all(_int(n, 0, width) for n in nodes):
        _fail("nodes", f"node indices at level {level} are integers from 0 to {width - 1}")
    if len(set(nodes)) != len(nodes):
        _fail("nodes", "a node index is given twice")
    return level, nodes


def _buckets_parse(buckets: object) -> list[int]:
    if not isinstance(buckets, list) or not 0 < len(buckets) <= BUCKETS_PER_MESSAGE:
        _fail("buckets", f"a list of 1 to {BUCKETS_PER_MESSAGE} buckets")
    count = settings.KVS_MERKLE_BUCKETS
    if not all(_int(b, 0, count) for b in buckets):
        _fail("buckets", f"buckets are integers from 0 to {count - 1}")
    if len(set(buckets)) != len(buckets):
        _fail("buckets", "a bucket is given twice")
    return buckets


def digest_parse(data: object, *, index: int, buckets: set[int]) -> tuple[str, str, int, int]:
    """One `[key, version, hlc, origin_joined_at]` of a key in one of `buckets`."""

    def fail(field: str, problem: str) -> None:
        _fail(field, problem, index=index, what="digests")

    if not (isinstance(data, list) and len(data) == 4):
        fail("*", "a digest is [key, version, hlc, origin_joined_at]")
    key, version, hlc, joined = data
    problem = key_check(key)
    if problem:
        fail("key", problem)
    if bucket_of(key) not in buckets:
        fail("key", "not in the buckets asked about")
    if _uuid(version) is None:
        fail("version", "a UUID in its canonical form (lowercase, hyphenated)")
    if not _int(hlc):
        fail("hlc", "an integer from 0 to 2^63 - 1")
    if not _int(joined):
        fail("origin_joined_at", "an integer from 0 to 2^63 - 1")
    return key, version, hlc, joined


def digests_request_parse(data: object) -> tuple[list[int], list[tuple[str, str, int, int]]]:
    """`{"buckets", "digests"}`: at most BUCKETS_PER_MESSAGE distinct buckets, and the asker's
    digest of each of its keys in them (each key once)."""
    data = _object(data)
    buckets = _buckets_parse(data.get("buckets"))
    raw = data.get("digests")
    if not isinstance(raw, list):
        _fail("digests", "a list of [key, version, hlc, origin_joined_at]")
    wanted = set(buckets)
    digests = [digest_parse(d, index=i, buckets=wanted) for i, d in enumerate(raw)]
    if len({d[0] for d in digests}) != len(digests):
        _fail("digests", "a key is given twice")
    return buckets, digests


def forget_request_parse(data: object) -> tuple[str, int]:
    """`{"node_id", "incarnation"}`."""
    data = _object(data)
    node_id, incarnation = data.get("node_id"), data.get("incarnation")
    if not _text(node_id, MAX_NODE_ID):
        _fail("node_id", f"a node id (printable, 1 to {MAX_NODE_ID} characters)")
    if not _int(incarnation):
        _fail("incarnation", "an integer from 0 to 2^63 - 1")
    return node_id, incarnation


# --- Answers, on the asking side -----------------------------------------------------------------


def merkle_answer_parse(answer: dict, *, nodes: list[int]) -> tuple[list[str], bool]:
    """The hashes a peer gave for `nodes`, and whether it said it is syncing; WireError."""
    hashes = answer.get("hashes")
    if not isinstance(hashes, list) or len(hashes) != len(nodes):
        _fail("hashes", f"a list of {len(nodes)} hashes")
    hex_digits = set("0123456789abcdef")
    for h in hashes:
        if not (isinstance(h, str) and len(h) == DIGEST_HEX and set(h) <= hex_digits):
            _fail("hashes", f"hashes are {DIGEST_HEX} lowercase hex digits")
    syncing = answer.get("syncing", False)
    if not isinstance(syncing, bool):
        _fail("syncing", "true or false")
    return hashes, syncing


def digests_answer_parse(
    answer: dict, *, buckets: list[int], asked: set[str]
) -> tuple[list[Version], list[str]]:
    """The versions a peer gave (all in `buckets`) and the keys it wants (some of `asked`, the
    keys this node sent digests of); WireError."""
    versions = versions_parse(answer.get("versions"))
    inside = set(buckets)
    for index, v in enumerate(versions):
        if bucket_of(v.key) not in inside:
            _fail("key", "not in the buckets asked about", index=index)
    want = answer.get("want")
    if not isinstance(want, list) or not all(isinstance(k, str) and k in asked for k in want):
        _fail("want", "a list of keys this node sent digests of")
    return versions, list(dict.fromkeys(want))
