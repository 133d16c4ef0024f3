from datetime import UTC, datetime

import pytest
from celery.schedules import crontab

from backups.schedule import ScheduleInvalid, schedule_parse


def _at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_default_fires_at_midnight_utc():
    schedule = schedule_parse("0 0 * * *")
    assert isinstance(schedule, crontab)
    schedule.nowfun = lambda: _at(2026, 5, 2, 0, 0, 30)
    due, _ = schedule.is_due(_at(2026, 5, 1, 0, 0, 10))
    assert due
    schedule.nowfun = lambda: _at(2026, 5, 2, 12, 0)
    due, next_s = schedule.is_due(_at(2026, 5, 2, 0, 0, 10))
    assert not due and 11 * 3600 < next_s <= 12 * 3600


def test_fields_are_in_cron_order():
    schedule = schedule_parse("30 2 15 6 *")  # 02:30 on 15 June
    assert schedule.minute == {30} and schedule.hour == {2}
    assert schedule.day_of_month == {15} and schedule.month_of_year == {6}


def test_a_short_schedule_is_due_every_minute():
    schedule = schedule_parse("* * * * *")
    schedule.nowfun = lambda: _at(2026, 5, 2, 10, 1, 1)
    assert schedule.is_due(_at(2026, 5, 2, 10, 0, 1))[0]


def test_empty_means_never():
    assert schedule_parse("") is None and schedule_parse("   ") is None


@pytest.mark.parametrize(
    "text", ["0 0 * *", "61 * * * *", "* 25 * * *", "a b c d e", "0 0 * * * *"]
)
def test_a_bad_schedule_is_refused_naming_it(text):
    with pytest.raises(ScheduleInvalid, match="KVS_BACKUP_SCHEDULE"):
        schedule_parse(text)


def test_the_settings_put_the_backup_in_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["backup-scheduled"]
    assert entry["task"] == "backups.tasks.backup_scheduled"
    assert entry["schedule"] == schedule_parse(settings.KVS_BACKUP_SCHEDULE)
