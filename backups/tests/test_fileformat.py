import io

import orjson
import pytest
import zstandard

from backups.fileformat import BackupDamaged, BackupWriter, backup_header, backup_lines


def _write(path, records=(("entry", {"key": "a"}), ("entry", {"key": "b"}))) -> bytes:
    with open(path, "wb") as out:
        writer = BackupWriter(out)
        writer.header({"node": "node1", "counts": {}})
        for kind, data in records:
            writer.record(kind, data)
        writer.close()
    return path.read_bytes()


def _lines(path) -> list[dict]:
    return [record for _, record in backup_lines(path)]


def _raw(path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()


def _rewrite(path, content: bytes) -> None:
    path.write_bytes(zstandard.ZstdCompressor().compress(content))


def test_round_trip_gives_header_then_records(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    _write(path)
    lines = _lines(path)
    assert lines[0]["kind"] == "header" and lines[0]["node"] == "node1"
    assert lines[0]["format"] == "kvsite-backup" and lines[0]["format_version"] == 1
    assert [r["key"] for r in lines[1:]] == ["a", "b"]
    assert backup_header(path)["node"] == "node1"


def test_the_writer_reports_size_and_sha256_of_the_file(tmp_path):
    import hashlib

    path = tmp_path / "b.jsonl.zst"
    with open(path, "wb") as out:
        writer = BackupWriter(out)
        writer.header({})
        size, sha256 = writer.close()
    assert size == path.stat().st_size
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "b.jsonl.zst"
    data = _write(path, [("entry", {"key": f"k{i}", "value": "x" * 50}) for i in range(2000)])
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BackupDamaged, match="truncated|zstd|not JSON"):
        _lines(path)


def test_a_file_cut_after_its_last_record_is_refused(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    _write(path)
    content = _raw(path)
    _rewrite(path, content[: content.rindex(b'{"kind":"end"')])
    with pytest.raises(BackupDamaged, match="truncated: no trailer"):
        _lines(path)


def test_a_flipped_byte_is_refused(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    data = bytearray(_write(path, [("entry", {"key": f"k{i}"}) for i in range(500)]))
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(BackupDamaged):
        _lines(path)


def test_an_edited_line_is_refused_by_the_hash(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    _write(path)
    _rewrite(path, _raw(path).replace(b'"key":"b"', b'"key":"c"'))
    with pytest.raises(BackupDamaged, match="SHA-256"):
        _lines(path)


def test_a_wrong_header_is_refused(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    _rewrite(path, orjson.dumps({"kind": "entry"}) + b"\n")
    with pytest.raises(BackupDamaged, match="no header line"):
        _lines(path)
    header = {"kind": "header", "format": "kvsite-backup", "format_version": 99}
    _rewrite(path, orjson.dumps(header) + b"\n")
    with pytest.raises(BackupDamaged, match="format version 99"):
        _lines(path)


@pytest.mark.parametrize("content", [b"", b"plain text\n", b"\x00\x01garbage"])
def test_what_is_no_backup_is_refused(tmp_path, content):
    path = tmp_path / "b.jsonl.zst"
    path.write_bytes(content)
    with pytest.raises(BackupDamaged):
        _lines(path)


def test_lines_after_the_trailer_are_refused(tmp_path):
    path = tmp_path / "b.jsonl.zst"
    _write(path)
    _rewrite(path, _raw(path) + b'{"kind":"entry","key":"z"}\n')
    with pytest.raises(BackupDamaged, match="after the trailer"):
        _lines(path)


def test_a_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(BackupDamaged, match="cannot be read"):
        _lines(tmp_path / "nothing.jsonl.zst")
