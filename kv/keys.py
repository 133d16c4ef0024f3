"""Key rules, TTL parsing and key-range helpers."""

import re
import unicodedata

from kvsite.exceptions import InvalidInput

MAX_KEY_BYTES = 1024
_TTL = re.compile(r"^(\d{1,12})([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 100 * 365 * 86400


# Characters no key holds: control characters; characters that are invisible or change how the
# text around them reads, so that two keys that look alike could differ (category Cf: bidi
# overrides and isolates, zero-width spaces and joiners, the BOM, the soft hyphen); line and
# paragraph separators; and U+FFFD, which servers put in place of bytes that were not UTF-8, so
# that different byte strings would all become one key.
_CONTROL = {"Cc": "a control character"}
_REFUSED = {
    **_CONTROL,
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_REPLACEMENT = "\ufffd"
_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")


class InvalidKey(InvalidInput):
    code = "invalid_key"


def key_validate(
    key: str, *, what: str = "key", allow_reserved: bool = False, from_peer: bool = False
) -> str:
    """Return `key` unchanged if it is a valid key; raise InvalidKey naming the problem.

    `from_peer`: a replicated version, which its origin accepted; only control characters are
    refused among the characters then, as every earlier kvsite did, so that a node never refuses
    a key its peers hold (their stores would never converge)."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"The {what} is empty.")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"The {what} is not valid UTF-8.") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"The {what} is {size} bytes long; at most {MAX_KEY_BYTES} are allowed.")
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"The {what} must not start or end with '/'.")
    refused = _CONTROL if from_peer else _REFUSED
    for ch in _ASCII_CONTROL.findall(key) if key.isascii() else key:  # ASCII: only controls
        problem = refused.get(unicodedata.category(ch))
        if problem:
            raise InvalidKey(f"The {what} contains {problem} (U+{ord(ch):04X}).")
    if not from_peer and _REPLACEMENT in key:
        raise InvalidKey(
            f"The {what} contains U+FFFD, the replacement character, which stands for bytes "
            "that were not UTF-8."
        )
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"The {what} has an empty, '.' or '..' segment.")
    if not allow_reserved and key.startswith("_"):
        raise InvalidKey(f"The {what} starts with '_', which is reserved.")
    return key


def prefix_validate(prefix: str) -> str:
    """Return a listing prefix if it could be the start of a valid key ('' or may end in '/')."""
    if prefix == "":
        return prefix
    key_validate(prefix.rstrip("/") or "/", what="prefix")
    if prefix.endswith("//"):
        raise InvalidKey("The prefix has an empty segment.")
    return prefix


def ttl_parse(raw: str) -> int:
    """Seconds from `90`, `90s`, `5m`, `2h` or `1d`; raise InvalidInput otherwise."""
    match = _TTL.match(raw.strip())
    if not match:
        raise InvalidInput(
            f"Invalid ttl {raw!r}: use whole seconds or a number with s, m, h or d (e.g. 90s, 5m)."
        )
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInput("The ttl must be positive.")
    if seconds > MAX_TTL_SECONDS:
        raise InvalidInput("The ttl is too long (at most 100 years).")
    return seconds


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (None: no bound).

    Code-point order equals UTF-8 byte order, which is how keys are compared on every backend.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates cannot be stored; skip to the next encodable code point
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
