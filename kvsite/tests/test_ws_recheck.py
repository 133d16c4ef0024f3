"""Open websockets keep only the access they still have: a credential that stops standing closes
its watch and pub/sub sockets with 4401, busy or idle; one that still stands keeps its sockets
open; and all the sockets of a credential cost one check per beat."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
import rest_framework_simplejwt.tokens as jwt_tokens
from channels.db import database_sync_to_async
from django.test import TestCase
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import jwt_issue, token_revoke, user_delete, user_update
from accounts.tokens import token_hash
from kv import services, watch
from kv.acl import SYSTEM
from kv.tests.realtime import channel_layer, closed_with, frame_where, opened, run, socket  # noqa: F401
from pubsub.services import message_publish_async
from pubsub.tests.conftest import forwarded, node_redis  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

BEAT_S = 0.2  # KVS_TOKEN_CACHE_SECONDS in these tests
CLOSE_DEADLINE_S = 10.0  # a few beats, on a loaded machine
WATCH, PUBSUB = "/ws/v1/watch?prefix=w/", "/ws/v1/pubsub/t"
MARKER = "marker"


@pytest.fixture(autouse=True)
def _beat(settings):
    settings.KVS_TOKEN_CACHE_SECONDS = BEAT_S
    settings.KVS_NODE_ID = "node1"


@pytest.fixture
def emit(monkeypatch, channel_layer, forwarded):  # noqa: F811 (fixtures, used by name)
    """emit(path, value): an event every socket of `path` gets: a watch event (the write is
    announced at once) or a pub/sub message."""
    monkeypatch.setattr(watch._announce_soon, "poke", lambda: None)
    watch._pending.clear()

    async def send(path: str, value: object) -> None:
        if path == WATCH:
            await database_sync_to_async(_put)("w/k", value)
            await database_sync_to_async(watch.changes_announce)()
        else:
            await message_publish_async(topic="t", data=value)

    return send


def _put(key: str, value: object) -> None:
    text = f'"{value}"' if isinstance(value, str) else str(value)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.entry_put(key=key, value=text, caller=SYSTEM)


def carries(value: object):
    return lambda frame: frame.get("value", frame.get("data")) == value


async def open_socket(path: str, headers) -> object:
    client = socket(path, headers=headers)
    await opened(client)
    if path == WATCH:
        await frame_where(client, lambda frame: frame["type"] == "ready")
    return client


def bearer(secret: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {secret}".encode())]


@dataclass
class Victim:
    """A credential, as socket headers, and what makes it stop standing."""

    headers: list[tuple[bytes, bytes]]
    spoil: object  # a callable, run on the database thread


def _victim_user() -> User:
    return User.objects.create_user(username="victim", password="victim-password-1")


VICTIMS = [
    "token revoked",
    "token expired",
    "user deactivated",
    "user deleted",
    "jwt expired",
    "jwt voided by a password change",
    "session logged out",
    "session voided by a password change",
]


@pytest.fixture(params=VICTIMS)
def victim(request, make_client, client, monkeypatch) -> Victim:
    case = request.param
    user = _victim_user()
    issued = make_client(scopes=["read", "pubsub"], user=user).token
    headers = bearer(issued.secret)

    def new_password():
        user_update(user=User.objects.get(pk=user.pk), password="another-password-2")

    if case == "token revoked":
        spoil = lambda: token_revoke(token_id=issued.token.id)  # noqa: E731
    elif case == "token expired":  # time passes its expiry: no save, nothing dropped from caches
        spoil = lambda: ApiToken.objects.filter(pk=issued.token.pk).update(  # noqa: E731
            expires_at=timezone.now()
        )
    elif case == "user deactivated":
        spoil = lambda: user_update(user=User.objects.get(pk=user.pk), is_active=False)  # noqa: E731
    elif case == "user deleted":
        spoil = lambda: user_delete(user=User.objects.get(pk=user.pk))  # noqa: E731
    elif case.startswith("jwt"):
        headers = bearer(jwt_issue(user=user)["access"])
        if case == "jwt expired":  # the clock moves past the access JWT's lifetime
            real = jwt_tokens.aware_utcnow
            later = lambda: real() + timedelta(days=1)  # noqa: E731
            spoil = lambda: monkeypatch.setattr(jwt_tokens, "aware_utcnow", later)  # noqa: E731
        else:
            spoil = new_password
    else:
        assert client.login(username="victim", password="victim-password-1")
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        headers = [(b"cookie", cookie), (b"host", b"testserver")]
        spoil = client.logout if case == "session logged out" else new_password
    return Victim(headers=headers, spoil=spoil)


@pytest.fixture
def keeper(make_client) -> list[tuple[bytes, bytes]]:
    """Another user's credential, which stands throughout."""
    user = User.objects.create_user(username="keeper")
    return bearer(make_client(scopes=["read", "pubsub"], user=user).token.secret)


@pytest.mark.parametrize("path", [WATCH, PUBSUB], ids=["watch", "pubsub"])
@pytest.mark.parametrize("busy", [True, False], ids=["events flowing", "idle"])
def test_a_socket_whose_credential_stops_standing_is_closed_with_4401(
    victim, keeper, emit, path, busy
):
    async def feed():
        for n in range(100_000):
            await emit(path, n)
            await asyncio.sleep(0.02)  # pacing, not waiting for anything

    async def scenario():
        closing = await open_socket(path, victim.headers)
        staying = await open_socket(path, keeper)
        await emit(path, "before")  # the allowed side: the credential stands, events arrive
        await frame_where(closing, carries("before"))
        await database_sync_to_async(victim.spoil)()
        feeding = asyncio.create_task(feed()) if busy else None
        try:
            assert await closed_with(closing, timeout=CLOSE_DEADLINE_S) == 4401
        finally:
            if feeding is not None:
                feeding.cancel()
        await emit(path, MARKER)
        await frame_where(staying, carries(MARKER))  # the other side: still open, receiving
        await closing.disconnect()
        await staying.disconnect()

    run(scenario)


def test_the_sockets_of_a_credential_cost_one_check_per_beat_and_stay_open(
    make_client, emit, monkeypatch
):
    from kvsite import ws_recheck  # here: the module did not exist before sockets were rechecked
    from kvsite.ws_auth import TOKEN

    checks: list[tuple[float, list]] = []
    verify = ws_recheck.credentials_verify

    def counted(keys):
        checks.append((time.monotonic(), list(keys)))
        return verify(keys)

    monkeypatch.setattr(ws_recheck, "credentials_verify", counted)
    first = make_client(scopes=["read", "pubsub"]).token.secret
    second = make_client(scopes=["read", "pubsub"], user=User.objects.create(username="b")).token
    second = second.secret
    keys = {(TOKEN, token_hash(first)), (TOKEN, token_hash(second))}

    async def scenario():
        started, n, clients = time.monotonic(), 0, []
        for secret, count in ((first, 15), (second, 5)):
            for path in (WATCH, PUBSUB):
                clients += [await open_socket(path, bearer(secret)) for _ in range(count)]
        while len(checks) < 8:  # events keep flowing over several beats
            assert time.monotonic() - started < 30, f"only {len(checks)} checks"
            n += 1
            await emit(WATCH, n)
            await emit(PUBSUB, n)
            await asyncio.sleep(0.02)  # pacing
        elapsed = time.monotonic() - started
        for path in (WATCH, PUBSUB):
            await emit(path, MARKER)
        for client in clients:  # every socket stayed open and receives
            await frame_where(client, carries(MARKER))
            await client.disconnect()
        return elapsed

    elapsed = run(scenario)
    assert {key for _, checked in checks for key in checked} == keys
    for key in keys:  # one check per credential and beat, not per socket or per frame
        beats = [int(at / BEAT_S) for at, checked in checks if key in checked]
        assert beats == sorted(set(beats)), beats
    assert all(len(checked) == len(set(checked)) for _, checked in checks)
    assert len(checks) <= elapsed / BEAT_S + 2
