"""How the OpenAPI document at /api/schema/ is generated (drf-spectacular, tuned), and the error
answers every view documents with `errors(...)`."""

from drf_spectacular import generators
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import is_basic_type
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every error answer (kvsite.exceptions renders them all alike)."""

    detail = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. `not_found`.")
    errors = serializers.JSONField(
        required=False, help_text="Invalid input: the messages per field."
    )


ERROR_MEANINGS = {
    400: "Bad input (key, query parameter, body); nothing was changed.",
    401: "No credential, or an invalid, expired or revoked one.",
    403: "The credential lacks the scope or the ACL permission; or the node is read-only.",
    404: "No such record.",
    409: "Conflict with the current state (a cas mismatch, an existing name).",
    413: "The body is too large.",
    429: "Throttled: retry after the `Retry-After` header's seconds.",
    503: "The node is syncing with the cluster; try again shortly.",
}


# A key, prefix or topic in a path: at most 1024 bytes of UTF-8, so at most 1024 characters (the
# rest of what makes a valid one is checked by the API, which answers 400).
KEY_STRING = {"type": "string", "minLength": 1, "maxLength": 1024}


def path_param(name: str, *, description: str, example: str) -> OpenApiParameter:
    """A key-like path parameter (a key, prefix or topic) with one example."""
    return OpenApiParameter(
        name,
        KEY_STRING,
        OpenApiParameter.PATH,
        description=description,
        examples=[OpenApiExample(f"A {name}", value=example)],
    )


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """`responses` entries for these error statuses, each answered as `Error`."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]) for code in codes
    }


def _bare(name: str) -> str:
    for suffix in ("Serializer", "Api"):
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, naming components after where their serializer lives and
    documenting the error answers that do not depend on the view."""

    def get_serializer_name(self, serializer, direction) -> str:
        """A serializer nested in a view or another serializer is named after its whole path,
        without the `Api` and `Serializer` suffixes: `TopicPublishApi.InputSerializer` is
        `TopicPublishInput`. Without this every view's `InputSerializer` would be `Input`."""
        parts = type(serializer).__qualname__.split(".")
        return "".join(_bare(part) for part in parts if part != "<locals>")

    def get_tags(self) -> list[str]:
        """Operations are grouped by the app that serves them (kv, accounts, cluster, pubsub)."""
        return [type(self.view).__module__.split(".")[0]]

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # The free-form bodies here (a key's value, a JSON Schema) are the whole point of their
        # request: an empty one is refused with 400.
        return schema, required or isinstance(serializer, dict) or is_basic_type(serializer)

    def _get_response_headers_for_code(self, status_code, direction="response"):
        headers = super()._get_response_headers_for_code(status_code, direction)
        if str(status_code) == "429":
            headers["Retry-After"] = {
                "schema": {"type": "integer"},
                "description": "Seconds until a request may succeed again.",
            }
        return headers

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        common = []
        if self.view.authentication_classes:
            common.append(401)
        if self.view.get_throttles():
            common.append(429)
        if self.method in ("PUT", "POST", "PATCH") and self.get_request_serializer() is not None:
            common += [400, 413]  # malformed JSON; past DATA_UPLOAD_MAX_MEMORY_SIZE
        for code, response in errors(*common).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(response, str(code))
        if self.method == "HEAD":  # the answers of a HEAD never have a body
            for response in responses.values():
                response.pop("content", None)
        return responses


class EndpointEnumerator(generators.EndpointEnumerator):
    """drf-spectacular's, keeping HEAD for views that answer it themselves (not as a GET)."""

    def get_allowed_methods(self, callback) -> list[str]:
        methods = super().get_allowed_methods(callback)
        if "head" in vars(getattr(callback, "cls", object)):
            at = methods.index("GET") + 1 if "GET" in methods else len(methods)
            methods.insert(at, "HEAD")
        return methods


class SchemaGenerator(generators.SchemaGenerator):
    endpoint_inspector_cls = EndpointEnumerator
