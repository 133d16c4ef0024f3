"""Saved logins of the `kvs` command line: one JSON file, created 0600, of named profiles
(`endpoints`, `username`, `access` and `refresh` JWTs)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def profiles_path() -> Path:
    """KVS_CONFIG, else $XDG_CONFIG_HOME/kvs/profiles.json, else ~/.config/kvs/profiles.json."""
    if os.environ.get("KVS_CONFIG"):
        return Path(os.environ["KVS_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kvs" / "profiles.json"


def profiles_load() -> dict[str, dict]:
    try:
        return json.loads(profiles_path().read_text())
    except (OSError, ValueError):
        return {}


def profile_load(name: str) -> dict:
    return profiles_load().get(name, {})


def profile_save(name: str, profile: dict | None) -> Path:
    """Store (None: forget) profile `name`; the file is written 0600 from its creation on."""
    path = profiles_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    profiles = profiles_load()
    if profile is None:
        profiles.pop(name, None)
    else:
        profiles[name] = profile
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(profiles, out, indent=2)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
    return path
