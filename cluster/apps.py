from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"

    def ready(self):
        from .records import connect_mirrors

        connect_mirrors()
