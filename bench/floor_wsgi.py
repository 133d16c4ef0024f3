"""The floor benchmark's WSGI application (the node's settings and floor routes), for granian's
WSGI interface in `floor_bench.py --candidates`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")
application = get_wsgi_application()
