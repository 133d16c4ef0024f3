"""Management commands of the accounts app."""

import io

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from kv.models import Entry

pytestmark = pytest.mark.django_db


def test_kvs_password_gives_root_a_new_random_password_that_replicates(root_user):
    out = io.StringIO()
    call_command("kvs_password", stdout=out)
    password = out.getvalue().strip().rsplit(": ", 1)[1]
    root = User.objects.get(username="root")
    assert root.check_password(password) and not root.check_password("root-password-1")
    # The change is mirrored into the replicated account record (the hash, never the password).
    record = Entry.objects.get(key="_sys/users/root").value
    assert root.password in record and password not in record


def test_kvs_password_reads_a_chosen_password_from_stdin(root_user, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-passphrase-9\n"))
    out = io.StringIO()
    call_command("kvs_password", "root", "--stdin", stdout=out)
    assert out.getvalue().strip() == "password of root changed"
    assert User.objects.get(username="root").check_password("a-long-passphrase-9")


def test_kvs_password_refuses_an_unknown_user_and_a_too_short_password(root_user, monkeypatch):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("kvs_password", "nobody")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("kvs_password", "root", "--stdin")
    assert User.objects.get(username="root").check_password("root-password-1")
