from django.apps import AppConfig


class PubsubConfig(AppConfig):
    """Topic pub/sub over websockets and REST, forwarded once to every alive peer."""

    name = "pubsub"
    verbose_name = "Pub/sub"
