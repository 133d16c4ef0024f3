"""ACL explain never disagrees with enforcement: every 12-bit mode × every credential kind × the
four operations, against the enforcing functions (all 4096 modes) and against the real API (the
empty and full modes and each single bit), and against the bit table itself."""

import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.permissions import key_scope_check, request_credential
from accounts.scopes import DELETE, READ, WRITE
from accounts.services import jwt_issue, token_create
from kv import policy, rows, services
from kv.acl import MAX_MODE, mode_bit
from kv.callers import request_caller
from kv.explain import OPERATIONS, key_decide
from kv.models import AclRule, Entry
from kv.selectors import entry_readable
from kvsite.exceptions import Forbidden

from .api.helpers import put_json, url

pytestmark = pytest.mark.django_db
BASIC = [READ, WRITE, DELETE]
KEY, NEW = "p/k", "p/new"
BOGUS_CAS = str(uuid.UUID(int=1))


@dataclass
class Kind:
    """One credential kind: who, how, and the class the ACL puts them in (None: bypass)."""

    name: str
    user: User | None
    auth: object  # ApiToken, AccessToken or None
    secret: str | None
    cls: str | None
    scopes: tuple[str, ...] = (READ, WRITE, DELETE)
    prefix_ok: bool = True

    def request(self):
        return _Request(self.user, self.auth)

    def client(self) -> APIClient:
        client = APIClient()
        if self.secret is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}")
        return client


@dataclass
class _Request:
    """What the enforcing functions read of a request: its user and its credential."""

    user: object
    auth: object


class _Anonymous:
    is_authenticated = False


def _token(user, scopes, prefix=None) -> tuple:
    issued = token_create(user=user, scopes=list(scopes), prefix=prefix)
    return issued.token, issued.secret


def _jwt(user) -> tuple:
    access = jwt_issue(user=user)["access"]
    return AccessToken(access), access


@pytest.fixture
def kinds(db, settings) -> list[Kind]:
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    settings.KVS_ALLOW_ANONYMOUS_WRITE = True
    settings.KVS_THROTTLE_ANON = ""  # the anonymous client asks hundreds of times a second
    team = Group.objects.create(name="team")
    olivia = User.objects.create(username="olivia")
    gus = User.objects.create(username="gus")
    gus.groups.add(team)
    otto = User.objects.create(username="otto")
    root = User.objects.create_superuser(username="root", password="root-password-1")
    made = [
        Kind("jwt owner", olivia, *_jwt(olivia), "owner"),
        Kind("jwt group", gus, *_jwt(gus), "group"),
        Kind("jwt others", otto, *_jwt(otto), "others"),
        Kind("token owner", olivia, *_token(olivia, BASIC), "owner"),
        Kind("token group", gus, *_token(gus, BASIC), "group"),
        Kind("token others read only", otto, *_token(otto, [READ]), "others", (READ,)),
        Kind("token owner no scopes", olivia, *_token(olivia, ["pubsub"]), "owner", ()),
        Kind("token group prefix p/", gus, *_token(gus, BASIC, "p/"), "group"),
        Kind("token owner prefix q/", olivia, *_token(olivia, BASIC, "q/"), "owner", BASIC, False),
        Kind("superuser jwt", root, *_jwt(root), None),
        Kind("superuser token read only", root, *_token(root, [READ]), None, (READ,)),
        Kind("anonymous", None, None, None, "others"),
    ]
    for kind in made:
        if kind.user is None:
            kind.user = _Anonymous()
    return made


def _enforced(kind: Kind, perm: str, entry: Entry) -> bool:
    """What the enforcing code decides: the API's scope check, then the services' ACL check."""
    scope = OPERATIONS[{"c": "create", "d": "delete", "w": "write", "r": "read"}[perm]][1]
    request = kind.request()
    key = NEW if perm == "c" else KEY
    try:
        key_scope_check(request, scope, key)
        caller = request_caller(request)
        if perm == "c":
            return policy.creation_policy(caller, key)[0]
        if perm == "r":
            return entry_readable(caller, entry)
        services._require(caller, perm, entry)
        return True
    except (NotAuthenticated, PermissionDenied, Forbidden):
        return False


def _expected(kind: Kind, perm: str, mode: int) -> bool:
    """The bit table's answer, written out independently of the code."""
    scope = WRITE if perm in "cw" else DELETE if perm == "d" else READ
    if isinstance(kind.user, _Anonymous):
        if scope == DELETE:
            return False
    elif scope not in kind.scopes:
        return False
    if not kind.prefix_ok:
        return False
    if kind.cls is None:
        return True
    return bool(mode & mode_bit(kind.cls, perm))


def test_explain_matches_enforcement_for_every_mode_and_credential_kind(kinds, monkeypatch):
    entry = Entry(key=KEY, owner="olivia", group="team", mode=0, deleted=False, expires_at=None)
    rule = AclRule(prefix="p/", owner="olivia", group="team", mode=0)
    monkeypatch.setattr(rows, "entry_by_key", lambda key: entry if key == KEY else None)
    monkeypatch.setattr(policy, "rule_for", lambda key: rule if key.startswith("p/") else None)
    credentials = {kind.name: request_credential(kind.request()) for kind in kinds}
    checked = 0
    for mode in range(MAX_MODE + 1):
        entry.mode = rule.mode = mode
        for kind in kinds:
            for perm in "cdwr":
                key = NEW if perm == "c" else KEY
                decision = key_decide(key=key, perm=perm, credential=credentials[kind.name])
                enforced = _enforced(kind, perm, entry)
                where = (kind.name, perm, oct(mode), decision.because)
                assert decision.allowed == enforced == _expected(kind, perm, mode), where
                assert decision.because
                if decision.source == "mode":
                    assert decision.cls == kind.cls, where
                    assert decision.rule == ("p/" if perm == "c" else None), where
                checked += 1
    assert checked == 4096 * len(kinds) * 4


def _api_outcome(client: APIClient, perm: str) -> bool:
    """Whether the real API lets `client` act: an allowed write or delete is stopped only by a
    stale cas (409), so nothing changes."""
    if perm == "r":
        status = client.get(url(KEY)).status_code
        return {200: True, 401: False, 403: False}[status]
    if perm == "d":
        status = client.delete(url(KEY, cas=BOGUS_CAS)).status_code
    else:
        status = put_json(client, NEW if perm == "c" else KEY, 1, cas=BOGUS_CAS).status_code
    return {409: True, 401: False, 403: False}[status]


SAMPLED_MODES = [0, MAX_MODE] + [1 << bit for bit in range(12)]


def test_explain_api_matches_the_api_itself(kinds):
    services.entry_put(key=KEY, value='"v"')
    policy.acl_rule_put(prefix="p/", owner="olivia", group="team", mode=0)
    names = {"c": "create", "d": "delete", "w": "write", "r": "read"}
    clients = [(kind, kind.client()) for kind in kinds]
    for mode in SAMPLED_MODES:
        services.entry_meta_set(
            key=KEY, owner="olivia", group="team", mode=mode, fields={"owner", "group", "mode"}
        )
        policy.acl_rule_put(prefix="p/", owner="olivia", group="team", mode=mode)
        for kind, client in clients:
            answers = {}
            for key in (KEY, NEW):
                response = client.get("/api/v1/acl/explain", {"key": key})
                assert response.status_code == 200, (kind.name, response.content)
                answers[key] = response.json()["decisions"]
            for perm, name in names.items():
                explained = answers[NEW if perm == "c" else KEY][name]
                actual = _api_outcome(client, perm)
                assert explained["allowed"] == actual, (kind.name, name, oct(mode), explained)
                assert actual == _expected(kind, perm, mode), (kind.name, name, oct(mode))


# --- the endpoint: who may ask about whom, and bad input -----------------------------------------

EXPLAIN = "/api/v1/acl/explain"


@pytest.fixture
def olivia_key(db):
    User.objects.create(username="olivia")
    services.entry_put(key=KEY, value='"v"')
    services.entry_meta_set(key=KEY, owner="olivia", mode=0xF00, fields={"owner", "mode"})


def test_explain_for_yourself_needs_only_a_credential(make_client, olivia_key):
    olivia = User.objects.get(username="olivia")
    client = make_client(scopes=["pubsub"], user=olivia)
    body = client.get(EXPLAIN, {"key": KEY}).json()
    assert body["key"] == KEY and body["user"] == "olivia" and body["superuser"] is False
    assert set(body["decisions"]) == {"create", "delete", "write", "read"}
    read = body["decisions"]["read"]
    assert read == {
        "allowed": False,
        "because": "This credential lacks the 'read' scope.",
        "rule": None,
        "class": None,
        "source": "scope",
    }
    full = make_client(scopes=BASIC, user=olivia).get(EXPLAIN, {"key": KEY, "user": "olivia"})
    assert full.json()["decisions"]["read"]["allowed"] is True
    assert full.json()["decisions"]["read"]["class"] == "owner"


def test_explain_for_another_user_needs_admin_acl(make_client, olivia_key):
    otto = User.objects.create(username="otto")
    refused = make_client(scopes=BASIC, user=otto).get(EXPLAIN, {"key": KEY, "user": "olivia"})
    assert refused.status_code == 403 and refused.json()["detail"]
    allowed = make_client(scopes=["admin:acl"], user=otto)
    body = allowed.get(EXPLAIN, {"key": KEY, "user": "olivia"}).json()
    assert body["user"] == "olivia"
    assert body["decisions"]["write"]["allowed"] is True
    assert body["decisions"]["write"]["class"] == "owner"
    assert "owner" in body["decisions"]["write"]["because"]
    about_otto = allowed.get(EXPLAIN, {"key": KEY, "user": "otto"}).json()  # admin:acl only
    assert about_otto["decisions"]["read"]["source"] == "scope"
    missing = allowed.get(EXPLAIN, {"key": KEY, "user": "nobody"})
    assert missing.status_code == 404 and missing.json()["detail"]


def test_explain_refuses_anonymous_callers_unless_anonymous_reads_are_on(anon, settings, db):
    response = anon.get(EXPLAIN, {"key": KEY})
    assert response.status_code == 401 and response.json()["detail"]
    settings.KVS_ALLOW_ANONYMOUS_READ = True
    body = anon.get(EXPLAIN, {"key": KEY}).json()
    assert body["user"] is None
    assert body["decisions"]["read"]["source"] == "absent"
    assert body["decisions"]["delete"]["source"] == "credential"


@pytest.mark.parametrize(
    "query", [{"user": "root"}, {"key": ""}, {"key": "/bad"}, {"key": "a\x01b"}]
)
def test_explain_bad_input_is_a_400_json_error(api, query):
    response = api.get(EXPLAIN, query)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_superuser_bypass_is_explained(api, olivia_key):
    body = api.get(EXPLAIN, {"key": KEY}).json()
    assert body["superuser"] is True
    assert body["decisions"]["create"]["source"] == "no_rule"
    for name in ("delete", "write", "read"):
        decision = body["decisions"][name]
        assert decision["allowed"] is True
        assert decision["source"] == "superuser"
        assert decision["because"] == "Superuser: the ACL is bypassed."


def test_the_rule_of_prefix_explain_is_still_served(api):
    assert api.put(EXPLAIN, {"mode": "cdwr--------"}, format="json").status_code == 201
    assert api.get(EXPLAIN).json()["prefix"] == "explain"
    assert api.delete(EXPLAIN).status_code == 204


def test_explain_for_one_of_a_users_tokens(make_client, olivia_key):
    olivia = User.objects.get(username="olivia")
    otto = User.objects.create(username="otto")
    confined = token_create(user=olivia, scopes=BASIC, prefix="q/").token
    own = make_client(scopes=["pubsub"], user=olivia)
    body = own.get(EXPLAIN, {"key": KEY, "token": confined.id}).json()  # one of hers: allowed
    assert body["auth"] == "token" and body["token_prefix"] == "q/"
    assert body["decisions"]["read"]["source"] == "token_prefix"
    stranger = make_client(scopes=BASIC, user=otto)
    assert stranger.get(EXPLAIN, {"key": KEY, "token": confined.id}).status_code == 403
    assert stranger.get(EXPLAIN, {"key": KEY, "token": "tok_none"}).status_code == 403
    admin = make_client(scopes=["admin:acl"], user=otto)
    query = {"key": KEY, "token": confined.id, "user": "olivia"}
    assert admin.get(EXPLAIN, query).json()["decisions"]["write"]["source"] == "token_prefix"
    missing = admin.get(EXPLAIN, {"key": KEY, "token": confined.id, "user": "otto"})
    assert missing.status_code == 404 and missing.json()["detail"]
    assert admin.get(EXPLAIN, {"token": confined.id}).status_code == 400
