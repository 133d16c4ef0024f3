"""The pub/sub REST API: publish on a topic, list the topics with subscribers."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_credential, scope_check
from accounts.scopes import PUBSUB
from kvsite.openapi import errors, path_param
from kvsite.parsers import request_json

from ..services import message_publish, publish_body_parse, topic_access_check
from ..subscribers import topics_cluster

TOPIC_PARAM = path_param("topic", description="Named like a key.", example="news")


class TopicPublishApi(APIView):
    """Publish one message on a topic, to its subscribers on every node."""

    permission_classes = [AllowAny]  # topic_access_check decides

    class InputSerializer(serializers.Serializer):
        data = serializers.JSONField(help_text="Any JSON value.")

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()

    @extend_schema(
        parameters=[TOPIC_PARAM],
        request=InputSerializer,
        responses={202: OutputSerializer, **errors(400, 403, 413)},
        examples=[
            OpenApiExample("A message", value={"data": {"hello": "world"}}, request_only=True),
        ],
        operation_id="pubsub_publish",
        description="A message of at most KVS_PUBSUB_MAX_BYTES (default 256 KiB; larger: 413).",
    )
    def post(self, request, topic):
        topic_access_check(request, topic)
        message = message_publish(topic=topic, data=publish_body_parse(request_json(request)))
        return Response({"id": message["id"]}, status=202)


class TopicListApi(APIView):
    """The topics that the caller may use and that have subscribers, counted on every node; the
    live peers that did not answer within KVS_GATHER_TIMEOUT are named `unreachable`."""

    permission_classes = [AllowAny]  # scope_check decides

    class OutputSerializer(serializers.Serializer):
        class TopicSerializer(serializers.Serializer):
            name = serializers.CharField()
            subscribers = serializers.IntegerField()

        topics = TopicSerializer(many=True)
        unreachable = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: OutputSerializer, **errors(403)}, operation_id="pubsub_topics")
    def get(self, request):
        scope_check(request, PUBSUB)
        credential = request_credential(request)
        prefix = credential.prefix if credential is not None else None
        view = topics_cluster(prefix=prefix)
        return Response(
            {
                "topics": [{"name": t, "subscribers": n} for t, n in view.topics],
                "unreachable": view.unreachable,
            }
        )
