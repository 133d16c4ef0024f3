from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"

    def ready(self):
        from .lifecycle import connect_start
        from .records import connect_mirrors
        from .replication import connect_push

        connect_mirrors()
        connect_push()
        connect_start()
