"""ACL rules and JSON Schemas per prefix: thin adapters over kv.policy."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken, User
from accounts.permissions import AUTH_TOKEN, Credential, request_credential, scope_check
from accounts.scopes import ADMIN_ACL, READ
from kvsite.exceptions import InvalidInput, NotFound
from kvsite.openapi import errors, path_param
from kvsite.parsers import json_parse, request_json

from .. import policy
from ..acl import mode_format, mode_parse
from ..explain import acl_explain, login_credential
from ..models import AclRule, PrefixSchema
from ..services import principals_check
from .params import param_str
from .serializers import ModeField

PREFIX_PARAM = path_param(
    "prefix", description="The rest of the path, verbatim; it may end in `/`.", example="config/"
)


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


class AclRuleOutputSerializer(serializers.Serializer):
    """Documentation of a rule's shape (the views render `rule_out`)."""

    prefix = serializers.CharField()
    owner = serializers.CharField(allow_null=True)
    group = serializers.CharField(allow_null=True)
    mode = serializers.IntegerField(min_value=0, max_value=4095)
    mode_string = serializers.CharField()


class PrefixSchemaOutputSerializer(serializers.Serializer):
    """Documentation of a prefix schema's shape (the views render `schema_out`)."""

    prefix = serializers.CharField()
    schema = serializers.JSONField(help_text="The JSON Schema: an object, or true or false.")


# A JSON Schema document: an object, or a boolean (true accepts anything, false nothing).
JSON_SCHEMA = {"oneOf": [{"type": "object"}, {"type": "boolean"}]}


class AclRuleListApi(APIView):
    """Every ACL rule, in prefix order."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: AclRuleOutputSerializer(many=True), **errors(403)},
        operation_id="acl_list",
    )
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
        mode = ModeField(help_text="0..4095 or e.g. 'cdwr--wr---r'.")

    @extend_schema(
        parameters=[PREFIX_PARAM],
        responses={200: AclRuleOutputSerializer, **errors(403, 404)},
        operation_id="acl_get",
    )
    def get(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        rule = AclRule.objects.filter(prefix=prefix).first()
        if rule is None:
            raise NotFound(f"No ACL rule for prefix {prefix!r}.")
        return Response(rule_out(rule))

    @extend_schema(
        parameters=[PREFIX_PARAM],
        request=InputSerializer,
        responses={
            200: OpenApiResponse(AclRuleOutputSerializer, description="Replaced."),
            201: OpenApiResponse(AclRuleOutputSerializer, description="Created."),
            **errors(400, 403),
        },
        examples=[
            OpenApiExample("A rule", value={"mode": "cdwr--wr---r"}, request_only=True),
        ],
        operation_id="acl_put",
    )
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

    @extend_schema(
        parameters=[PREFIX_PARAM],
        responses={204: OpenApiResponse(description="Deleted."), **errors(403, 404)},
        operation_id="acl_delete",
    )
    def delete(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        policy.acl_rule_delete(prefix=prefix)
        return Response(status=204)


class SchemaListApi(APIView):
    """Every prefix schema."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: PrefixSchemaOutputSerializer(many=True), **errors(403)},
        operation_id="schema_list",
    )
    def get(self, request):
        scope_check(request, READ)
        return Response([schema_out(s) for s in PrefixSchema.objects.order_by("prefix")])


class SchemaApi(APIView):
    """The JSON Schema that values under a prefix must satisfy (the body is the schema)."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[PREFIX_PARAM],
        responses={200: PrefixSchemaOutputSerializer, **errors(403, 404)},
        operation_id="schema_get",
    )
    def get(self, request, prefix):
        scope_check(request, READ)
        schema = PrefixSchema.objects.filter(prefix=prefix).first()
        if schema is None:
            raise NotFound(f"No schema for prefix {prefix!r}.")
        return Response(schema_out(schema))

    @extend_schema(
        parameters=[PREFIX_PARAM],
        request={"application/json": JSON_SCHEMA},
        responses={
            200: OpenApiResponse(PrefixSchemaOutputSerializer, description="Replaced."),
            201: OpenApiResponse(PrefixSchemaOutputSerializer, description="Created."),
            **errors(400, 403),
        },
        examples=[OpenApiExample("A schema", value={"type": "object"}, request_only=True)],
        operation_id="schema_put",
        description="The body is the JSON Schema that every value under the prefix must satisfy.",
    )
    def put(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        schema, created = policy.schema_put(prefix=prefix, schema=json_parse(request.body))
        return Response(schema_out(schema), status=201 if created else 200)

    @extend_schema(
        parameters=[PREFIX_PARAM],
        responses={204: OpenApiResponse(description="Deleted."), **errors(403, 404)},
        operation_id="schema_delete",
    )
    def delete(self, request, prefix):
        scope_check(request, ADMIN_ACL)
        policy.schema_delete(prefix=prefix)
        return Response(status=204)


class AclExplainApi(AclRuleApi):
    """Why the ACL lets a user create, delete, write and read a key, or not (GET with `key`).

    It sits at `acl/explain`, so the rule of the prefix "explain" is served here too.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, required=True, description="The key."),
            OpenApiParameter(
                "user", OpenApiTypes.STR, description="Another user (needs `admin:acl`)."
            ),
            OpenApiParameter(
                "token",
                OpenApiTypes.STR,
                description="A token's id: one of yours, or anyone's with `admin:acl`.",
            ),
        ],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404)},
        operation_id="acl_explain",
    )
    def get(self, request, prefix="explain"):
        key = param_str(request, "key")
        if key is None:
            if "user" in request.query_params or "token" in request.query_params:
                raise InvalidInput("Name the key: ?key=K.")
            return super().get(request, prefix)
        credential = explain_credential(
            request, param_str(request, "user"), param_str(request, "token")
        )
        return Response(acl_explain(key=key, credential=credential))

    @extend_schema(exclude=True)  # documented as acl/{prefix}
    def put(self, request, prefix="explain"):
        return super().put(request, prefix)

    @extend_schema(exclude=True)
    def delete(self, request, prefix="explain"):
        return super().delete(request, prefix)


def explain_credential(
    request, username: str | None, token_id: str | None = None
) -> Credential | None:
    """The credential explained: the caller's own, one of their tokens, or (with `admin:acl`)
    another user's login or token."""
    own = request_credential(request)
    if token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
        if token is not None and username is not None and token.user.username != username:
            token = None
        mine = own is not None and token is not None and token.user_id == own.user.pk
        if not mine:
            scope_check(request, ADMIN_ACL)
        if token is None or not token.is_active():
            raise NotFound(
                f"No active token {token_id!r}" + (f" of {username!r}." if username else ".")
            )
        scopes, prefix = tuple(token.scopes), token.prefix
        return Credential(user=token.user, auth=AUTH_TOKEN, scopes=scopes, prefix=prefix)
    if username is None or (own is not None and own.user.username == username):
        if own is None and settings.KVS_AUTH_ENABLED and not settings.KVS_ALLOW_ANONYMOUS_READ:
            raise NotAuthenticated()
        return own
    scope_check(request, ADMIN_ACL)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"No user {username!r}.")
    return login_credential(user)
