"""Content negotiation with a fast path for the common API client."""

from rest_framework.negotiation import DefaultContentNegotiation

_FAST_ACCEPT = {"", "*/*", "application/json"}


class FastContentNegotiation(DefaultContentNegotiation):
    """Pick the JSON renderer at once for clients that accept JSON or anything; else as DRF does.
    Every body is JSON: the first parser (kvsite.parsers.JSONParser) reads it whatever its
    Content-Type says, so that curl's default form type is no 415."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT", "")
        if accept in _FAST_ACCEPT and not request.query_params.get(
            self.settings.URL_FORMAT_OVERRIDE
        ):
            renderer = renderers[0]
            return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
