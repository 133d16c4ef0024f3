"""The backups page of the admin: superusers list, download, delete and take backups; staff
without admin:cluster get none of it."""

import pytest
from django.urls import reverse

from accounts.models import User
from backups.models import Backup
from backups.services import backup_create

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:backups_backup_changelist"


@pytest.fixture
def superuser_client(client, root_user):
    client.force_login(root_user)
    return client


@pytest.fixture
def staff_client(client):
    user = User.objects.create_user(username="sam", password="sam-password-1", is_staff=True)
    client.force_login(user)
    return client


def test_the_list_shows_each_backup_with_a_download_link(superuser_client):
    backup = backup_create()
    page = superuser_client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    html = page.content.decode()
    assert backup.id in html
    assert reverse("backup", args=[backup.id]) in html
    assert "Back up now" in html
    download = superuser_client.get(reverse("backup", args=[backup.id]))
    assert download.status_code == 200 and download["Content-Type"] == "application/zstd"


def test_back_up_now_takes_a_backup(superuser_client):
    answer = superuser_client.post(reverse("admin:backups_backup_now"), follow=True)
    assert answer.status_code == 200
    assert Backup.objects.count() == 1
    assert "Backed up" in answer.content.decode()


def test_deleting_in_the_admin_removes_the_file(superuser_client, _backup_dir):
    backup = backup_create()
    answer = superuser_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [backup.pk], "post": "yes"},
    )
    assert answer.status_code == 302
    assert not Backup.objects.exists()
    assert not (_backup_dir / backup.file).exists()


def test_staff_without_admin_cluster_get_nothing(staff_client, _backup_dir):
    backup = backup_create()
    assert staff_client.get(reverse(CHANGELIST)).status_code == 403
    assert staff_client.post(reverse("admin:backups_backup_now")).status_code == 403
    assert staff_client.get(reverse("backup", args=[backup.id])).status_code == 403
    assert Backup.objects.count() == 1 and (_backup_dir / backup.file).exists()
