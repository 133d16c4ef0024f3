import pytest
from django.contrib.auth.models import Group

from accounts.authentication import token_cache_clear
from accounts.models import User
from backups.fileformat import BackupDamaged
from backups.restore import _wipe, backup_restore, backup_verify, store_is_empty
from backups.services import backup_write
from kv.models import Entry
from kv.selectors import merkle_leaves, merkle_recompute, store_state
from kv.services import entry_put
from kvsite.exceptions import Conflict

from .helpers import store_dump, store_fill

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(tmp_path):
    store_fill()
    path = tmp_path / "node.jsonl.zst"
    header, _, _ = backup_write(path)
    return path, header, store_dump()


def test_the_header_describes_the_snapshot(backup):
    path, header, dump = backup
    state = store_state()
    assert (header["revision"], header["hlc"], header["merkle_root"]) == dump["state"]
    assert header["node"] == dump["node"][0][0]
    assert header["keys"] == 20 - 1 + 1  # k0001 is a tombstone, session/1 expired; typed/a
    assert header["counts"]["entry"] == Entry.objects.count()
    assert header["counts"]["user"] == 2 and header["counts"]["token"] == 2
    assert header["revision"] == state.revision
    verified = backup_verify(path)
    assert verified.counts == header["counts"]
    assert verified.merkle_root == state.merkle_root


def test_restore_reproduces_the_store_exactly(backup):
    path, header, before = backup
    entry_put(key="app/after", value="1")  # changes after the backup are undone
    User.objects.filter(username="alice").delete()
    Group.objects.create(name="late")
    backup_restore(path, force=True)
    after = store_dump()
    for part in before:
        assert after[part] == before[part], part
    leaves, root = merkle_recompute()
    assert root == store_state().merkle_root == header["merkle_root"]
    assert leaves == merkle_leaves()


def test_restored_tokens_authenticate_by_their_hash(backup, make_client):
    path, _, _ = backup
    client = make_client(user=User.objects.get(username="root"))
    assert client.get("/api/v1/whoami").status_code == 200
    path2 = path.with_name("with-token.jsonl.zst")
    backup_write(path2)
    backup_restore(path2, force=True)
    token_cache_clear()
    assert client.get("/api/v1/whoami").status_code == 200
    backup_restore(path, force=True)  # the backup from before that token was made
    token_cache_clear()
    assert client.get("/api/v1/whoami").status_code == 401


def test_restored_node_keeps_writing_after_the_backups_revision(backup):
    path, header, _ = backup
    backup_restore(path, force=True)
    entry, created = entry_put(key="app/new", value="2")
    assert created and entry.revision == header["revision"] + 1
    assert merkle_recompute()[1] == store_state().merkle_root


def test_a_store_that_is_not_empty_is_refused_without_force(backup):
    path, _, before = backup
    assert not store_is_empty()
    with pytest.raises(Conflict, match="not empty"):
        backup_restore(path)
    assert store_dump() == before


def test_a_damaged_backup_changes_nothing(backup):
    path, _, before = backup
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupDamaged):
        backup_restore(path, force=True)
    assert store_dump() == before


def test_an_empty_store_takes_a_backup_without_force(backup):
    path, _, before = backup
    _wipe()  # what a fresh, migrated database holds
    assert store_is_empty()
    backup_restore(path)
    assert store_dump() == before


def test_versions_keep_their_actor_and_a_backup_without_actors_still_restores(backup, tmp_path):
    from backups.fileformat import BackupWriter, backup_lines
    from kv.models import EntryVersion

    path, _, before = backup
    assert Entry.objects.exclude(actor=None).count() == 0  # store_fill writes as the system
    Entry.objects.filter(key="app/k0000").update(actor="alice")
    EntryVersion.objects.filter(key="app/k0000").update(actor="bob")
    with_actor = tmp_path / "actors.jsonl.zst"
    backup_write(with_actor)
    backup_restore(with_actor, force=True)
    assert Entry.objects.get(key="app/k0000").actor == "alice"
    assert set(EntryVersion.objects.filter(key="app/k0000").values_list("actor", flat=True)) == {
        "bob"
    }
    old = tmp_path / "earlier-release.jsonl.zst"  # the same backup as written before actors
    with open(old, "wb") as target:
        writer = BackupWriter(target)
        for number, data in backup_lines(path):
            kind = data.pop("kind")
            if number == 1:
                for name in ("format", "format_version"):
                    data.pop(name)
                writer.header(data)
                continue
            data.pop("actor", None)
            writer.record(kind, data)
        writer.close()
    backup_restore(old, force=True)
    assert store_dump() == before
