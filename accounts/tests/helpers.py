"""Small helpers shared by the accounts tests: clients, calls, error checks, scope sets."""

from rest_framework.test import APIClient

from accounts.scopes import SCOPES


def bearer(value: str) -> APIClient:
    """A client that sends `Authorization: Bearer <value>` (an API token secret or a JWT)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
    return client


def call(client: APIClient, method: str, path: str, body=None):
    """`method` on `path`, with `body` as JSON when given."""
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


def assert_error(response, status: int) -> dict:
    """`response` is a JSON error with this status and a human-readable `detail`."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    return body


def all_scopes_but(scope: str) -> list[str]:
    """Every scope except `scope` (and never `*`): a credential that lacks exactly `scope`."""
    assert scope in SCOPES
    return [other for other in SCOPES if other != scope]
