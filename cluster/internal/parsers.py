"""The internal API's parser: the one JSON parser, after inflating a compressed body."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError

from kvsite.parsers import JSONParser, json_parse

from ..compression import HEADER_ENCODING, BadEncoding, body_decode


class InternalJSONParser(JSONParser):
    """Node-to-node bodies: JSON, sent as they are or zstd-compressed (`X-KVS-Encoding`)."""

    def parse(self, stream, media_type=None, parser_context=None):
        context = parser_context or {}
        request = context.get("request")
        encoding = request.headers.get(HEADER_ENCODING) if request is not None else None
        try:
            body = body_decode(stream.read(), encoding, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        except BadEncoding as error:
            raise ParseError(f"The body is refused: {error}.") from None
        extra = getattr(context.get("view"), "json_depth_extra", 0)
        return json_parse(body, max_depth=settings.KVS_MAX_JSON_DEPTH + extra)
