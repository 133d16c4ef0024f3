"""kvsite: a distributed, eventually consistent JSON key-value store with a Django face.

The node's Celery app (`kvsite.celery`) is loaded by Django's app registry (cluster's ready()) and
by `celery -A kvsite`, not on import: the `kvs` command line imports this package and starts
faster without it.
"""

__version__ = "0.1.0"
__all__ = ["celery_app", "__version__"]


def __getattr__(name: str):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
