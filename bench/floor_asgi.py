"""The floor benchmark's ASGI applications, served by `kvs serve --app` like a node.

- `application`: a bare ASGI answer, what the web server alone allows, with no Django;
- `floor_application`: the node's own application (kvsite.asgi), except that the floor views
  are answered the way the node answers single-key reads (on the loop thread when
  KVS_HTTP_INLINE_READS is on), so that they are the floor of that path;
- `a2wsgi_application`: HTTP through a2wsgi's bridge, as the node did before kvsite/bridge.py
  (for the comparison in docs/performance.md).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")
django.setup()  # the server's protocol reads its limits from the settings

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from kvsite import asgi  # noqa: E402
from kvsite.bridge import WsgiBridge, inline_read  # noqa: E402
from kvsite.edge import BufferedBody  # noqa: E402

BODY = b'{"floor": "ok"}\n'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _floor_or_read(scope) -> bool:
    return scope["path"].startswith("/floor/") or inline_read(scope)


def _http(bridge):
    """kvsite's application with `bridge` for HTTP."""
    edge = BufferedBody(
        bridge,
        max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        timeout_s=settings.KVS_HTTP_BODY_TIMEOUT,
    )

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await edge(scope, receive, send)
        else:
            await asgi.application(scope, receive, send)

    return app


_wsgi = get_wsgi_application()
floor_application = _http(
    WsgiBridge(
        _wsgi,
        threads=settings.KVS_HTTP_THREADS,
        inline=_floor_or_read if settings.KVS_HTTP_INLINE_READS else None,
    )
)
a2wsgi_application = _http(WSGIMiddleware(_wsgi, workers=settings.KVS_HTTP_THREADS))
