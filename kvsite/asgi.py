"""ASGI entry point: HTTP to Django, websockets to Channels consumers.

HTTP requests run through Django's WSGI handler (kvsite/bridge.py) rather than Django's ASGI
handler, which starts a new thread for every request, so that every request also opens a new
database connection. Requests run on a fixed pool of KVS_HTTP_THREADS threads that keep their
connections (CONN_MAX_AGE), one hand-off each way per request; with KVS_HTTP_INLINE_READS
single-key reads run on the event loop's own thread instead. Set KVS_HTTP_THREADS=0 to use
Django's own ASGI handler instead. docs/performance.md has the figures behind this choice.

Either way a request reaches Django only once its whole body has arrived, within a size and a
time limit (kvsite/edge.py), so that a slow client holds no HTTP thread.

Long-lived HTTP answers (the watch as server-sent events, `GET /api/v1/watch`) never reach an
HTTP thread: `http_streams` serves them on the event loop, with the websocket watch's consumer.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvsite.settings")

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # sets Django up; also the fallback HTTP handler

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from kv.consumers import WatchConsumer, WatchStreamConsumer  # noqa: E402
from kvsite.bridge import WsgiBridge, inline_read  # noqa: E402
from kvsite.edge import BufferedBody  # noqa: E402
from kvsite.realtime import HttpRouter, NoRouteConsumer  # noqa: E402
from kvsite.ws_auth import CredentialMiddlewareStack  # noqa: E402
from pubsub.consumers import PubSubConsumer  # noqa: E402

# Websockets authenticate like the REST API: ?token=, Authorization: Bearer, or the session cookie.
websocket_urlpatterns = [
    path("ws/v1/watch", WatchConsumer.as_asgi()),
    re_path(r"^ws/v1/pubsub/(?P<topic>(?s:.+))$", PubSubConsumer.as_asgi()),
    re_path(r"", NoRouteConsumer.as_asgi()),  # anything else: refused with 404
]

if settings.KVS_HTTP_THREADS > 0:
    http_app = WsgiBridge(
        get_wsgi_application(),
        threads=settings.KVS_HTTP_THREADS,
        inline=inline_read if settings.KVS_HTTP_INLINE_READS else None,
    )
else:
    http_app = django_asgi_app

# Streams served on the event loop, never by an HTTP thread: the watch as server-sent events.
http_streams = {
    "/api/v1/watch": CredentialMiddlewareStack(WatchStreamConsumer.as_asgi()),
    "/api/v1/watch/": CredentialMiddlewareStack(WatchStreamConsumer.as_asgi()),
}

application = ProtocolTypeRouter(
    {
        "http": HttpRouter(
            http_streams,
            BufferedBody(
                http_app,
                max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
                timeout_s=settings.KVS_HTTP_BODY_TIMEOUT,
            ),
        ),
        "websocket": CredentialMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

# Everything imported and built so far lives as long as the process: keep it out of the cyclic
# garbage collector's full passes, which otherwise walk it all (80-180 ms pauses in a web worker,
# long enough to show in every websocket's latency).
gc.freeze()
