"""GET /api/v1/audit and /api/v1/audit/verify, and the events the API's own calls leave: each
with its actor, credential id, node and remote address."""

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from cluster.node import local_node

pytestmark = pytest.mark.django_db
AUDIT, VERIFY = "/api/v1/audit", "/api/v1/audit/verify"


@pytest.fixture
def auditor(make_client, root_user):
    return make_client(scopes=["admin:audit"], user=root_user)


@pytest.fixture
def admin(make_client, root_user):
    return make_client(scopes=["*"], user=root_user)


def page(client, **query) -> dict:
    response = client.get(AUDIT, query)
    assert response.status_code == 200, response.content
    return response.json()


def newest(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-seq").first()


# --- the scope -----------------------------------------------------------------------------------


def test_admin_audit_or_star_may_read_and_verify(auditor, admin):
    for client in (auditor, admin):
        assert client.get(AUDIT).status_code == 200
        assert client.get(VERIFY).status_code == 200


@pytest.mark.parametrize("scopes", [["read", "write", "delete"], ["admin:acl", "admin:cluster"]])
def test_a_credential_without_admin_audit_is_refused_403(make_client, scopes):
    client = make_client(scopes=scopes)
    assert client.get(AUDIT).status_code == 403
    assert client.get(VERIFY).status_code == 403


def test_without_a_credential_it_is_401(db):
    assert APIClient().get(AUDIT).status_code == 401
    assert APIClient().get(VERIFY).status_code == 401


def test_a_users_login_jwt_does_not_carry_admin_audit(db, client):
    User.objects.create_user(username="erin", password="erin-password-1")
    answer = APIClient().post(
        "/api/v1/auth/login", {"username": "erin", "password": "erin-password-1"}, format="json"
    )
    jwt = APIClient()
    jwt.credentials(HTTP_AUTHORIZATION=f"Bearer {answer.json()['access']}")
    assert jwt.get(AUDIT).status_code == 403


# --- pages ---------------------------------------------------------------------------------------


def test_pages_follow_next_to_the_end_with_the_contract_fields(auditor, admin):
    for i in range(5):
        admin.put(f"/api/v1/kv/p/{i}", i, format="json")
    total = AuditEvent.objects.count()
    seen, after = [], 0
    while True:
        body = page(auditor, after=after, limit=2)
        seen += body["events"]
        if body["next"] is None:
            break
        assert body["next"] == body["events"][-1]["seq"]
        after = body["next"]
    assert len(seen) == total
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    event = seen[-1]
    for field in ("seq", "at", "actor", "action", "target", "node", "remote", "detail", "hash"):
        assert field in event
    assert isinstance(event["at"], int) and event["at"] > 1_700_000_000_000


def test_filters_by_actor_action_prefix_and_time(auditor, admin, make_client):
    admin.put("/api/v1/kv/f/a", 1, format="json")
    make_client(scopes=["write"]).put("/api/v1/kv/g/b", 1, format="json")  # alice
    puts = page(auditor, action="kv.put")["events"]
    assert {e["target"] for e in puts} == {"f/a", "g/b"}
    assert [e["target"] for e in page(auditor, action="kv.put", actor="alice")["events"]] == ["g/b"]
    assert [e["target"] for e in page(auditor, prefix="f/")["events"]] == ["f/a"]
    at = puts[-1]["at"]
    assert page(auditor, action="kv.put", since=at + 1)["events"] == []
    assert len(page(auditor, action="kv.put", until=at + 1)["events"]) == 2


@pytest.mark.parametrize(
    "query",
    [
        {"after": "x"},
        {"after": -1},
        {"limit": 0},
        {"limit": 1001},
        {"since": -5},
        {"until": "soon"},
        {"actor": "a\x01"},
    ],  # fmt: skip
)
def test_bad_parameters_are_400(auditor, query):
    response = auditor.get(AUDIT, query)
    assert response.status_code == 400 and "detail" in response.json()


# --- verify --------------------------------------------------------------------------------------


def test_verify_holds_then_names_the_first_edited_event(auditor, admin):
    for i in range(3):
        admin.put(f"/api/v1/kv/v/{i}", i, format="json")
    verdict = auditor.get(VERIFY).json()
    assert verdict["ok"] is True and verdict["first_bad"] is None
    assert verdict["checked"] == AuditEvent.objects.count()
    victim = newest("kv.put").seq - 1
    AuditEvent.objects.filter(seq=victim).update(target="v/forged")
    verdict = auditor.get(VERIFY).json()
    assert verdict["ok"] is False and verdict["first_bad"] == victim


def test_verify_names_a_deleted_and_a_swapped_event(auditor, admin):
    for i in range(4):
        admin.put(f"/api/v1/kv/w/{i}", i, format="json")
    seqs = list(
        AuditEvent.objects.filter(action="kv.put").order_by("seq").values_list("seq", flat=True)
    )
    AuditEvent.objects.filter(seq=seqs[2]).delete()
    assert auditor.get(VERIFY).json()["first_bad"] == seqs[2]
    AuditEvent.objects.filter(seq=seqs[0]).update(seq=-1)
    AuditEvent.objects.filter(seq=seqs[1]).update(seq=seqs[0])
    AuditEvent.objects.filter(seq=-1).update(seq=seqs[1])
    assert auditor.get(VERIFY).json()["first_bad"] == seqs[0]


# --- what the API's calls leave ------------------------------------------------------------------


def test_key_writes_name_key_version_actor_credential_node_and_remote(admin, root_user):
    put = admin.put("/api/v1/kv/cfg/db", {"host": "x"}, format="json").json()
    event = newest("kv.put")
    assert (event.target, event.actor) == ("cfg/db", "root")
    assert event.detail["version"] == put["version"] and event.detail["created"] is True
    assert event.credential == admin.token.token.id
    assert (event.node, event.remote) == (local_node().node_id, "127.0.0.1")
    admin.put("/api/v1/meta/cfg/db", {"mode": "cdwr--------"}, format="json")
    assert newest("kv.meta").target == "cfg/db"
    admin.delete("/api/v1/kv/cfg/db")
    assert newest("kv.delete").target == "cfg/db"


def test_account_and_policy_calls_are_events(admin):
    calls = [
        ("post", "/api/v1/users", {"username": "zoe", "password": "zoe-password-1"}, "user.create"),
        ("patch", "/api/v1/users/zoe", {"email": "z@example.com"}, "user.update"),
        ("post", "/api/v1/groups", {"name": "team", "members": ["zoe"]}, "group.create"),
        ("patch", "/api/v1/groups/team", {"remove": ["zoe"]}, "group.members"),
        ("post", "/api/v1/tokens", {"user": "zoe", "scopes": ["read"]}, "token.create"),
        ("put", "/api/v1/acl/team/", {"mode": "cdwr--wr---r"}, "acl.put"),
        ("delete", "/api/v1/acl/team/", None, "acl.delete"),
        ("put", "/api/v1/schemas/cfg/", {"type": "object"}, "schema.put"),
        ("delete", "/api/v1/schemas/cfg/", None, "schema.delete"),
        ("put", "/api/v1/indexes/team/", {"path": "age"}, "index.create"),
        ("delete", "/api/v1/indexes/team/?path=age", None, "index.delete"),
        ("delete", "/api/v1/groups/team", None, "group.delete"),
        ("delete", "/api/v1/users/zoe", None, "user.delete"),
    ]
    for method, path, body, action in calls:
        before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
        response = getattr(admin, method)(path, body, format="json")
        assert response.status_code < 300, (path, response.content)
        made = AuditEvent.objects.filter(seq__gt=before, action=action)
        assert made.exists(), (path, action)
        assert {(e.actor, e.credential, e.remote) for e in made} == {
            ("root", admin.token.token.id, "127.0.0.1")
        }
    assert newest("token.delete").target == newest("token.create").target  # went with zoe


def test_token_revocation_through_the_api_is_an_event(admin, root_user):
    from accounts.services import token_create

    issued = token_create(user=root_user, scopes=["read"])
    assert admin.delete(f"/api/v1/tokens/{issued.token.id}").status_code == 204
    event = newest("token.revoke")
    assert event.target == issued.token.id and event.actor == "root"


def test_logins_that_succeed_and_fail_are_events(db):
    User.objects.create_user(username="fay", password="fay-password-1")
    client = APIClient()
    ok = client.post(
        "/api/v1/auth/login", {"username": "fay", "password": "fay-password-1"}, format="json"
    )
    assert ok.status_code == 200
    login = newest("login")
    assert (login.actor, login.target, login.detail, login.remote) == (
        "fay", "fay", {"via": "api"}, "127.0.0.1"
    )  # fmt: skip
    bad = client.post("/api/v1/auth/login", {"username": "fay", "password": "nope"}, format="json")
    assert bad.status_code == 401
    failed = newest("login.failed")
    assert (failed.actor, failed.target, failed.remote) == (None, "fay", "127.0.0.1")
    assert "nope" not in str(failed.detail)


def test_refused_credentials_are_events_naming_a_known_token_never_a_secret(admin, root_user):
    from accounts.services import token_create, token_revoke

    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer kvs_not-a-real-secret")
    assert stranger.get("/api/v1/kv/").status_code == 401
    refused = newest("credential.refused")
    assert refused.detail == {"kind": "token", "reason": "Invalid token."}
    assert refused.remote == "127.0.0.1" and refused.actor is None
    assert "not-a-real-secret" not in str(refused.detail)

    issued = token_create(user=root_user, scopes=["read"])
    token_revoke(token_id=issued.token.id)
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert revoked.get("/api/v1/kv/").status_code == 401
    refused = newest("credential.refused")
    assert refused.target == issued.token.id and refused.detail["reason"] == "Token revoked."

    jwt = APIClient()
    jwt.credentials(HTTP_AUTHORIZATION="Bearer aaa.bbb.ccc")
    assert jwt.get("/api/v1/kv/").status_code == 401
    assert newest("credential.refused").detail["kind"] == "jwt"


def test_an_unsigned_node_request_is_a_refused_credential(db):
    response = APIClient().post("/cluster/internal/gossip", {}, format="json")
    assert response.status_code == 401
    assert newest("credential.refused").detail["kind"] == "node-signature"


def test_a_websocket_refused_for_its_token_is_an_event(db, settings, monkeypatch):
    import channels.db

    from kv.tests.realtime import IN_MEMORY_LAYER, refused, run, socket

    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    monkeypatch.setattr(channels.db, "close_old_connections", lambda **kwargs: None)

    async def scenario():
        return await refused(socket("/ws/v1/watch?prefix=a/", token="kvs_not-a-token"))

    assert run(scenario) == 4401
    event = newest("credential.refused")
    assert event.detail == {"kind": "token", "reason": "Invalid token."}


def test_a_login_with_a_huge_username_is_refused_and_recorded_cut_to_size(db):
    name = "x" * 5000
    answer = APIClient().post(
        "/api/v1/auth/login", {"username": name, "password": "p"}, format="json"
    )
    assert answer.status_code == 401
    failed = newest("login.failed")
    assert failed.target == name[:1024] and failed.detail["username"] == name


def test_a_ttl_refresh_is_a_write_event(admin):
    admin.put("/api/v1/kv/ttl/k", 1, format="json")
    answer = admin.patch("/api/v1/kv/ttl/k", {"ttl": "5m"}, format="json")
    assert answer.status_code == 200, answer.content
    event = newest("kv.put")
    assert (event.target, event.detail["via"], event.detail["ttl"]) == ("ttl/k", "ttl", 300)
    assert event.detail["version"] == answer.json()["version"]
