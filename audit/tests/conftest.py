"""Audit fixtures: a key file of each test's own, and reading the trail."""

import pytest

from audit.models import AuditEvent


@pytest.fixture(autouse=True)
def audit_key_file(settings, tmp_path):
    """Each test's chain is keyed with a fresh key file (created on first use)."""
    settings.KVS_AUDIT_KEY_FILE = tmp_path / "audit_key"
    return settings.KVS_AUDIT_KEY_FILE


@pytest.fixture
def events():
    """events(action=None, after=0): the recorded events, oldest first, optionally of one action."""

    def read(action: str | None = None, *, after: int = 0) -> list[AuditEvent]:
        rows = AuditEvent.objects.filter(seq__gt=after).order_by("seq")
        return list(rows.filter(action=action) if action else rows)

    return read


@pytest.fixture
def last_seq(db):
    """The newest seq now (0 for an empty trail): events after it are the test's own."""

    def read() -> int:
        newest = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
        return newest or 0

    return read
