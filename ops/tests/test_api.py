"""GET /metrics: the text format, open by default; with KVS_METRICS_PUBLIC off, admin:cluster."""

from __future__ import annotations

import shutil
import subprocess

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)  # what Prometheus 2 sends


def families(response) -> dict:
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def test_metrics_are_open_by_default_in_the_text_format(anon, api):
    api.put("/api/v1/kv/some/key", {"x": 1}, format="json")
    response = anon.get("/metrics", HTTP_ACCEPT=PROMETHEUS_ACCEPT)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = families(response)
    assert {"kvs_keys", "kvs_revision", "kvs_members", "kvs_http_requests"} <= set(found)
    assert all(name.startswith("kvs_") for name in found)
    assert found["kvs_keys"].samples[0].value == 1


def test_open_metrics_ignore_a_credential_that_is_no_good(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert anon.get("/metrics").status_code == 200


def test_no_label_value_carries_a_key_value_or_username(api, make_client, anon):
    api.put("/api/v1/kv/secret-key/x", {"secret-value": 1}, format="json")
    make_client(scopes=["read"]).get("/api/v1/kv/secret-key/x")  # user alice
    text = anon.get("/metrics").content.decode()
    for word in ("secret-key", "secret-value", "alice", "root"):
        assert word not in text


@pytest.fixture
def closed(settings):
    settings.KVS_METRICS_PUBLIC = False


def test_closed_metrics_need_a_credential(anon, closed):
    response = anon.get("/metrics")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert orjson.loads(response.content)["code"] == "unauthenticated"
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert anon.get("/metrics").status_code == 401


def test_closed_metrics_refuse_a_credential_without_admin_cluster(make_client, closed):
    response = make_client(scopes=["read", "write", "admin:acl"]).get("/metrics")
    assert response.status_code == 403
    assert "admin:cluster" in orjson.loads(response.content)["detail"]


def test_closed_metrics_answer_admin_cluster(make_client, api, closed):
    assert make_client(scopes=["admin:cluster"]).get("/metrics").status_code == 200
    assert api.get("/metrics", HTTP_ACCEPT=PROMETHEUS_ACCEPT).status_code == 200  # `*`


PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (apt prometheus)")
def test_promtool_finds_nothing_to_complain_of(api, anon):
    api.put("/api/v1/kv/a", 1, format="json")
    api.get("/api/v1/kv/absent")
    anon.get("/no/such/route")
    text = anon.get("/metrics").content
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == b""
