"""The backup file: zstd-compressed JSON lines, a header first and a trailer last.

    {"kind": "header", "format": "kvsite-backup", "format_version": 1, "node": ..., ...}
    {"kind": "group", ...}            one line per record, kinds in the order of KINDS
    ...
    {"kind": "end", "records": n, "sha256": "<hex>"}

The trailer's SHA-256 covers the uncompressed bytes of every line before it, and the zstd frame
carries its own content checksum, so a truncated file (no trailer), a flipped byte (a checksum
or JSON error, or another hash) and an edited line (another hash) are all told apart from a
whole one. A reader verifies the whole file before a restore writes anything (`backup_verify`),
and the restore checks the hash again as it reads the second time.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import zstandard

from kvsite.exceptions import KvsError

FORMAT = "kvsite-backup"
FORMAT_VERSION = 1
HEADER, END = "header", "end"
# Record kinds, in the order they are written (and restored: groups before the users in them).
KINDS = ("group", "user", "token", "rule", "schema", "entry", "history", "member", "cursor")
ZSTD_LEVEL = 3
_READ_BUFFER = 1 << 20


class BackupDamaged(KvsError):
    """The file is not a whole, unaltered kvsite backup; nothing was restored."""

    code = "backup_damaged"


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes the bytes written through it (the compressed ones)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target, self.sha256, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)


class BackupWriter:
    """Writes one backup file: `header()`, then `record()` per record, then `close()`."""

    def __init__(self, target: BinaryIO) -> None:
        self._file = _HashingFile(target)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        self._stream = compressor.stream_writer(self._file, closefd=False)
        self._content = hashlib.sha256()
        self.records = 0

    def _line(self, data: dict) -> None:
        line = orjson.dumps(data) + b"\n"
        self._content.update(line)
        self._stream.write(line)

    def header(self, header: dict) -> None:
        self._line({"kind": HEADER, "format": FORMAT, "format_version": FORMAT_VERSION, **header})

    def record(self, kind: str, data: dict) -> None:
        self._line({"kind": kind, **data})
        self.records += 1

    def close(self) -> tuple[int, str]:
        """Write the trailer and end the frame; return the file's size and SHA-256 (hex)."""
        trailer = {"kind": END, "records": self.records, "sha256": self._content.hexdigest()}
        self._stream.write(orjson.dumps(trailer) + b"\n")
        self._stream.close()
        return self._file.size, self._file.sha256.hexdigest()


def backup_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """`(line number, record)` for every line of the file up to the trailer, header first; raise
    BackupDamaged (naming the line) as soon as the file turns out not to be whole.

    The trailer is checked when the iteration reaches it, so only a caller that has read every
    line knows the file is whole (see `backup_verify`)."""
    content = hashlib.sha256()
    number, records, ended = 0, 0, False
    try:
        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            for number, line in enumerate(io.BufferedReader(reader, _READ_BUFFER), start=1):
                if ended:
                    raise BackupDamaged(f"{path}: line {number}: data after the trailer")
                data = _parse(path, number, line)
                kind = data.get("kind")
                if number == 1:
                    _header_check(path, data)
                elif kind == END:
                    _trailer_check(path, number, data, records, content.hexdigest())
                    ended = True
                    continue
                elif kind not in KINDS:
                    raise BackupDamaged(f"{path}: line {number}: unknown record kind {kind!r}")
                else:
                    records += 1
                content.update(line)
                yield number, data
    except zstandard.ZstdError as error:
        where = f"after line {number}" if number else "from its start"
        raise BackupDamaged(
            f"{path}: damaged (or no kvsite backup): its zstd stream breaks {where}: {error}"
        ) from None
    except OSError as error:
        raise BackupDamaged(f"{path}: cannot be read: {error.strerror or error}") from None
    if number == 0:
        raise BackupDamaged(f"{path}: empty, not a kvsite backup")
    if not ended:
        raise BackupDamaged(f"{path}: truncated: no trailer after line {number}")


def _parse(path: Path, number: int, line: bytes) -> dict:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        if number == 1:
            raise BackupDamaged(
                f"{path}: not a kvsite backup (the first line is no JSON)"
            ) from None
        raise BackupDamaged(f"{path}: line {number}: not JSON (altered or truncated)") from None
    if not isinstance(data, dict):
        raise BackupDamaged(f"{path}: line {number}: not a JSON object")
    return data


def _header_check(path: Path, header: dict) -> None:
    if header.get("kind") != HEADER or header.get("format") != FORMAT:
        raise BackupDamaged(f"{path}: not a kvsite backup (no header line)")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupDamaged(
            f"{path}: backup format version {version!r}; this kvsite reads version {FORMAT_VERSION}"
        )


def _trailer_check(path: Path, number: int, trailer: dict, records: int, sha256: str) -> None:
    if trailer.get("sha256") != sha256:
        raise BackupDamaged(f"{path}: altered: the SHA-256 of its content does not match")
    if trailer.get("records") != records:
        raise BackupDamaged(
            f"{path}: line {number}: the trailer counts {trailer.get('records')!r} records, "
            f"the file holds {records}"
        )


def backup_header(path: Path) -> dict:
    """The header line of a backup file (without reading the rest: nothing is verified)."""
    return next(iter(backup_lines(path)))[1]
