"""What clients send: every request body and websocket frame is JSON, parsed by `json_parse`.

One set of rules for the REST API (`JSONParser` is DRF's only parser), the key API and schemas
(whose body is the document itself), the admin's JSON fields and the websockets:

- the text is JSON whatever the Content-Type says (none, curl's form type, text/plain, ...);
- arrays and objects nest at most KVS_MAX_JSON_DEPTH levels, counted without recursion, so a
  body nested 100,000 deep costs one scan and never reaches a recursive parser or encoder;
- integers keep every digit (orjson would turn those beyond 64 bits into floats: such texts take
  the standard library's parser), up to MAX_INT_DIGITS digits;
- no NaN or Infinity, no number beyond a double's range, no lone surrogate, UTF-8 only.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate

import orjson
from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers

from .exceptions import InvalidJson

# Python's own limit on converting integer text (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4300
# A run of 19 digits may be an integer beyond 64 bits; such texts take the exact (slow) parser.
_LONG_DIGITS = re.compile(rb"\d{19}")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_NESTING_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


class _BeyondLimit(ValueError):
    pass


def json_parse(data: bytes | str, *, what: str = "body", max_depth: int | None = None) -> object:
    """The JSON value of `data`; raise InvalidJson naming the problem (`what`: "body", "frame").

    `max_depth` defaults to KVS_MAX_JSON_DEPTH."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # a lone surrogate is then invalid UTF-8
    if not data.strip():
        raise InvalidJson(f"The {what} is empty: send a JSON value.")
    limit = settings.KVS_MAX_JSON_DEPTH if max_depth is None else max_depth
    depth = json_depth_beyond(data, limit)
    if depth:
        raise InvalidJson(
            f"The {what} nests arrays and objects {depth} levels deep; at most {limit} are allowed."
        )
    if _LONG_DIGITS.search(data):
        return _parse_exact(data, what)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The {what} is not valid JSON: {exc}.") from None


def json_depth_beyond(data: bytes, limit: int) -> int:
    """The nesting depth of JSON text if it is beyond `limit`, else 0."""
    if len(data) <= limit or data.count(b"[") + data.count(b"{") <= limit:  # no need to look
        return 0
    depth = json_depth(data)
    return depth if depth > limit else 0


def json_depth(data: bytes) -> int:
    """How many levels arrays and objects nest in JSON text (0: a scalar), by a scan without
    recursion; brackets inside strings do not count. (Text that is not JSON gets some number.)"""
    # Escaped backslashes, then escaped quotes, leave only the quotes that open and close strings.
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    outside_strings = b"".join(structure.split(b'"')[::2]).translate(_NESTING_STEPS)
    return max(accumulate(memoryview(outside_strings).cast("b")), default=0)


def _parse_exact(data: bytes, what: str) -> object:
    """The standard library's parser, for texts with long integers (kept exact)."""

    def no_constants(name):
        raise ValueError(f"{name} is not valid JSON")

    def finite(text):
        number = float(text)
        if math.isinf(number):
            raise ValueError(f"the number {text[:40]} is out of range")
        return number

    def bounded(text):
        digits = len(text) - text.startswith("-")
        if digits > MAX_INT_DIGITS:
            raise _BeyondLimit(
                f"The {what} holds an integer of {digits} digits; at most {MAX_INT_DIGITS} "
                "are allowed."
            )
        return int(text)

    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_constant=no_constants,
            parse_float=finite,
            parse_int=bounded,
        )
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # refuses lone surrogates
    except _BeyondLimit as exc:
        raise InvalidJson(str(exc)) from None
    except UnicodeEncodeError:
        raise InvalidJson(
            f"The {what} is not valid JSON: a string holds a lone surrogate."
        ) from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidJson(f"The {what} is not valid JSON: {exc}.") from None
    except RecursionError:  # only if KVS_MAX_JSON_DEPTH was set beyond what the stack holds
        raise InvalidJson(f"The {what} is nested too deeply.") from None
    return value


class JSONParser(parsers.JSONParser):
    """DRF's only parser: the body is JSON whatever its Content-Type (kvsite.negotiation picks
    this parser for every type). A view may allow `json_depth_extra` more levels: node-to-node
    requests wrap what clients sent in an envelope of their own."""

    def parse(self, stream, media_type=None, parser_context=None):
        extra = getattr((parser_context or {}).get("view"), "json_depth_extra", 0)
        return json_parse(stream.read(), max_depth=settings.KVS_MAX_JSON_DEPTH + extra)


def request_json(request) -> object:
    """`request.data`, where an empty body is `{}` whatever its Content-Type. (For an empty body
    with a form type DRF gives an empty QueryDict without asking a parser, and serializers read
    a QueryDict as an HTML form: a BooleanField left out would read as false.)"""
    data = request.data
    return {} if isinstance(data, QueryDict) else data
