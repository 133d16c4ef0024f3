"""What a credential may do at all, before any ACL is consulted."""

READ = "read"
WRITE = "write"
DELETE = "delete"
PUBSUB = "pubsub"
ADMIN_ACL = "admin:acl"
ADMIN_AUDIT = "admin:audit"
ALL = "*"

SCOPES = (
    READ,
    WRITE,
    DELETE,
    PUBSUB,
    "admin:users:create",
    "admin:users:read",
    "admin:users:update",
    "admin:users:delete",
    "admin:groups:create",
    "admin:groups:read",
    "admin:groups:update",
    "admin:groups:delete",
    "admin:tokens:create",
    "admin:tokens:revoke",
    ADMIN_ACL,
    "admin:cluster",
    ADMIN_AUDIT,
)


def scopes_grant(granted: list[str] | tuple[str, ...], scope: str) -> bool:
    """Whether a credential holding `granted` may act with `scope` (`*` grants everything)."""
    return ALL in granted or scope in granted


def scopes_unknown(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The entries of `scopes` that name no scope (`*` is known)."""
    return [scope for scope in scopes if scope != ALL and scope not in SCOPES]
