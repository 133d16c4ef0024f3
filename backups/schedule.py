"""KVS_BACKUP_SCHEDULE: cron syntax (minute hour day-of-month month day-of-week) to a Celery
crontab. Read by the settings, so it imports nothing of Django."""

from celery.schedules import crontab


class ScheduleInvalid(ValueError):
    pass


def schedule_parse(text: str) -> crontab | None:
    """The crontab of a cron expression (None for an empty one: no scheduled backups); raise
    ScheduleInvalid naming the problem."""
    fields = text.split()
    if not fields:
        return None
    if len(fields) != 5:
        raise ScheduleInvalid(
            f"KVS_BACKUP_SCHEDULE {text!r}: give five cron fields (minute hour day-of-month "
            "month day-of-week), e.g. '0 0 * * *'"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except ValueError as error:
        raise ScheduleInvalid(f"KVS_BACKUP_SCHEDULE {text!r}: {error}") from None
