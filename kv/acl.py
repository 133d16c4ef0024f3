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


PERM_WORDS = {"c": "create", "d": "delete", "w": "write", "r": "read"}


@dataclass(frozen=True, slots=True)
class Decision:
    """One answer of the ACL: whether `perm` is allowed, and what decided it.

    `source` is "superuser" (the ACL is bypassed), "mode" (the bit of `cls` in `mode`), or one of
    the checks before the ACL ("credential", "scope", "token_prefix", "absent"), or "no_rule"
    (no ACL rule covers a key to create).
    """

    allowed: bool
    perm: str
    source: str
    cls: str | None = None
    mode: int | None = None
    rule: str | None = None  # the prefix of the ACL rule whose mode decided, if one did
    note: str | None = None  # the words of a check before the ACL

    @property
    def because(self) -> str:
        """The reason, in words."""
        if self.note is not None:
            return self.note
        if self.source == "superuser":
            return "Superuser: the ACL is bypassed."
        whose = f"the ACL rule for prefix {self.rule!r}" if self.rule is not None else "the key"
        verb = "grants" if self.allowed else "does not grant"
        return (
            f"You are in the {self.cls} class of {whose}; its mode {mode_format(self.mode)} "
            f"{verb} {self.cls} the '{self.perm}' ({PERM_WORDS[self.perm]}) bit."
        )


def caller_decide(
    caller: Caller,
    perm: str,
    *,
    owner: str | None,
    group: str | None,
    mode: int,
    rule: str | None = None,
) -> Decision:
    """Whether the record's mode grants `perm` to `caller` (superusers always may), and why."""
    if caller.bypass:
        return Decision(True, perm, "superuser", rule=rule)
    who = caller_class(caller, owner, group)
    return Decision(mode_allows(mode, who, perm), perm, "mode", cls=who, mode=mode, rule=rule)


def caller_may(
    caller: Caller, perm: str, *, owner: str | None, group: str | None, mode: int
) -> bool:
    """Whether the record's mode grants `perm` to `caller` (superusers always may)."""
    return caller_decide(caller, perm, owner=owner, group=group, mode=mode).allowed


def caller_may_set_meta(caller: Caller, *, owner: str | None) -> bool:
    """Whether `caller` may change a record's owner, group and mode: its owner or an ACL admin."""
    is_owner = caller.username is not None and caller.username == owner
    return is_owner or caller.acl_admin or caller.bypass
