from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: the node's metrics at /metrics (Prometheus)."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self):
        from .collectors import connect_collectors

        connect_collectors()
