from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Logical snapshots of one node: taken, kept, pruned, listed, restored."""

    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from ops.events import backup_time_source

        from .selectors import newest_backup_at

        backup_time_source(newest_backup_at)  # kvs_backup_last_success_timestamp_seconds
