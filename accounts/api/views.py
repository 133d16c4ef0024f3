"""The accounts API: thin adapters from HTTP to accounts.services and accounts.selectors."""

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from kv.keys import MAX_TTL_SECONDS
from kvsite.exceptions import InvalidInput
from kvsite.parsers import request_json

from ..authentication import BearerTokenAuthentication
from ..permissions import acting_credential, request_credential, scope_check
from ..scopes import ALL
from ..selectors import (
    group_get,
    group_list,
    token_list,
    user_get,
    user_group_names,
    user_list,
    users_named,
)
from ..services import (
    group_create,
    group_delete,
    group_update,
    jwt_login,
    jwt_refresh,
    token_create,
    token_revoke,
    user_create,
    user_delete,
    user_update,
)
from .serializers import (
    GroupOutputSerializer,
    TokenIssuedOutputSerializer,
    TokenOutputSerializer,
    UserOutputSerializer,
)

USERNAME = UnicodeUsernameValidator()
GROUP_NAME = RegexValidator(  # the username rules
    r"^[\w.@+-]+\Z", "Enter a valid group name: letters, digits and @/./+/-/_ only."
)


def name_list(**kw) -> serializers.ListField:
    """A JSON list of user or group names."""
    return serializers.ListField(child=serializers.CharField(max_length=150), **kw)


def valid_input(serializer_class, request) -> dict:
    """The request body validated by `serializer_class` (400 otherwise)."""
    serializer = serializer_class(data=request_json(request))
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- users ---------------------------------------------------------------------------------------


class UserListApi(APIView):
    """List users; create one."""

    @extend_schema_serializer(component_name="UserCreateInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[USERNAME])
        password = serializers.CharField(required=False, trim_whitespace=False, write_only=True)
        email = serializers.EmailField(required=False, allow_blank=True)
        groups = name_list(required=False)
        is_superuser = serializers.BooleanField(required=False)
        is_staff = serializers.BooleanField(required=False, help_text="May log in to the admin.")

    @extend_schema(responses=UserOutputSerializer(many=True), operation_id="users_list")
    def get(self, request):
        """Every user, by username."""
        scope_check(request, "admin:users:read")
        return Response(UserOutputSerializer(user_list(), many=True).data)

    @extend_schema(
        request=InputSerializer, responses={201: UserOutputSerializer}, operation_id="users_create"
    )
    def post(self, request):
        """Create a user; without a password they can use API tokens but not log in."""
        scope_check(request, "admin:users:create")
        data = valid_input(self.InputSerializer, request)
        user = user_create(credential=acting_credential(request), **data)
        return Response(UserOutputSerializer(user).data, status=201)


class UserDetailApi(APIView):
    """Read, change or delete one user."""

    @extend_schema_serializer(component_name="UserUpdateInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(required=False, allow_blank=True)
        password = serializers.CharField(required=False, trim_whitespace=False, write_only=True)
        groups = name_list(required=False, help_text="Replaces the user's group membership.")
        is_active = serializers.BooleanField(required=False)
        is_superuser = serializers.BooleanField(required=False)
        is_staff = serializers.BooleanField(required=False, help_text="May log in to the admin.")

    @extend_schema(responses=UserOutputSerializer, operation_id="users_get")
    def get(self, request, username):
        """One user."""
        scope_check(request, "admin:users:read")
        return Response(UserOutputSerializer(user_get(username=username)).data)

    @extend_schema(
        request=InputSerializer, responses=UserOutputSerializer, operation_id="users_update"
    )
    def patch(self, request, username):
        """Change a user's email, password, groups, is_active, is_superuser or is_staff."""
        scope_check(request, "admin:users:update")
        user = user_get(username=username)
        data = valid_input(self.InputSerializer, request)
        if not data:
            raise InvalidInput(
                "Give any of email, password, groups, is_active, is_superuser, is_staff."
            )
        user = user_update(user=user, credential=acting_credential(request), **data)
        return Response(UserOutputSerializer(user).data)

    @extend_schema(responses={204: None}, operation_id="users_delete")
    def delete(self, request, username):
        """Delete a user and their API tokens."""
        scope_check(request, "admin:users:delete")
        user_delete(user=user_get(username=username), credential=acting_credential(request))
        return Response(status=204)


# --- groups --------------------------------------------------------------------------------------


class GroupListApi(APIView):
    """List groups; create one."""

    @extend_schema_serializer(component_name="GroupCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=150, validators=[GROUP_NAME])
        members = name_list(required=False)

    @extend_schema(responses=GroupOutputSerializer(many=True), operation_id="groups_list")
    def get(self, request):
        """Every group, by name, with its members."""
        scope_check(request, "admin:groups:read")
        return Response(GroupOutputSerializer(group_list(), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: GroupOutputSerializer},
        operation_id="groups_create",
    )
    def post(self, request):
        """Create a group, optionally with members."""
        scope_check(request, "admin:groups:create")
        group = group_create(**valid_input(self.InputSerializer, request))
        return Response(GroupOutputSerializer(group).data, status=201)


class GroupDetailApi(APIView):
    """Read, change the members of, or delete one group."""

    @extend_schema_serializer(component_name="GroupUpdateInput")
    class InputSerializer(serializers.Serializer):
        members = name_list(required=False, help_text="The new members, replacing the old.")
        add = name_list(required=False)
        remove = name_list(required=False)

    @extend_schema(responses=GroupOutputSerializer, operation_id="groups_get")
    def get(self, request, name):
        """One group and its members."""
        scope_check(request, "admin:groups:read")
        return Response(GroupOutputSerializer(group_get(name=name)).data)

    @extend_schema(
        request=InputSerializer, responses=GroupOutputSerializer, operation_id="groups_update"
    )
    def patch(self, request, name):
        """Replace the members (`members`), or add and remove some (`add`, `remove`)."""
        scope_check(request, "admin:groups:update")
        group = group_get(name=name)
        data = valid_input(self.InputSerializer, request)
        if not data:
            raise InvalidInput("Give members, or add and/or remove.")
        return Response(GroupOutputSerializer(group_update(group=group, **data)).data)

    @extend_schema(responses={204: None}, operation_id="groups_delete")
    def delete(self, request, name):
        """Delete a group; its members stay."""
        scope_check(request, "admin:groups:delete")
        group_delete(group=group_get(name=name))
        return Response(status=204)


# --- API tokens ----------------------------------------------------------------------------------


class TokenListApi(APIView):
    """List API tokens (never their secrets); issue one."""

    @extend_schema_serializer(component_name="TokenCreateInput")
    class InputSerializer(serializers.Serializer):
        user = serializers.CharField(
            max_length=150, required=False, help_text="Whose token (default: the caller)."
        )
        scopes = serializers.ListField(child=serializers.CharField(max_length=64))
        expires_in = serializers.IntegerField(
            min_value=1, max_value=MAX_TTL_SECONDS, required=False, allow_null=True
        )
        prefix = serializers.CharField(
            max_length=1024, required=False, allow_null=True, allow_blank=True
        )
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)

    @extend_schema(
        parameters=[OpenApiParameter("user", OpenApiTypes.STR, description="Only this user's.")],
        responses=TokenOutputSerializer(many=True),
        operation_id="tokens_list",
    )
    def get(self, request):
        """Every API token, oldest first, without secrets."""
        scope_check(request, "admin:tokens:create")
        tokens = token_list(username=request.query_params.get("user") or None)
        return Response(TokenOutputSerializer(tokens, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: TokenIssuedOutputSerializer},
        operation_id="tokens_create",
    )
    def post(self, request):
        """Issue a token; the answer holds its secret, which is shown only this once."""
        scope_check(request, "admin:tokens:create")
        data = valid_input(self.InputSerializer, request)
        owner = data.pop("user", None) or getattr(request.user, "username", None)
        if not owner:
            raise InvalidInput("Give the user the token is for.")
        [user] = users_named(usernames=[owner])
        issued = token_create(user=user, credential=acting_credential(request), **data)
        body = {"token": issued.secret, **TokenOutputSerializer(issued.token).data}
        return Response(body, status=201)


class TokenDetailApi(APIView):
    """Revoke one API token, for good."""

    @extend_schema(responses={204: None}, operation_id="tokens_revoke")
    def delete(self, request, token_id):
        """Revoke a token (again: no-op); it is refused from the next request on."""
        scope_check(request, "admin:tokens:revoke")
        token_revoke(token_id=token_id)
        return Response(status=204)


# --- login and whoami ----------------------------------------------------------------------------


class PublicApi(APIView):
    """Needs no credential and reads none; failures still answer 401 with a Bearer challenge."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return BearerTokenAuthentication().authenticate_header(request)


class AuthLoginApi(PublicApi):
    """Exchange a username and password for an access and a refresh JWT."""

    @extend_schema_serializer(component_name="LoginInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        password = serializers.CharField(trim_whitespace=False, write_only=True)

    @extend_schema_serializer(component_name="LoginOutput")
    class OutputSerializer(serializers.Serializer):
        access = serializers.CharField()
        refresh = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer, operation_id="auth_login")
    def post(self, request):
        data = valid_input(self.InputSerializer, request)
        return Response(jwt_login(request=request, **data))


class AuthRefreshApi(PublicApi):
    """Exchange a refresh JWT for a new access JWT."""

    @extend_schema_serializer(component_name="RefreshInput")
    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema_serializer(component_name="RefreshOutput")
    class OutputSerializer(serializers.Serializer):
        access = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer, operation_id="auth_refresh")
    def post(self, request):
        data = valid_input(self.InputSerializer, request)
        return Response(jwt_refresh(request=request, **data))


class WhoamiApi(APIView):
    """The caller: who they are and what their credential lets them do."""

    @extend_schema_serializer(component_name="Whoami")
    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField(allow_null=True)
        scopes = serializers.ListField(child=serializers.CharField())
        groups = serializers.ListField(child=serializers.CharField())
        prefix = serializers.CharField(allow_null=True)
        superuser = serializers.BooleanField()
        auth = serializers.ChoiceField(choices=["token", "jwt", "session", "none"])

    @extend_schema(responses=OutputSerializer, operation_id="whoami")
    def get(self, request):
        credential = request_credential(request)
        if credential is None:  # only with KVS_AUTH_ENABLED off
            anyone = {"username": None, "scopes": [ALL], "groups": [], "prefix": None}
            return Response({**anyone, "superuser": True, "auth": "none"})
        user = credential.user
        return Response(
            {
                "username": user.username,
                "scopes": list(credential.scopes),
                "groups": user_group_names(user=user),
                "prefix": credential.prefix,
                "superuser": user.is_superuser,
                "auth": credential.auth,
            }
        )
