"""The folder view's query box: the keys whose values match, the index that served them, the
caller's read permission, and a refused query shown as a message."""

import json

import pytest
from django.db import connection
from django.urls import reverse

from accounts.models import User
from kv import services
from kv.acl import mode_parse
from query.services import index_build, index_put

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:kv_entry_changelist"


@pytest.fixture
def people():
    for key, doc in {
        "people/ann": {"city": "Lyon", "age": 31},
        "people/bob": {"city": "Paris", "age": 25},
        "people/team/cid": {"city": "Lyon", "age": 47},
        "other/dan": {"city": "Lyon"},
    }.items():
        services.entry_put(key=key, value=json.dumps(doc))


def listed(response) -> list[str]:
    assert response.status_code == 200
    return [entry.key for entry in response.context["cl"].result_list]


def test_the_query_box_lists_matching_keys_in_the_folder_and_below(client, root_user, people):
    client.force_login(root_user)
    where = json.dumps([{"path": "city", "op": "eq", "value": "Lyon"}])
    response = client.get(reverse(CHANGELIST), {"prefix": "people/", "where": where})
    assert listed(response) == ["people/ann", "people/team/cid"]
    html = response.content.decode()
    assert 'name="where"' in html and "whose values match the query" in html
    body = json.dumps({"where": [{"path": "age", "op": "gt", "value": 30}], "order_by": ["age"]})
    assert listed(client.get(reverse(CHANGELIST), {"prefix": "people/", "where": body})) == [
        "people/ann",
        "people/team/cid",
    ]


def test_the_query_box_names_the_index_that_served_it(client, root_user, people):
    client.force_login(root_user)
    index, _ = index_put(prefix="people/", path="city")
    index_build(name=index.name)
    where = json.dumps([{"path": "city", "op": "eq", "value": "Lyon"}])
    response = client.get(reverse(CHANGELIST), {"prefix": "people/", "where": where})
    if connection.vendor == "postgresql":  # four rows: its planner rightly scans them
        assert response.context["kv_query_index"] in (index.name, None)
        return
    assert response.context["kv_query_index"] == index.name
    assert index.name in response.content.decode()


@pytest.mark.parametrize("where", ["{nope", '[{"path": "a", "op": "like", "value": 1}]', "5"])
def test_a_refused_query_is_a_message_and_lists_nothing(client, root_user, people, where):
    client.force_login(root_user)
    response = client.get(reverse(CHANGELIST), {"prefix": "people/", "where": where})
    assert listed(response) == []
    assert "Query refused" in response.content.decode()


def test_staff_find_only_keys_they_may_read(client, people):
    services.entry_meta_set(key="people/ann", mode=mode_parse("cdwr--------"), fields={"mode"})
    staff = User.objects.create_user(username="bob", password="bob-password-1", is_staff=True)
    client.force_login(staff)
    where = json.dumps([{"path": "city", "op": "eq", "value": "Lyon"}])
    response = client.get(reverse(CHANGELIST), {"prefix": "people/", "where": where})
    assert listed(response) == ["people/team/cid"]


def test_indexes_show_their_state_in_the_admin(client, root_user):
    client.force_login(root_user)
    index, _ = index_put(prefix="people/", path="city")
    html = client.get(reverse("admin:query_valueindex_changelist")).content.decode()
    assert "people/" in html and "building" in html
    index_build(name=index.name)
    html = client.get(reverse("admin:query_valueindex_changelist")).content.decode()
    assert "ready" in html
