"""Metrics files have their blocks before they are mapped or grown (ops/preallocate.py): a full
disk fails that step with ENOSPC instead of killing the process with SIGBUS on a page write."""

import errno
import os

import pytest
from prometheus_client.mmap_dict import MmapedDict

from ops import preallocate


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_new_file_is_allocated_before_it_is_mapped(tmp_path):
    path = tmp_path / "counter_1.db"
    values = MmapedDict(str(path))
    try:
        assert allocated(path) >= os.stat(path).st_size >= 1 << 16
    finally:
        values.close()


def test_a_growing_file_is_allocated_before_it_grows(tmp_path):
    path = tmp_path / "histogram_1.db"
    values = MmapedDict(str(path))
    try:
        for n in range(2_000):  # ~70 bytes each: well past the first 64 KiB
            values.write_value(f"kvs_request_seconds_bucket{{le={n}}}", 1.0, 0.0)
        assert os.stat(path).st_size > 1 << 16
        assert allocated(path) >= os.stat(path).st_size
    finally:
        values.close()


def test_a_full_disk_is_an_oserror_not_a_crash(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as error:
        MmapedDict(str(tmp_path / "counter_2.db"))
    assert error.value.errno == errno.ENOSPC


def test_install_is_in_effect_and_once():
    preallocate.install()
    assert MmapedDict.__init__.__module__ == "ops.preallocate"
