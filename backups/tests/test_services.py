import os
import time

import pytest

from backups.fileformat import backup_header
from backups.models import Backup
from backups.selectors import backup_path, backups_list
from backups.services import backup_create, backups_prune
from backups.tasks import backup_scheduled
from kv.selectors import store_state
from kv.services import entry_put

pytestmark = pytest.mark.django_db

DAY = 86400


def _age(path, days: float) -> None:
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment))


def test_a_backup_goes_into_the_backup_dir_with_its_header(_backup_dir):
    entry_put(key="a", value="1")
    backup = backup_create()
    path = backup_path(backup)
    assert path.parent == _backup_dir and path.name.endswith(".jsonl.zst")
    header = backup_header(path)
    assert header["revision"] == store_state().revision == backup.revision
    assert header["merkle_root"] == backup.merkle_root
    assert not list(_backup_dir.glob("*.partial"))


def test_prune_removes_files_past_the_retention_only(settings, _backup_dir):
    settings.KVS_BACKUP_RETENTION_DAYS = 7
    old, recent = backup_create(), backup_create()
    _age(backup_path(old), 8)
    _age(backup_path(recent), 6)
    stray = _backup_dir / "notes.txt"
    stray.write_text("mine")
    _age(stray, 30)
    partial = _backup_dir / "x.jsonl.zst.partial"
    partial.write_bytes(b"")
    _age(partial, 8)
    assert backups_prune() == 2
    assert [b.id for b in backups_list()] == [recent.id]
    assert not Backup.objects.filter(pk=old.pk).exists()
    assert stray.exists() and not partial.exists()


def test_a_retention_of_zero_keeps_everything(settings):
    settings.KVS_BACKUP_RETENTION_DAYS = 0
    backup = backup_create()
    _age(backup_path(backup), 400)
    assert backups_prune() == 0 and backups_list() == [backup]


def test_the_scheduled_task_backs_up_then_prunes(settings):
    settings.KVS_BACKUP_RETENTION_DAYS = 1
    old = backup_create()
    _age(backup_path(old), 2)
    made = backup_scheduled()
    assert [b.id for b in backups_list()] == [made]


def test_the_metrics_report_when_the_newest_backup_was_taken(_backup_dir):
    from backups.selectors import newest_backup_at
    from ops.events import backup_last_success, backup_time_source

    backup_time_source(newest_backup_at)  # as BackupsConfig.ready does (a test may replace it)
    assert backup_last_success() is None  # none yet
    entry_put(key="a", value="1")
    backup = backup_create(now=1_800_000_000_000)
    assert backup_last_success() == 1_800_000_000.0
    backup_path(backup).unlink()  # its file gone: no backup to count on
    assert backup_last_success() is None
