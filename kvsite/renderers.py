"""A JSON renderer on orjson: the hot path renders values that are already JSON text."""

import orjson
from rest_framework.renderers import JSONRenderer


class FastJSONRenderer(JSONRenderer):
    """Render with orjson; `orjson.Fragment` values are spliced in without re-encoding."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=str)
