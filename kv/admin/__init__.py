"""The Django admin of the store: entries (a folder browser), ACL rules and schemas.

Every change made here goes through the services the API uses (kv.services, kv.policy), with the
admin user's ACL for non-superusers. The site itself (its titles, sections and error pages) is
kvsite.admin_site.
"""

from . import entries, policies  # noqa: F401  (registers the model admins)
