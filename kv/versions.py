"""A version of a key as it travels between services and nodes, and the order between versions.

The order is the same on every node, so no votes are needed: higher hlc wins; on equal hlc the
version whose origin joined the cluster earlier wins (the oldest-node rule); then the lower UUID.
"""

import uuid
from dataclasses import asdict, dataclass

from .models import Entry

# Expiry tombstones take their id from the expired version, so every node derives the same one.
EXPIRY_NAMESPACE = uuid.UUID("6f0c3c1e-7d1b-4d8e-9a57-2b1f4e9c0a11")
EXPIRY_JOINED_AT = 2**63 - 1  # later than any node's join time: expiry loses every tie


@dataclass(frozen=True)
class Version:
    key: str
    version: uuid.UUID
    hlc: int
    origin: str
    origin_joined_at: int
    deleted: bool = False
    value: str | None = None  # JSON text; None for tombstones
    expires_at: int | None = None
    owner: str | None = None
    group: str | None = None
    mode: int = 0
    actor: str | None = None  # the username that wrote it; None for expiry and system writes

    @classmethod
    def of(cls, entry: Entry) -> "Version":
        """The version an entry row holds."""
        return cls(
            key=entry.key,
            version=entry.version
            if isinstance(entry.version, uuid.UUID)
            else uuid.UUID(str(entry.version)),
            hlc=entry.hlc,
            origin=entry.origin,
            origin_joined_at=entry.origin_joined_at,
            deleted=entry.deleted,
            value=entry.value,
            expires_at=entry.expires_at,
            owner=entry.owner,
            group=entry.group,
            mode=entry.mode,
            actor=entry.actor,
        )

    def order(self) -> tuple[int, int, int]:
        """A sort key: the larger key is the newer version."""
        return version_order(
            hlc=self.hlc, origin_joined_at=self.origin_joined_at, version=self.version
        )

    def as_wire(self) -> dict:
        """A JSON-ready dict (the form versions take between nodes)."""
        data = asdict(self)
        data["version"] = str(self.version)
        return data

    @classmethod
    def from_wire(cls, data: dict) -> "Version":
        """The inverse of `as_wire`, for trusted data; what peers send goes through
        `cluster.wire.version_parse`, which checks every field."""
        return cls(**{**data, "version": uuid.UUID(data["version"])})


def version_order(
    *, hlc: int, origin_joined_at: int, version: uuid.UUID | str
) -> tuple[int, int, int]:
    """The cluster-wide sort key of a version: the larger key is the newer version."""
    if not isinstance(version, uuid.UUID):
        version = uuid.UUID(version)
    return (hlc, -origin_joined_at, -version.int)


def version_newer(a: Version, b: Version) -> bool:
    """Whether `a` beats `b` in the cluster-wide version order."""
    return a.order() > b.order()


def expiry_tombstone(expired: Version) -> Version:
    """The tombstone every node derives for `expired` once its TTL has passed.

    Its hlc is the expired version's hlc + 1, not the expiry time: a write that replaced the
    version before it expired (hlc greater than the version's) must still beat the tombstone on a
    node that sees the expiry first and that write later. A write can tie at exactly hlc + 1 (a
    lagging clock that just saw the expired version), so the tombstone also claims the latest
    possible join time: it loses every tie with a real write.
    """
    return Version(
        key=expired.key,
        version=uuid.uuid5(EXPIRY_NAMESPACE, str(expired.version)),
        hlc=expired.hlc + 1,
        origin=expired.origin,
        origin_joined_at=EXPIRY_JOINED_AT,
        deleted=True,
        value=None,
        expires_at=None,
        owner=expired.owner,
        group=expired.group,
        mode=expired.mode,
    )
