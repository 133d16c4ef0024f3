"""A JSON renderer on orjson: the hot path renders values that are already JSON text."""

import json

import orjson
from rest_framework.renderers import JSONRenderer


class FastJSONRenderer(JSONRenderer):
    """Render with orjson; `orjson.Fragment` values are spliced in without re-encoding.

    What orjson refuses is rendered all the same: DRF's errors for list items have integer keys
    (`{"members": {0: [...]}}`), and a stored schema may hold an integer beyond 64 bits (the
    standard library's encoder then; such data holds no Fragment)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        try:
            return orjson.dumps(data, default=str)
        except TypeError:
            pass
        try:
            return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":")).encode()
