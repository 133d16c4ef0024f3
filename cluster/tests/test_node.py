import pytest

from cluster.node import MODE_NORMAL, MODE_SYNCING, node_mode, node_syncing_set
from kv import services
from kvsite.exceptions import Unavailable

pytestmark = pytest.mark.django_db


def test_a_syncing_node_refuses_client_writes_with_503():
    node_syncing_set(True)
    try:
        assert node_mode() == MODE_SYNCING
        with pytest.raises(Unavailable):
            services.entry_put(key="k", value="1")
    finally:
        node_syncing_set(False)
    assert node_mode() == MODE_NORMAL
    services.entry_put(key="k", value="1")


def test_syncing_answers_503_over_the_api(api):
    node_syncing_set(True)
    try:
        response = api.put("/api/v1/kv/k", data=b"1", content_type="application/json")
        health = api.get("/health").json()
    finally:
        node_syncing_set(False)
    assert response.status_code == 503
    assert response.json()["mode"] == "syncing"
    assert health["mode"] == "syncing"
