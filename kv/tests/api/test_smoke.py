import pytest


@pytest.mark.django_db
def test_put_then_get_returns_the_value(api):
    put = api.put("/api/v1/kv/a/b", data=b'{"x": 1}', content_type="application/json")
    assert put.status_code == 201, put.content
    got = api.get("/api/v1/kv/a/b")
    assert got.status_code == 200
    assert got.json()["value"] == {"x": 1}
