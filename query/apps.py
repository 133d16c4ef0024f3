from django.apps import AppConfig


class QueryConfig(AppConfig):
    name = "query"
    verbose_name = "Queries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Local and replicated definitions alike are saved through the model: each save starts
        # (or restarts) building the database index, each delete drops it.
        from .services import connect_builds

        connect_builds()
