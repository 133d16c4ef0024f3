"""Background builds of declared indexes."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def index_build(name: str) -> None:
    """Build the declared index `name` if it is still building (safe to repeat)."""
    services.index_build(name=name)


@shared_task(ignore_result=True)
def indexes_build_pending() -> int:
    """Build every declared index still marked building (a build a restart interrupted)."""
    return services.indexes_build_pending()
