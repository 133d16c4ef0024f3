"""The project's own configuration of Django's admin and auth apps."""

from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.apps import AuthConfig


class KvAdminConfig(AdminConfig):
    """Django's admin with kvsite's site (one Accounts section, admin-styled error pages)."""

    default_site = "kvsite.admin_site.KvAdminSite"


class KvAuthConfig(AuthConfig):
    """Django's auth app, named as the admin shows its groups: beside users, under Accounts."""

    verbose_name = "Accounts"
