from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Logical snapshots of one node: taken, kept, pruned, listed, restored."""

    name = "backups"
    verbose_name = "Backups"
