"""Token secrets: how they are made and how they are hashed for storage and lookup."""

import hashlib
import secrets

SECRET_PREFIX = "kvs_"


def token_secret_new() -> str:
    """A fresh 256-bit bearer secret."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def token_id_new() -> str:
    """A public token id (safe to show and log)."""
    return "tok_" + secrets.token_hex(8)


def token_hash(secret: str) -> str:
    """The stored form of a secret. Secrets are random and long, so one SHA-256 suffices."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
