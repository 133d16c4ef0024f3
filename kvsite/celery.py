"""The node's Celery app: broker on the node's Redis, tasks found in each app's tasks module."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")

app = Celery("kvsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
