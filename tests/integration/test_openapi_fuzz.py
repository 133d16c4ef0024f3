"""Schemathesis over every operation of /api/schema/, against one real node started by `kvs up`.

Each operation gets a bounded number of generated requests (schemathesis' examples, coverage and
fuzzing phases), all made with the root token, and every answer must be no 5xx, a documented
status code, of the documented content type and match the documented schema.

Left out of the run, because the fuzzer could lock itself out or take the node away:
- DELETE /api/v1/tokens/{token_id}: it could revoke the root token;
- POST /api/v1/cluster/leave: the node would leave its cluster;
- DELETE /api/v1/cluster/members/{node_id}: the node would forget members (itself refuses, 409);
- PATCH and DELETE /api/v1/users/root: the root user could be deactivated, demoted or deleted
  (other usernames are fuzzed);
- /cluster/internal/*: node-to-node only, signed, and not in the document at all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .helpers import Launch, kvs_up, logs_on_failure

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 50
REQUEST_TIMEOUT_S = 30.0

EXCLUDED = [
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("POST", "/api/v1/cluster/leave"),
    ("DELETE", "/api/v1/cluster/members/{node_id}"),
]
ROOT_GUARDED = {("PATCH", "/api/v1/users/{username}"), ("DELETE", "/api/v1/users/{username}")}

# Statuses answered per operation in this run, to check afterwards that the fuzzer was not
# locked out (everything 401) and reached the operations' success paths.
ANSWERS: Counter[tuple[str, str, int]] = Counter()

# The records the document's examples name, so that the examples phase reaches the success
# paths of reads (random keys and names are almost never there).
EXAMPLE_RECORDS = [
    ("PUT", "/api/v1/schemas/config/", {"type": "object"}),
    ("PUT", "/api/v1/acl/config/", {"mode": "cdwr--wr---r"}),
    ("PUT", "/api/v1/kv/config/app", {"debug": True}),
    ("PUT", "/api/v1/kv/config/old", {"debug": False}),
    ("POST", "/api/v1/users", {"username": "alice", "password": "alice-password-1"}),
    ("POST", "/api/v1/groups", {"name": "ops", "members": ["alice"]}),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    with kvs_up(tmp_path_factory.mktemp("fuzz"), nodes=1) as launched:
        with httpx.Client(base_url=launched.url, headers=_auth(launched), timeout=30.0) as client:
            for method, path, body in EXAMPLE_RECORDS:
                answer = client.request(method, path, json=body)
                assert answer.status_code in (200, 201), (method, path, answer.text)
        yield launched


@pytest.fixture
def _node_logs(request: pytest.FixtureRequest, node: Launch) -> Iterator[None]:
    with logs_on_failure(request, node):
        yield


def _auth(node: Launch) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


def _document() -> dict:
    """The OpenAPI document as this code generates it (the node serves the same; a test checks)."""
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import spectacular_settings

    generated = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(public=True)
    return json.loads(OpenApiJsonRenderer().render(generated, renderer_context={}))


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config())
for _method, _path in EXCLUDED:
    schema = schema.exclude(method=_method, path=_path)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, node: Launch, _node_logs) -> None:
    operation = (case.method.upper(), case.path)
    if operation in ROOT_GUARDED and case.path_parameters.get("username") == "root":
        return
    response = case.call(base_url=node.url, headers=_auth(node), timeout=REQUEST_TIMEOUT_S)
    ANSWERS[(*operation, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


def test_the_node_serves_the_document_that_is_fuzzed(node: Launch) -> None:
    served = httpx.get(
        f"{node.url}/api/schema/", params={"format": "json"}, headers=_auth(node), timeout=30.0
    )
    assert served.status_code == 200
    assert served.json() == _document()


def test_the_run_excludes_only_what_it_names() -> None:
    """Guards the exclusions: a renamed path would silently fuzz what must not be fuzzed."""
    labels = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert not labels & set(EXCLUDED)
    assert ROOT_GUARDED <= labels
    assert ("PUT", "/api/v1/kv/{key}") in labels
    assert not any(path.startswith("/cluster/internal") for _, path in labels)


ANONYMOUS = {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/refresh")}
MUST_SUCCEED = [
    ("GET", "/api/v1/kv/{key}"),
    ("HEAD", "/api/v1/kv/{key}"),
    ("GET", "/api/v1/history/{key}"),
    ("GET", "/api/v1/meta/{key}"),
    ("PUT", "/api/v1/kv/{key}"),
    ("DELETE", "/api/v1/kv/{key}"),
    ("GET", "/api/v1/kv/"),
    ("GET", "/api/v1/acl/{prefix}"),
    ("GET", "/api/v1/schemas/{prefix}"),
    ("GET", "/api/v1/users/{username}"),
    ("GET", "/api/v1/groups/{name}"),
    ("POST", "/api/v1/auth/login"),
    ("PUT", "/api/v1/acl/{prefix}"),
    ("PUT", "/api/v1/schemas/{prefix}"),
    ("POST", "/api/v1/groups"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/pubsub/{topic}"),
]


def test_the_fuzzer_kept_its_credential_and_reached_success_paths(node: Launch) -> None:
    if not ANSWERS:
        pytest.skip("the fuzzing tests did not run in this session")
    whoami = httpx.get(f"{node.url}/api/v1/whoami", headers=_auth(node), timeout=10.0)
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["superuser"] is True
    succeeded = {(method, path) for method, path, status in ANSWERS if status < 300}
    assert set(MUST_SUCCEED) <= succeeded, sorted(ANSWERS.items())
    # The root token is not throttled (KVS_THROTTLE_USER is empty by default); only the
    # operations that read no credential count against the anonymous rate.
    throttled = {(method, path) for method, path, status in ANSWERS if status == 429}
    assert throttled <= ANONYMOUS, sorted(ANSWERS.items())
