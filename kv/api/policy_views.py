"""ACL rules and JSON Schemas per prefix: thin adapters over kv.policy."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import scope_check
from accounts.scopes import ADMIN_ACL, READ
from kvsite.exceptions import NotFound
from kvsite.parsers import json_parse, request_json

from .. import policy
from ..acl import mode_format, mode_parse
from ..models import AclRule, PrefixSchema
from ..services import principals_check


def rule_out(rule: AclRule) -> dict:
    return {
        "prefix": rule.prefix,
        "owner": rule.owner,
        "group": rule.group,
        "mode": rule.mode,
        "mode_string": mode_format(rule.mode),
    }


def schema_out(schema: PrefixSchema) -> dict:
    return {"prefix": schema.prefix, "schema": schema.schema}


class AclRuleListApi(APIView):
    """Every ACL rule, in prefix order."""

    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="acl_list")
    def get(self, request):
        scope_check(request, ADMIN_ACL)
        return Response([rule_out(r) for r in AclRule.objects.order_by("prefix")])


class AclRuleApi(APIView):
    """One prefix rule: its `c` bits say who may create keys below it; new keys take its group
    and mode."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        owner = serializers.CharField(required=False, allow_null=True, max_length=150)
        group = serializers.CharField(required=False, allow_null=True, max_length=150)
        mode = serializers.JSONField(help_text="0..4095 or e.g. 'cdwr--wr---r'.")

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="acl_get")
    def get(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        rule = AclRule.objects.filter(prefix=prefix).first()
        if rule is None:
            raise NotFound(f"No ACL rule for prefix {prefix!r}.")
        return Response(rule_out(rule))

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT, operation_id="acl_put")
    def put(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        data = self.InputSerializer(data=request_json(request))
        data.is_valid(raise_exception=True)
        owner = data.validated_data.get("owner")
        group = data.validated_data.get("group")
        principals_check(owner=owner, group=group)
        rule, created = policy.acl_rule_put(
            prefix=prefix, owner=owner, group=group, mode=mode_parse(data.validated_data["mode"])
        )
        return Response(rule_out(rule), status=201 if created else 200)

    @extend_schema(responses={204: None}, operation_id="acl_delete")
    def delete(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        policy.acl_rule_delete(prefix=prefix)
        return Response(status=204)


class SchemaListApi(APIView):
    """Every prefix schema."""

    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="schema_list")
    def get(self, request):
        scope_check(request, READ)
        return Response([schema_out(s) for s in PrefixSchema.objects.order_by("prefix")])


class SchemaApi(APIView):
    """The JSON Schema that values under a prefix must satisfy (the body is the schema)."""

    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="schema_get")
    def get(self, request, prefix):
        scope_check(request, READ)
        schema = PrefixSchema.objects.filter(prefix=prefix).first()
        if schema is None:
            raise NotFound(f"No schema for prefix {prefix!r}.")
        return Response(schema_out(schema))

    @extend_schema(
        request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT, operation_id="schema_put"
    )
    def put(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        schema, created = policy.schema_put(prefix=prefix, schema=json_parse(request.body))
        return Response(schema_out(schema), status=201 if created else 200)

    @extend_schema(responses={204: None}, operation_id="schema_delete")
    def delete(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        policy.schema_delete(prefix=prefix)
        return Response(status=204)
