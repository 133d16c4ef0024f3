from django.apps import AppConfig


class KvConfig(AppConfig):
    name = "kv"
    verbose_name = "Key-value store"

    def ready(self):
        # Every process that applies entries (web workers, Celery, management commands) announces
        # them to the watch sockets.
        from .checkpoint import connect_checkpoints
        from .metrics import connect_metrics
        from .watch import connect_watch

        connect_watch()
        connect_metrics()
        connect_checkpoints()
