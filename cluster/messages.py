"""The gossip wire message, and its validation on the way in (from a request or an answer)."""

from __future__ import annotations

from typing import TypedDict

from .membership import STATUSES, MemberDigest, MemberTable

MAX_MEMBERS = 1024
MAX_NODE_ID = 64
MAX_URL = 255
MAX_COUNTER = 2**63 - 1

# {"from": node_id, "members": [MemberDigest, ...]}: the sender's whole table, itself included.
GossipMessage = TypedDict("GossipMessage", {"from": str, "members": list[MemberDigest]})


class InvalidMessage(ValueError):
    """A gossip message that does not have the expected shape."""


def gossip_message(table: MemberTable) -> GossipMessage:
    """Our member table as a pushPull message."""
    return {"from": table.self_id, "members": table.digests()}


def gossip_message_parse(data: object) -> GossipMessage:
    """`data` checked to be a GossipMessage; raise InvalidMessage otherwise."""
    if not isinstance(data, dict) or set(data) != {"from", "members"}:
        raise InvalidMessage("expected an object with `from` and `members`")
    sender, members = data["from"], data["members"]
    if not _text(sender, MAX_NODE_ID):
        raise InvalidMessage("`from` must be a node id")
    if not isinstance(members, list) or len(members) > MAX_MEMBERS:
        raise InvalidMessage(f"`members` must be a list of at most {MAX_MEMBERS}")
    return {"from": sender, "members": [_digest(member) for member in members]}


def _digest(data: object) -> MemberDigest:
    """One member of a message, checked."""
    if not isinstance(data, dict) or set(data) != MemberDigest.__required_keys__:
        raise InvalidMessage(f"a member must have exactly {sorted(MemberDigest.__required_keys__)}")
    if not (_text(data["node_id"], MAX_NODE_ID) and _text(data["url"], MAX_URL)):
        raise InvalidMessage("a member's node_id and url must be non-empty strings")
    if not all(_counter(data[key]) for key in ("joined_at", "incarnation", "heartbeat")):
        raise InvalidMessage("joined_at, incarnation and heartbeat must be integers >= 0")
    if data["status"] not in STATUSES:
        raise InvalidMessage(f"a member's status must be one of {', '.join(STATUSES)}")
    return MemberDigest(**data)


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _counter(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNTER
