"""The watch websocket: who may open it, replay from `since`, ready, live events and their
filtering by prefix and read permission."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import jwt as pyjwt
import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.test import TestCase
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import ApiToken, User
from accounts.services import group_update, jwt_issue, user_update
from accounts.tokens import token_hash
from kv import consumers, services, watch
from kv.acl import SYSTEM, mode_parse

from .realtime import closed_with, frame_where, frames, handshake, opened, refused, run, socket

pytestmark = pytest.mark.django_db

OWNER_ONLY = 0xF00  # cdwr------------


def put(key: str, value: str = "1", **kw) -> int:
    """Write `key` as the node would (watch announcements collected); its revision."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        entry, _ = services.entry_put(key=key, value=value, caller=SYSTEM, **kw)
    return entry.revision


def delete(key: str) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.entry_delete(key=key, caller=SYSTEM)


def restrict(key: str) -> int:
    """Make `key` readable by its owner (root) only; its revision."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        entry = services.entry_meta_set(
            key=key, owner="root", mode=OWNER_ONLY, fields={"owner", "mode"}, caller=SYSTEM
        )
    return entry.revision


@pytest.fixture(autouse=True)
def _node_id(settings):
    settings.KVS_NODE_ID = "node1"


@pytest.fixture
def announce(monkeypatch, channel_layer):
    """Announcements are sent when the test says so (from its own event loop), not by the
    background thread."""
    monkeypatch.setattr(watch._announce_soon, "poke", lambda: None)
    watch._pending.clear()
    return database_sync_to_async(watch.changes_announce)


@pytest.fixture
def token(make_client, root_user):
    """make_client tokens' secrets: token(scopes=[...], user=..., prefix=...)."""

    def issue(**kw) -> str:
        return make_client(**kw).token.secret

    return issue


def watch_path(prefix: str = "", **query) -> str:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return f"/ws/v1/watch?prefix={quote(prefix)}{extra}"


# --- Who may watch ------------------------------------------------------------------------------


def test_sockets_without_a_valid_credential_are_refused_with_401(channel_layer):
    async def scenario():
        assert await refused(socket(watch_path("a/"))) == 4401
        assert await refused(socket(watch_path("a/"), token="kvs_not-a-token")) == 4401
        assert await refused(socket(watch_path("a/", token="kvs_nope"))) == 4401

    run(scenario)


def test_credentials_without_read_or_outside_their_prefix_are_refused_with_403(
    channel_layer, token
):
    writer = token(scopes=["write"])
    confined = token(scopes=["read"], prefix="team/")

    async def scenario():
        assert await refused(socket(watch_path("a/"), token=writer)) == 4403
        assert await refused(socket(watch_path("other/"), token=confined)) == 4403
        assert await refused(socket(watch_path(""), token=confined)) == 4403
        await opened(socket(watch_path("team/x"), token=confined))

    run(scenario)


def test_bad_prefix_or_since_is_refused_with_400(channel_layer, token):
    reader = token(scopes=["read"])

    async def scenario():
        assert await refused(socket(watch_path("a//b"), token=reader)) == 4400
        assert await refused(socket(watch_path("_cluster/"), token=reader)) == 4400
        assert await refused(socket(watch_path("a/", since="-1"), token=reader)) == 4400

    run(scenario)


def test_a_prefix_that_is_not_utf8_or_holds_invisible_characters_is_refused(channel_layer, token):
    reader = token(scopes=["read"])

    async def scenario():
        for query in ("prefix=al%2F%FF", "prefix=%C0%80", f"prefix={quote('a/b' + chr(0x202E))}"):
            assert await refused(socket(f"/ws/v1/watch?{query}", token=reader)) == 4400
        await opened(socket(watch_path("al/"), token=reader))

    run(scenario)


def test_a_client_frame_nested_thousands_deep_gets_an_error_frame_not_a_dropped_socket(
    channel_layer, token
):
    reader = token(scopes=["read"])

    async def scenario():
        client = socket(watch_path("a/"), token=reader)
        await opened(client)
        assert (await frames(client, 1))[0]["type"] == "ready"
        for frame in ("[" * 2_000 + "]" * 2_000, "{" * 100_000, "not json"):
            await client.send_to(text_data=frame)
            (error,) = await frames(client, 1)
            assert (error["type"], error["code"]) == ("error", "invalid_json"), error
        await client.disconnect()

    run(scenario)


def test_refusal_is_an_http_answer_where_the_server_supports_it(channel_layer):
    async def scenario():
        client = handshake("/ws/v1/watch", query="prefix=a/")
        await client.send_input({"type": "websocket.connect"})
        start = await client.receive_output(2)
        body = await client.receive_output(2)
        assert start["type"] == "websocket.http.response.start"
        assert start["status"] == 401
        assert (b"www-authenticate", b'Bearer realm="kvsite"') in start["headers"]
        assert b'"detail"' in body["body"]

    run(scenario)


def test_a_properly_signed_jwt_with_an_absurd_expiry_is_refused_with_401(channel_layer, root_user):
    claims = dict(AccessToken(jwt_issue(user=root_user)["access"]).payload)
    absurd = pyjwt.encode(
        {**claims, "exp": 1e30}, django_settings.SIMPLE_JWT["SIGNING_KEY"], "HS256"
    )

    async def scenario():
        assert await refused(socket(watch_path("a/"), token=absurd)) == 4401

    run(scenario)


def test_token_may_come_in_the_query_string(channel_layer, token):
    reader = token(scopes=["read"])

    async def scenario():
        await opened(socket(watch_path("a/", token=reader)))

    run(scenario)


def test_anonymous_watch_needs_anonymous_read(channel_layer, settings):
    async def scenario():
        settings.KVS_ALLOW_ANONYMOUS_READ = True
        await opened(socket(watch_path("a/")))

    run(scenario)


def test_auth_disabled_lets_everyone_watch(channel_layer, settings):
    settings.KVS_AUTH_ENABLED = False

    async def scenario():
        await opened(socket(watch_path("")))

    run(scenario)


def test_the_session_cookie_authenticates_same_origin_sockets_only(channel_layer, client):
    User.objects.create_user(username="carol", password="carol-password-1")
    assert client.login(username="carol", password="carol-password-1")
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    host = (b"host", b"kv.example")

    async def scenario():
        await opened(socket(watch_path("a/"), headers=[cookie, host]))
        same = (b"origin", b"https://kv.example")
        await opened(socket(watch_path("a/"), headers=[cookie, host, same]))
        foreign = (b"origin", b"https://evil.example")
        assert await refused(socket(watch_path("a/"), headers=[cookie, host, foreign])) == 4401

    run(scenario)


def test_unknown_paths_are_refused_with_404(channel_layer):
    async def scenario():
        assert await refused(socket("/ws/v1/nothing")) == 4404

    run(scenario)


# --- Replay and ready ----------------------------------------------------------------------------


def test_without_since_the_socket_says_ready_at_the_current_revision(announce, token):
    put("a/1")
    put("a/2")
    reader = token(scopes=["read"])  # tokens are replicated records: the revision moves on
    head = watch.watch_head()[0]

    async def scenario():
        client = socket(watch_path("a/"), token=reader)
        await opened(client)
        assert await frames(client, 1) == [{"type": "ready", "revision": head, "node": "node1"}]
        assert await client.receive_nothing(0.1)

    run(scenario)


def test_since_replays_the_latest_state_of_each_changed_key_in_revision_order(announce, token):
    reader = token(scopes=["read"])
    before = put("a/old")
    put("a/1", '{"n":1}')
    put("b/other")
    put("a/2", '"two"')
    put("a/1", '{"n":2}')  # a/1 changed twice: replayed once, in its latest state
    delete("a/2")
    head = put("a/3", "[3]")

    async def scenario():
        client = socket(watch_path("a/", since=before), token=reader)
        await opened(client)
        got = await frames(client, 4)
        assert [(f["type"], f["key"], f["value"]) for f in got[:3]] == [
            ("put", "a/1", {"n": 2}),
            ("delete", "a/2", None),
            ("put", "a/3", [3]),
        ]
        revisions = [f["revision"] for f in got[:3]]
        assert revisions == sorted(revisions) and revisions[-1] == head
        assert set(got[0]) == {"type", "key", "value", "version", "timestamp", "hlc", "revision"}
        assert got[3] == {"type": "ready", "revision": head, "node": "node1"}

    run(scenario)


def test_since_beyond_the_node_revision_replays_nothing(announce, token):
    reader = token(scopes=["read"])
    head = put("a/1")

    async def scenario():
        client = socket(watch_path("a/", since=head + 100), token=reader)
        await opened(client)
        assert await frames(client, 1) == [{"type": "ready", "revision": head, "node": "node1"}]

    run(scenario)


def test_replay_leaves_out_keys_the_caller_may_not_read(announce, token, root_user):
    put("a/open")
    put("a/secret")
    restrict("a/secret")
    reader = token(scopes=["read"], user=User.objects.create_user(username="dave"))
    root = token(user=root_user)

    async def scenario():
        client = socket(watch_path("a/", since=0), token=reader)
        await opened(client)
        got = await frames(client, 2)
        assert [f.get("key") for f in got] == ["a/open", None]  # then ready
        owner = socket(watch_path("a/", since=0), token=root)
        await opened(owner)
        assert [f.get("key") for f in await frames(owner, 3)] == ["a/open", "a/secret", None]

    run(scenario)


# --- Live events ---------------------------------------------------------------------------------


def test_live_events_follow_ready_without_gap_or_duplicate(announce, token):
    first = put("a/1")
    reader = token(scopes=["read"])

    async def scenario():
        client = socket(watch_path("a/", since=0), token=reader)
        await opened(client)
        assert [f["type"] for f in await frames(client, 2)] == ["put", "ready"]
        await announce()  # a/1's announcement arrives after the replay: nothing new
        assert await client.receive_nothing(0.1)
        second = await database_sync_to_async(put)("a/2", '{"live":true}')
        await database_sync_to_async(put)("b/elsewhere")
        await announce()
        (event,) = await frames(client, 1)
        assert (event["type"], event["key"], event["value"]) == ("put", "a/2", {"live": True})
        assert event["revision"] == second > first
        assert await client.receive_nothing(0.1)

    run(scenario)


def test_live_deletes_and_expiries_are_delete_events(announce, token):
    put("a/gone")
    put("a/ttl", ttl=60)
    reader = token(scopes=["read"])

    async def scenario():
        client = socket(watch_path("a/"), token=reader)
        await opened(client)
        await frames(client, 1)
        await database_sync_to_async(delete)("a/gone")
        await database_sync_to_async(_expire_all)()
        await announce()
        got = await frames(client, 2)
        assert [(f["type"], f["key"], f["value"]) for f in got] == [
            ("delete", "a/gone", None),
            ("delete", "a/ttl", None),
        ]

    run(scenario)


def _expire_all() -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert services.entries_expire(now=2**62) == 1


def test_live_events_the_caller_may_not_read_are_not_sent(announce, token):
    put("a/secret")
    restrict("a/secret")
    reader = token(scopes=["read"], user=User.objects.create_user(username="erin"))

    async def scenario():
        client = socket(watch_path("a/"), token=reader)
        await opened(client)
        await frames(client, 1)
        await database_sync_to_async(_write_both)()
        await announce()
        (event,) = await frames(client, 1)
        assert event["key"] == "a/open"
        assert await client.receive_nothing(0.1)

    run(scenario)


def _write_both() -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.entry_meta_set(key="a/secret", fields={"mode"}, mode=OWNER_ONLY, caller=SYSTEM)
        services.entry_put(key="a/open", value="1", caller=SYSTEM)


def test_a_watch_on_everything_never_sees_the_clusters_own_records(announce, token, root_user):
    root = token(user=root_user)

    async def scenario():
        client = socket(watch_path("", since=0), token=root)
        await opened(client)
        got = await frames(client, 1)
        assert got[0]["type"] == "ready"
        await database_sync_to_async(User.objects.create_user)(username="frank")
        await database_sync_to_async(put)("z")
        await announce()
        assert [f["key"] for f in await frames(client, 1)] == ["z"]

    run(scenario)


def test_a_lost_announcement_only_delays_the_event_until_the_recheck(announce, token, monkeypatch):
    monkeypatch.setattr(consumers, "RECHECK_S", 0.05)
    reader = token(scopes=["read"])

    async def scenario():
        client = socket(watch_path("a/"), token=reader)
        await opened(client)
        await frames(client, 1)
        await database_sync_to_async(put)("a/unannounced")  # and no announce()
        (event,) = await frames(client, 1)
        assert event["key"] == "a/unannounced"

    run(scenario)


# --- Open sockets keep only the access they still have ------------------------------------------

GROUP_READ = mode_parse("cdwr---r----")  # the owner everything, the group read, others nothing
RECHECK_DEADLINE_S = 10.0


async def keys_until(client, key: str) -> list[str]:
    """The keys of the events up to and including the next one of `key`."""
    keys = []
    while not keys or keys[-1] != key:
        keys.append((await frame_where(client, lambda f: "key" in f, timeout=5))["key"])
    return keys


def _both(n: int) -> None:
    put("g/team", str(n))  # readable through the group only
    put("g/open", str(n))  # readable by others


async def filtered_within_deadline(client, announce, n: int) -> int:
    """Write both keys until `client` gets g/open without g/team (its caller was renewed);
    the next counter."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECHECK_DEADLINE_S
    while True:
        n += 1
        await database_sync_to_async(_both)(n)
        await announce()
        if await keys_until(client, "g/open") == ["g/open"]:
            return n
        assert loop.time() < deadline, "the socket still gets the group's events"


@pytest.fixture
def ops_members(settings, root_user):
    """gina and hank in ops; g/team readable by ops alone, g/open by everyone."""
    settings.KVS_TOKEN_CACHE_SECONDS = 0.2
    ops = Group.objects.create(name="ops")
    users = [User.objects.create_user(username=name) for name in ("gina", "hank")]
    ops.user_set.add(*users)
    _both(0)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.entry_meta_set(
            key="g/team",
            owner="root",
            group="ops",
            mode=GROUP_READ,
            fields={"owner", "group", "mode"},
        )
    return ops, users


def test_a_user_removed_from_a_group_stops_getting_events_only_the_group_may_read(
    announce, token, ops_members
):
    ops, (gina, hank) = ops_members
    leaving = socket(watch_path("g/"), token=token(scopes=["read"], user=gina))
    staying = socket(watch_path("g/"), token=token(scopes=["read"], user=hank))

    async def scenario():
        for client in (leaving, staying):
            await opened(client)
            await frames(client, 1)
        await database_sync_to_async(_both)(1)
        await announce()
        for client in (leaving, staying):  # members read the group's key
            assert await keys_until(client, "g/open") == ["g/team", "g/open"]
        await database_sync_to_async(group_update)(group=ops, remove=["gina"])
        n = await filtered_within_deadline(leaving, announce, 1)
        await database_sync_to_async(_both)(n + 1)
        await announce()
        assert await keys_until(leaving, "g/open") == ["g/open"]  # and stays so
        last = n + 1  # hank, still a member, gets the group's key up to the last write
        seen = []
        while ("g/open", last) not in seen:
            frame = await frame_where(staying, lambda f: "key" in f, timeout=5)
            seen.append((frame["key"], frame["value"]))
        assert ("g/team", last) in seen
        for client in (leaving, staying):
            await client.disconnect()

    run(scenario)


def test_a_demoted_superuser_stops_getting_events_of_keys_they_may_not_read(
    announce, token, ops_members, root_user
):
    sue = User.objects.create_superuser(username="sue", password="sue-password-1")
    client = socket(watch_path("g/"), token=token(scopes=["read"], user=sue))

    async def scenario():
        await opened(client)
        await frames(client, 1)
        await database_sync_to_async(_both)(1)
        await announce()
        assert await keys_until(client, "g/open") == ["g/team", "g/open"]  # superusers bypass
        await database_sync_to_async(user_update)(user=sue, is_superuser=False)
        await filtered_within_deadline(client, announce, 1)
        await client.disconnect()

    run(scenario)


def test_a_token_no_longer_covering_the_prefix_closes_its_watch_with_4403(
    announce, token, settings
):
    settings.KVS_TOKEN_CACHE_SECONDS = 0.2
    moved = token(scopes=["read"], prefix="team/")
    kept = token(scopes=["read"], prefix="team/")

    async def scenario():
        closing, staying = (
            socket(watch_path("team/"), token=moved),
            socket(watch_path("team/"), token=kept),
        )
        for client in (closing, staying):
            await opened(client)
            await frames(client, 1)
        await database_sync_to_async(_confine)(moved, "other/")
        assert await closed_with(closing, timeout=RECHECK_DEADLINE_S) == 4403
        await database_sync_to_async(put)("team/x")
        await announce()
        assert (await frame_where(staying, lambda f: "key" in f))["key"] == "team/x"
        for client in (closing, staying):
            await client.disconnect()

    run(scenario)


def _confine(secret: str, prefix: str) -> None:
    ApiToken.objects.filter(secret_hash=token_hash(secret)).update(prefix=prefix)
