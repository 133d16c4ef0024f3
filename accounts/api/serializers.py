"""What the accounts API answers: users, groups and API tokens (never a secret or its hash)."""

from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import ApiToken, User
from ..selectors import group_member_names, user_group_names

NAMES = serializers.ListField(child=serializers.CharField())


class UserOutputSerializer(serializers.ModelSerializer):
    groups = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "username",
            "email",
            "groups",
            "is_superuser",
            "is_staff",
            "is_active",
            "date_joined",
        ]

    @extend_schema_field(NAMES)
    def get_groups(self, user: User) -> list[str]:
        return user_group_names(user=user)


class GroupOutputSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = Group
        fields = ["name", "members"]

    @extend_schema_field(NAMES)
    def get_members(self, group: Group) -> list[str]:
        return group_member_names(group=group)


class TokenOutputSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    scopes = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "user",
            "name",
            "scopes",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "active",
        ]


class TokenIssuedOutputSerializer(TokenOutputSerializer):
    token = serializers.CharField(help_text="The secret: shown in this answer only.")

    class Meta(TokenOutputSerializer.Meta):
        fields = ["token", *TokenOutputSerializer.Meta.fields]
