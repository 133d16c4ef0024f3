"""How the OpenAPI document at /api/schema/ is generated (drf-spectacular's AutoSchema, tuned)."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


def _bare(name: str) -> str:
    for suffix in ("Serializer", "Api"):
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema, naming components after where their serializer lives."""

    def get_serializer_name(self, serializer, direction) -> str:
        """A serializer nested in a view or another serializer is named after its whole path,
        without the `Api` and `Serializer` suffixes: `TopicPublishApi.InputSerializer` is
        `TopicPublishInput`. Without this every view's `InputSerializer` would be `Input`."""
        parts = type(serializer).__qualname__.split(".")
        return "".join(_bare(part) for part in parts if part != "<locals>")
