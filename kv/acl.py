"""The 12-bit entry mode (create/delete/write/read for owner, group, others) and who it lets act."""

from dataclasses import dataclass

from kvsite.exceptions import InvalidInput

PERMS = "cdwr"
CLASSES = ("owner", "group", "others")
_BIT = {"c": 3, "d": 2, "w": 1, "r": 0}
_SHIFT = {"owner": 8, "group": 4, "others": 0}
MAX_MODE = 0o7777


class InvalidMode(InvalidInput):
    code = "invalid_mode"


def mode_bit(who: str, perm: str) -> int:
    """The bit that grants `perm` (one of c, d, w, r) to `who` (owner, group or others)."""
    return 1 << (_SHIFT[who] + _BIT[perm])


def mode_format(mode: int) -> str:
    """The 12-letter form of a mode, e.g. 0xF62 -> 'cdwr-dw----w'."""
    return "".join(perm if mode & mode_bit(who, perm) else "-" for who in CLASSES for perm in PERMS)


def mode_parse(raw: int | str) -> int:
    """A mode from its integer (0..4095) or 12-letter form; raise InvalidMode otherwise."""
    if isinstance(raw, bool):
        raise InvalidMode("A mode is an integer from 0 to 4095 or a form like 'cdwr--wr---r'.")
    if isinstance(raw, int):
        if 0 <= raw <= MAX_MODE:
            return raw
        raise InvalidMode(f"The mode {raw} is out of range (0 to 4095).")
    if isinstance(raw, str):
        if raw.isdigit():
            return mode_parse(int(raw))
        if len(raw) == 12:
            mode = 0
            for i, ch in enumerate(raw):
                perm = PERMS[i % 4]
                if ch == perm:
                    mode |= mode_bit(CLASSES[i // 4], perm)
                elif ch != "-":
                    break
            else:
                return mode
    raise InvalidMode(f"Invalid mode {raw!r}: use 0..4095 or a form like 'cdwr--wr---r'.")


def mode_allows(mode: int, who: str, perm: str) -> bool:
    """Whether `mode` grants `perm` to the class `who`."""
    return bool(mode & mode_bit(who, perm))


@dataclass(frozen=True)
class Caller:
    """Who is acting, as the ACL sees it."""

    username: str | None
    groups: frozenset[str] = frozenset()
    superuser: bool = False
    acl_admin: bool = False  # may change any entry's owner, group and mode

    @property
    def bypass(self) -> bool:
        return self.superuser


SYSTEM = Caller(username=None, superuser=True, acl_admin=True)  # internal work; auth disabled
ANONYMOUS = Caller(username=None)


def caller_class(caller: Caller, owner: str | None, group: str | None) -> str:
    """Which of owner, group or others `caller` is for a record owned by `owner` and `group`."""
    if caller.username is not None and caller.username == owner:
        return "owner"
    if group is not None and group in caller.groups:
        return "group"
    return "others"


def caller_may(
    caller: Caller, perm: str, *, owner: str | None, group: str | None, mode: int
) -> bool:
    """Whether the record's mode grants `perm` to `caller` (superusers always may)."""
    return caller.bypass or mode_allows(mode, caller_class(caller, owner, group), perm)


def caller_may_set_meta(caller: Caller, *, owner: str | None) -> bool:
    """Whether `caller` may change a record's owner, group and mode: its owner or an ACL admin."""
    is_owner = caller.username is not None and caller.username == owner
    return is_owner or caller.acl_admin or caller.bypass
