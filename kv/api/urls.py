from django.urls import path, register_converter
from django.urls.converters import PathConverter

from . import import_views, policy_views, txn_views, views


class KeyConverter(PathConverter):
    """Any non-empty path, newlines included, so that bad keys reach the view and answer 400."""

    regex = "(?s:.+)"


register_converter(KeyConverter, "kvkey")

urlpatterns = [
    path("kv/", views.KeyListApi.as_view(), name="kv-list"),
    path("kv/<kvkey:key>", views.KeyApi.as_view(), name="kv-key"),
    path("import", import_views.ImportApi.as_view(), name="kv-import"),
    path("txn", txn_views.TxnApi.as_view(), name="kv-txn"),
    path("history/<kvkey:key>", views.HistoryApi.as_view(), name="kv-history"),
    path("meta/<kvkey:key>", views.MetaApi.as_view(), name="kv-meta"),
    path("acl/", policy_views.AclRuleListApi.as_view(), name="acl-list"),
    path("acl/explain", policy_views.AclExplainApi.as_view(), name="acl-explain"),
    path("acl/<kvkey:prefix>", policy_views.AclRuleApi.as_view(), name="acl-rule"),
    path("schemas/", policy_views.SchemaListApi.as_view(), name="schema-list"),
    path("schemas/<kvkey:prefix>", policy_views.SchemaApi.as_view(), name="schema"),
]
