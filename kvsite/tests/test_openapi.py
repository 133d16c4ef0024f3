"""The OpenAPI document at /api/schema/: generated without a warning, true to the API."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kvsite.env import BASE_DIR


def test_spectacular_validates_and_warns_of_nothing(tmp_path: Path) -> None:
    # A process of its own: drf-spectacular counts warnings per process, so a schema generated
    # earlier by another test would hide or add some.
    out = tmp_path / "schema.yaml"
    env = {**os.environ, "KVS_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn"]
    done = subprocess.run(
        [*command, "--file", str(out)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert yaml.safe_load(out.read_text())["paths"]


@pytest.fixture(scope="module")
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _request_schema(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def _component(schema: dict, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_publish_takes_a_data_body_not_an_acl_rule(schema: dict) -> None:
    publish = _component(schema, _request_schema(schema, "/api/v1/pubsub/{topic}", "post"))
    assert set(publish["properties"]) == {"data"}
    rule = _component(schema, _request_schema(schema, "/api/v1/acl/{prefix}", "put"))
    assert set(rule["properties"]) == {"owner", "group", "mode"}
