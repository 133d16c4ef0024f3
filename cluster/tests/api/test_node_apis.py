"""GET /health, GET /api/v1/status, and the OpenAPI schema and docs."""

import json
import uuid
from urllib.parse import urlencode

import pytest
import yaml
from rest_framework.test import APIClient

import kvsite
from cluster.node import node_syncing_set
from kv import services
from kv.hlc import wall_ms
from kv.models import Entry
from kv.versions import Version

pytestmark = pytest.mark.django_db

ZERO_ROOT = "0" * 32


def put(client, key: str, value=1, **query):
    path = f"/api/v1/kv/{key}" + (f"?{urlencode(query)}" if query else "")
    response = client.put(path, data=json.dumps(value), content_type="application/json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def status(client) -> dict:
    response = client.get("/api/v1/status")
    assert response.status_code == 200, response.content
    return response.json()


# --- /health -------------------------------------------------------------------------------------


def test_health_answers_ok_without_credentials(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["node_id"], str) and body["node_id"]
    assert body["mode"] == "normal"


def test_health_ignores_a_bad_credential(anon):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer wrong")
    assert client.get("/health").status_code == 200


def test_health_and_status_name_the_same_node(api, anon):
    assert anon.get("/health").json()["node_id"] == status(api)["node_id"]


def test_health_reports_a_read_only_node(anon, settings):
    settings.KVS_READ_ONLY = True
    assert anon.get("/health").json()["mode"] == "read-only"


def test_health_reports_a_syncing_node(anon):
    node_syncing_set(True)
    body = anon.get("/health").json()
    node_syncing_set(False)
    assert body["status"] == "ok" and body["mode"] == "syncing"


# --- /api/v1/status ------------------------------------------------------------------------------


def test_status_has_every_field(api):
    body = status(api)
    assert isinstance(body["node_id"], str) and body["node_id"]
    assert body["mode"] == "normal"
    assert body["version"] == kvsite.__version__
    assert isinstance(body["uptime_s"], int | float) and body["uptime_s"] >= 0
    assert body["keys"] == 0
    assert isinstance(body["revision"], int)
    assert isinstance(body["merkle_root"], str) and body["merkle_root"]
    assert isinstance(body["members"], dict)
    assert body["members"]["alive"] >= 1


def test_status_needs_a_credential(anon, api):
    response = anon.get("/api/v1/status")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_status_needs_the_read_scope(make_client):
    assert make_client(scopes=["read"]).get("/api/v1/status").status_code == 200
    response = make_client(scopes=["write"]).get("/api/v1/status")
    assert response.status_code == 403
    assert "detail" in response.json()


def test_status_uptime_does_not_go_backwards(api):
    assert status(api)["uptime_s"] <= status(api)["uptime_s"]


def test_status_keys_counts_live_keys_only(api):
    for key in ["a", "b", "c", "d", "e/f"]:
        put(api, key, ttl="60")
    put(api, "a", 2)  # a replace is still one key
    assert status(api)["keys"] == 5
    assert api.delete("/api/v1/kv/b").status_code == 204
    Entry.objects.filter(key="c").update(expires_at=1)
    assert status(api)["keys"] == 3
    assert api.delete("/api/v1/kv/e?recurse=1").json() == {"deleted": 1}
    assert status(api)["keys"] == 2


def test_two_writes_move_the_revision_by_two(api):
    before = status(api)["revision"]
    first = put(api, "a")
    second = put(api, "a", 2)
    assert status(api)["revision"] == before + 2
    assert (first["revision"], second["revision"]) == (before + 1, before + 2)


def test_deletes_move_the_revision_once_per_key(api):
    for key in ["a", "d/1", "d/2", "d/3"]:
        put(api, key)
    before = status(api)["revision"]
    assert api.delete("/api/v1/kv/a").status_code == 204
    assert status(api)["revision"] == before + 1
    assert api.delete("/api/v1/kv/d?recurse=1").json() == {"deleted": 3}
    assert status(api)["revision"] == before + 4


def test_reads_and_refused_writes_do_not_move_the_revision(api):
    put(api, "a")
    before = status(api)
    api.get("/api/v1/kv/a")
    api.head("/api/v1/kv/a")
    api.get("/api/v1/kv/")
    api.get("/api/v1/history/a")
    assert (
        api.put("/api/v1/kv/a?cas=0", data=b"2", content_type="application/json").status_code == 409
    )
    assert api.delete("/api/v1/kv/missing").status_code == 404
    assert api.delete(f"/api/v1/kv/a?cas={uuid.uuid4()}").status_code == 409
    after = status(api)
    assert (after["revision"], after["merkle_root"]) == (before["revision"], before["merkle_root"])


# --- merkle_root ---------------------------------------------------------------------------------


def test_merkle_root_of_an_empty_store_is_zero(anon, settings):
    settings.KVS_AUTH_ENABLED = False  # no users, no tokens: not even system records
    assert status(anon)["merkle_root"] == ZERO_ROOT


def test_merkle_root_covers_the_system_records(api):
    # the root user and its token are cluster records, kept as reserved entries
    assert status(api)["merkle_root"] != ZERO_ROOT
    assert status(api)["keys"] == 0


def test_merkle_root_changes_on_every_write(api):
    roots = [status(api)["merkle_root"]]
    put(api, "a")
    roots.append(status(api)["merkle_root"])
    put(api, "a", 2)
    roots.append(status(api)["merkle_root"])
    put(api, "b")
    roots.append(status(api)["merkle_root"])
    assert len(set(roots)) == 4


def test_merkle_root_returns_the_same_value_while_nothing_is_written(api):
    put(api, "a")
    root = status(api)["merkle_root"]
    api.get("/api/v1/kv/a")
    api.get("/api/v1/kv/")
    assert status(api)["merkle_root"] == root


def test_merkle_root_after_a_delete_differs_from_before_the_write(api):
    # A tombstone is a record, so deleting does not undo the write in the tree.
    put(api, "keep")
    before = status(api)["merkle_root"]
    put(api, "a")
    written = status(api)["merkle_root"]
    assert api.delete("/api/v1/kv/a").status_code == 204
    deleted = status(api)["merkle_root"]
    assert len({before, written, deleted}) == 3


def test_merkle_root_returns_to_its_old_value_once_the_tombstone_is_purged(api, settings):
    put(api, "keep")
    before = status(api)["merkle_root"]
    put(api, "a")
    assert api.delete("/api/v1/kv/a").status_code == 204
    later = wall_ms() + (settings.KVS_TOMBSTONE_TTL + 60) * 1000
    assert services.tombstones_purge(now=later) == 1
    assert status(api)["merkle_root"] == before


def test_merkle_root_is_unchanged_by_reapplying_a_stored_version(api):
    # Replication is idempotent: the same data gives the same root.
    put(api, "a")
    root = status(api)["merkle_root"]
    revision = status(api)["revision"]
    assert services.entry_apply(Version.of(Entry.objects.get(key="a"))) is None
    assert (status(api)["merkle_root"], status(api)["revision"]) == (root, revision)


# --- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_schema_answers_200_and_describes_the_key_api(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/kv/{key}", "/api/v1/kv/", "/api/v1/status"} <= schema["paths"].keys()
    assert {"get", "put", "delete"} <= schema["paths"]["/api/v1/kv/{key}"].keys()


def test_api_docs_answer_200_html(anon):
    response = anon.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()
