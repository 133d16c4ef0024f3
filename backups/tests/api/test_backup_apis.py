import hashlib

import pytest

from accounts.scopes import READ, WRITE
from backups.fileformat import backup_lines
from backups.models import Backup
from kv.selectors import store_state
from kv.services import entry_put

pytestmark = pytest.mark.django_db

FIELDS = {"id", "created_at", "size", "keys", "sha256"}


@pytest.fixture
def admin(make_client, root_user):
    return make_client(user=root_user, scopes=["admin:cluster"])


def test_without_a_credential_every_backup_api_answers_401(anon):
    assert anon.get("/api/v1/backups").status_code == 401
    assert anon.post("/api/v1/backups").status_code == 401
    assert anon.get("/api/v1/backups/x").status_code == 401
    assert anon.delete("/api/v1/backups/x").status_code == 401


def test_without_admin_cluster_every_backup_api_answers_403(make_client, admin):
    made = admin.post("/api/v1/backups").json()
    other = make_client(scopes=[READ, WRITE, "admin:acl"])
    for answer in (
        other.get("/api/v1/backups"),
        other.post("/api/v1/backups"),
        other.get(f"/api/v1/backups/{made['id']}"),
        other.delete(f"/api/v1/backups/{made['id']}"),
    ):
        assert answer.status_code == 403, answer.content
        assert answer.json()["code"] == "forbidden"
    assert Backup.objects.count() == 1


def test_create_list_download_delete(admin, _backup_dir):
    entry_put(key="app/a", value="1")
    entry_put(key="app/b", value="2")
    created = admin.post("/api/v1/backups")
    assert created.status_code == 201
    made = created.json()
    assert FIELDS <= made.keys()
    assert made["keys"] == 2 and made["revision"] == store_state().revision
    listed = admin.get("/api/v1/backups")
    assert listed.status_code == 200 and listed.json() == [made]

    download = admin.get(f"/api/v1/backups/{made['id']}")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zstd"
    body = b"".join(download.streaming_content)
    assert len(body) == made["size"] and hashlib.sha256(body).hexdigest() == made["sha256"]
    copy = _backup_dir / "copy.bin"
    copy.write_bytes(body)
    keys = [r["key"] for _, r in backup_lines(copy) if r["kind"] == "entry"]
    assert {"app/a", "app/b"} <= set(keys)  # besides the `_sys/` records of the accounts

    assert admin.delete(f"/api/v1/backups/{made['id']}").status_code == 204
    assert admin.get("/api/v1/backups").json() == []
    assert not (_backup_dir / f"{made['id']}.jsonl.zst").exists()
    assert admin.get(f"/api/v1/backups/{made['id']}").status_code == 404
    assert admin.delete(f"/api/v1/backups/{made['id']}").status_code == 404


@pytest.mark.parametrize("bad", ["nothing", "..", "%2e%2e%2fkvsite.sqlite3", "a" * 300])
def test_unknown_or_odd_ids_answer_404(admin, bad):
    answer = admin.get(f"/api/v1/backups/{bad}")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_a_backup_whose_file_was_removed_is_not_listed(admin, _backup_dir):
    made = admin.post("/api/v1/backups").json()
    (_backup_dir / f"{made['id']}.jsonl.zst").unlink()
    assert admin.get("/api/v1/backups").json() == []
    assert admin.get(f"/api/v1/backups/{made['id']}").status_code == 404
