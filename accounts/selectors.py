"""Account reads: users, groups and API tokens."""

from django.contrib.auth.models import Group
from django.db.models import QuerySet

from kvsite.exceptions import InvalidInput, NotFound

from .models import ApiToken, User


def user_list() -> QuerySet[User]:
    """Every user, by username, with their groups loaded."""
    return User.objects.prefetch_related("groups").order_by("username")


def user_get(*, username: str) -> User:
    """The user called `username`; raise NotFound otherwise."""
    user = user_list().filter(username=username).first()
    if user is None:
        raise NotFound(f"No user {username!r}.")
    return user


def users_named(*, usernames: list[str]) -> list[User]:
    """The users with these names; raise InvalidInput naming any that do not exist."""
    users = list(User.objects.filter(username__in=usernames))
    unknown = sorted(set(usernames) - {user.username for user in users})
    if unknown:
        raise InvalidInput(f"Unknown users: {', '.join(unknown)}.", unknown=unknown)
    return users


def user_group_names(*, user: User) -> list[str]:
    """The names of the groups `user` belongs to, sorted."""
    return sorted(group.name for group in user.groups.all())


def group_list() -> QuerySet[Group]:
    """Every group, by name, with its members loaded."""
    return Group.objects.prefetch_related("user_set").order_by("name")


def group_get(*, name: str) -> Group:
    """The group called `name`; raise NotFound otherwise."""
    group = group_list().filter(name=name).first()
    if group is None:
        raise NotFound(f"No group {name!r}.")
    return group


def groups_named(*, names: list[str]) -> list[Group]:
    """The groups with these names; raise InvalidInput naming any that do not exist."""
    groups = list(Group.objects.filter(name__in=names))
    unknown = sorted(set(names) - {group.name for group in groups})
    if unknown:
        raise InvalidInput(f"Unknown groups: {', '.join(unknown)}.", unknown=unknown)
    return groups


def group_member_names(*, group: Group) -> list[str]:
    """The usernames of the members of `group`, sorted."""
    return sorted(user.username for user in group.user_set.all())


def token_list(*, username: str | None = None) -> QuerySet[ApiToken]:
    """API tokens, oldest first, optionally only those of one user."""
    tokens = ApiToken.objects.select_related("user").order_by("created_at", "id")
    return tokens if username is None else tokens.filter(user__username=username)


def token_get(*, token_id: str) -> ApiToken:
    """The token with this id; raise NotFound otherwise."""
    token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
    if token is None:
        raise NotFound(f"No token {token_id!r}.")
    return token
