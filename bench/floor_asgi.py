"""The floor benchmark's bare ASGI answer: what the web server alone allows, with no Django.

Served by `kvsite.server.serve` like a node (same protocol, limits and worker count)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")
django.setup()  # the server's protocol reads its limits from the settings

BODY = b'{"floor": "ok"}\n'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
