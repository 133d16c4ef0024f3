"""The OpenAPI document at /api/schema/: built by drf-spectacular without a warning, and true
to the API."""

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
    from drf_spectacular.settings import spectacular_settings

    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    return generator.get_schema(request=None, public=True)


def _request_schema(schema: dict, path: str, method: str) -> dict:
    return schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def _component(schema: dict, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_publish_takes_a_data_body_not_an_acl_rule(schema: dict) -> None:
    publish = _component(schema, _request_schema(schema, "/api/v1/pubsub/{topic}", "post"))
    assert set(publish["properties"]) == {"data"}
    rule = _component(schema, _request_schema(schema, "/api/v1/acl/{prefix}", "put"))
    assert set(rule["properties"]) == {"owner", "group", "mode"}


def _ok_schema(schema: dict, path: str, method: str = "get") -> dict:
    responses = schema["paths"][path][method]["responses"]
    ok = next(code for code in responses if code.startswith("2"))
    return responses[ok]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/acl/",
        "/api/v1/schemas/",
        "/api/v1/cluster/members",
        "/api/v1/users",
        "/api/v1/groups",
        "/api/v1/tokens",
    ],
)
def test_lists_answered_as_arrays_are_documented_as_arrays(schema: dict, path: str) -> None:
    listed = _ok_schema(schema, path)
    assert listed["type"] == "array"
    assert "$ref" in listed["items"]


def test_every_error_answer_is_documented_as_an_error_object(schema: dict) -> None:
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "code"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path != "/health":
                assert {"401", "429"} <= set(responses), f"{method} {path}"
            for code, response in responses.items():
                if code.startswith("4") and method != "head":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Error"), f"{method} {path} {code}"


def test_the_key_api_documents_its_parameters_bodies_and_answers(schema: dict) -> None:
    key = schema["paths"]["/api/v1/kv/{key}"]
    assert set(key) == {"get", "head", "put", "patch", "delete"}
    put = key["put"]
    assert put["requestBody"]["required"] is True
    assert put["requestBody"]["content"]["application/json"]["schema"] == {}  # any JSON value
    assert {p["name"] for p in put["parameters"]} == {"key", "ttl", "cas"}
    assert {"200", "201", "400", "403", "409", "413", "503"} <= set(put["responses"])
    assert {p["name"] for p in key["delete"]["parameters"]} == {"key", "cas", "recurse"}
    assert {"200", "204", "404", "409"} <= set(key["delete"]["responses"])
    assert {"200", "404"} <= set(key["head"]["responses"])
    assert not any("content" in answer for answer in key["head"]["responses"].values())
    listing = schema["paths"]["/api/v1/kv/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {"prefix", "limit", "cursor", "keys", "separator"}


def test_modes_ttls_and_cas_are_documented_as_the_api_reads_them(schema: dict) -> None:
    rule = schema["components"]["schemas"]["AclRuleInput"]["properties"]["mode"]
    assert [branch["type"] for branch in rule["oneOf"]] == ["integer", "string"]
    put = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/kv/{key}"]["put"]["parameters"]}
    assert put["ttl"]["pattern"] == "^[0-9]{1,12}[smhd]?$"
    assert {"type": "string", "format": "uuid"} in put["cas"]["anyOf"]


def test_limits_and_retry_after_are_documented(schema: dict) -> None:
    get = schema["paths"]["/api/v1/kv/{key}"]["get"]
    key = next(p for p in get["parameters"] if p["name"] == "key")
    assert key["schema"]["maxLength"] == 1024
    assert "Retry-After" in get["responses"]["429"]["headers"]
    listing = schema["paths"]["/api/v1/kv/"]["get"]["parameters"]
    assert next(p for p in listing if p["name"] == "limit")["schema"]["maximum"] == 1000
