"""The Django admin of the store: entries (a folder browser), ACL rules and schemas.

Every change made here goes through the services the API uses (kv.services, kv.policy), with the
admin user's ACL for non-superusers.
"""

from django.contrib import admin

from . import entries, policies  # noqa: F401  (registers the model admins)

admin.site.site_header = "kvsite"
admin.site.site_title = "kvsite admin"
admin.site.index_title = "Keys, access and accounts"
admin.site.enable_nav_sidebar = False  # the folder browser and the forms need the width
