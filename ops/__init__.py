"""Operations: the node's metrics at /metrics.

Importing this package makes the process a member of the node's metrics directory
(KVS_METRICS_DIR, see ops/multiproc.py) before anything imports prometheus_client: the library
chooses between per-process files (the node's figures, added up at a scrape) and in-memory values
(one process's) when it is first imported, from PROMETHEUS_MULTIPROC_DIR. The directory is set
here rather than inherited, so that nodes started from one shell never share one. Django imports
this package with the installed apps, before any app's code runs.
"""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import multiproc

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _directory_join() -> Path:
    path = Path(settings.KVS_METRICS_DIR)
    if "prometheus_client.values" in sys.modules and os.environ.get(MULTIPROC_ENV) != str(path):
        raise ImproperlyConfigured(
            "prometheus_client was imported before the ops app: its metrics would be this "
            "process's alone. Declare metrics with the classes of ops.metrics."
        )
    os.environ[MULTIPROC_ENV] = str(path)
    multiproc.directory_join(path)
    return path


METRICS_DIR = _directory_join()

from . import preallocate  # noqa: E402 (prometheus_client only once the directory is set)

preallocate.install()
