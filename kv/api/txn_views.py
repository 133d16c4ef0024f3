"""`POST /api/v1/txn`: compare, then apply one branch, through kv.txn."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import scopes
from accounts.permissions import key_scope_check
from kvsite.exceptions import InvalidInput
from kvsite.openapi import errors
from kvsite.parsers import request_json

from ..callers import request_caller
from ..txn import DELETE, GET, PUT, OpResult, compare_parse, op_parse, txn_apply
from .import_views import value_text
from .serializers import entry_out, put_out

SCOPES = {PUT: scopes.WRITE, DELETE: scopes.DELETE, GET: scopes.READ}


def _result(result: OpResult) -> dict:
    key = result.op.key
    if result.op.op == GET:
        return entry_out(result.entry) if result.entry is not None else {"key": key, "found": False}
    if result.op.op == PUT:
        return {**put_out(result.entry), "created": result.created}
    if result.entry is None:
        return {"key": key, "deleted": False}
    return {**put_out(result.entry), "deleted": True}


class TxnApi(APIView):
    """Compare, then apply the success or the failure branch atomically on this node."""

    permission_classes = [AllowAny]  # key_scope_check decides, per op

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 413, 503)},
        examples=[
            OpenApiExample(
                "Create a key only if absent",
                value={
                    "compare": [{"key": "app/lock", "absent": True}],
                    "success": [{"op": "put", "key": "app/lock", "value": "me", "ttl": "30s"}],
                    "failure": [{"op": "get", "key": "app/lock"}],
                },
                request_only=True,
            )
        ],
        operation_id="kv_txn",
    )
    def post(self, request):
        body = request_json(request)
        if not isinstance(body, dict) or set(body) - {"compare", "success", "failure"}:
            raise InvalidInput(
                'The body is {"compare": [...], "success": [...], "failure": [...]}.'
            )
        parts = {name: body.get(name, []) for name in ("compare", "success", "failure")}
        if not all(isinstance(part, list) for part in parts.values()):
            raise InvalidInput("compare, success and failure are lists.")
        compare = [compare_parse(c, value_text=value_text) for c in parts["compare"]]
        success = [op_parse(o, value_text=value_text) for o in parts["success"]]
        failure = [op_parse(o, value_text=value_text) for o in parts["failure"]]
        for key, scope in [(c.key, scopes.READ) for c in compare] + [
            (op.key, SCOPES[op.op]) for op in [*success, *failure]
        ]:
            try:
                key_scope_check(request, scope, key)
            except PermissionDenied as denied:
                raise PermissionDenied(f"{key!r}: {denied.detail}") from None
        succeeded, results = txn_apply(
            compare=compare, success=success, failure=failure, caller=request_caller(request)
        )
        return Response({"succeeded": succeeded, "results": [_result(r) for r in results]})
