"""Nodes on skewed clocks: the environment that runs chosen nodes of a `kvs up` under libfaketime
(tests/faults/faketime/sitecustomize.py), and the offset files that move their clocks."""

from __future__ import annotations

from pathlib import Path

FAKETIME_DIR = Path(__file__).resolve().parent / "faketime"


def faketime_env(files: dict[int, Path]) -> dict[str, str]:
    """The launch environment that runs node `index` on the clock of `files[index]`."""
    return {
        "PYTHONPATH": str(FAKETIME_DIR),
        "FAKETIME_NODES": ",".join(f"node{i}={path}" for i, path in files.items()),
    }


def offset_set(path: Path, seconds: int) -> None:
    """Move the clock of the node reading `path` to `seconds` from the real one, at once."""
    path.write_text(f"{seconds:+d}\n")
