from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"

    def ready(self):
        import kvsite.celery  # noqa: F401 (the node's Celery app: tasks sent from here use its broker)

        from .lifecycle import connect_start
        from .records import connect_mirrors
        from .replication import connect_push

        connect_mirrors()
        connect_push()
        connect_start()
