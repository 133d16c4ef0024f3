"""Settings of the floor benchmark's web server: the node's own, plus the floor routes."""

from kvsite.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
