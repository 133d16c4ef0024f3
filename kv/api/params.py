"""Query-string parsing that answers bad input with a 400 naming the parameter."""

from kvsite.exceptions import InvalidInput

_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


def param_flag(request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidInput(f"Query parameter {name!r} must be 1 or 0, not {raw!r}.")


def param_int(request, name: str, *, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"Query parameter {name!r} must be an integer, not {raw!r}.") from None


def param_str(request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and any(ord(ch) < 32 for ch in raw):
        raise InvalidInput(f"Query parameter {name!r} contains a control character.")
    return raw
