"""The rules every call passes through, whatever its RPC: a gRPC server interceptor.

Each call of a protected service is authenticated before its method runs, its
request must decode and stay within service.api.limits, and its response is checked
against what the caller may see. RPC methods therefore cannot forget these rules;
they take the caller from current_caller() (the servicer's rpc decorator does that).

Open without credentials: the health service always, server reflection when
CERTSVC_OPEN_REFLECTION is on. Reflection serves the schema only, no data.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from service.api import limits
from service.api.auth import Authenticator
from service.api.status import to_grpc_status
from service.callers import Caller
from service.errors import CertsvcError, InvalidArgument, NotFound, PermissionDenied

logger = logging.getLogger(__name__)

_REFLECTION_SERVICES = frozenset({reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"})
_current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "certsvc_caller", default=None)


def current_caller() -> Caller | None:
    """Return the caller of the call this thread is serving, once the guard admitted it."""
    return _current_caller.get()


class SerializedResponse:
    """A response message already serialized, with what the guard checks about it.

    An RPC method may return one in place of a message, so that a cached response costs
    no message to build or serialize. The guard sends data as it is.
    """

    __slots__ = ("data", "message_type", "app_id", "carries_private_key")

    def __init__(self, data: bytes, message_type: type[Message], *, app_id: str,
                 carries_private_key: bool) -> None:
        self.data = data
        self.message_type = message_type
        """The message class that data is a serialization of."""
        self.app_id = app_id
        """The app that the data belongs to, or an empty string for none."""
        self.carries_private_key = carries_private_key

    def parse(self) -> Message:
        return self.message_type.FromString(self.data)


@dataclasses.dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request that is too large or not a valid protobuf message."""

    error: InvalidArgument


class CallGuard(grpc.ServerInterceptor):
    """Authenticates calls, enforces request limits and checks responses."""

    def __init__(self, authenticator: Authenticator, *, open_reflection: bool) -> None:
        self.authenticator = authenticator
        self.open_services = {health.SERVICE_NAME}
        if open_reflection:
            self.open_services |= _REFLECTION_SERVICES
        # Guarded handlers by method name, built on a method's first call. Only methods
        # that the server has registered get an entry, so the map stays small. Later
        # calls skip the continuation, which is right while this is the only interceptor.
        self._guarded: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation: Callable[[Any], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails
                          ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        guarded = self._guard_handler(handler, method)
        if guarded is not None:
            self._guarded[method] = guarded
        return guarded

    def _guard_handler(self, handler: grpc.RpcMethodHandler,
                       method: str) -> grpc.RpcMethodHandler | None:
        service = method.lstrip("/").partition("/")[0]
        if service in self.open_services:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(handler.unary_unary, method),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=_passing_serialized(handler.response_serializer))
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._guard_stream(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        # No other kinds of method exist; refuse rather than serve one unguarded.
        logger.error("no guard for the streaming shape of method=%s; refusing it", method)
        return None

    def _admit(self, context: grpc.ServicerContext, method: str) -> Caller:
        """Return the authenticated caller, or abort the call."""
        try:
            limits.check_metadata(context.invocation_metadata() or ())
            return self.authenticator.authenticate(context)
        except CertsvcError as error:
            logger.info("call rejected method=%s peer=%s: %s", method, context.peer(), error)
            context.abort_with_status(to_grpc_status(error))
            raise  # abort_with_status raises; this line is never reached

    def _guard_unary(self, behavior: Callable[[Any, grpc.ServicerContext], Any],
                     method: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            caller = self._admit(context, method)
            try:
                if isinstance(request, UndecodableRequest):
                    raise request.error
                limits.check_fields(request)
                check_request_permissions(caller, request)
            except CertsvcError as error:
                logger.info("request rejected method=%s caller=%s: %s", method, caller.name,
                            error)
                context.abort_with_status(to_grpc_status(error))
            reset = _current_caller.set(caller)
            try:
                response = behavior(request, context)
            finally:
                _current_caller.reset(reset)
            try:
                check_response(caller, response)
            except CertsvcError as error:
                reference = uuid.uuid4().hex[:12]
                logger.error("response withheld: it broke a visibility rule method=%s caller=%s "
                             "reference=%s: %s", method, caller.name, reference, error)
                context.abort_with_status(to_grpc_status(error))
            return response

        return guarded

    def _guard_stream(self, behavior: Callable[[Iterator[Any], grpc.ServicerContext], Any],
                      method: str) -> Callable[[Iterator[Any], grpc.ServicerContext], Any]:
        def guarded(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            caller = self._admit(context, method)
            reset = _current_caller.set(caller)
            try:
                yield from behavior(requests, context)
            finally:
                _current_caller.reset(reset)

        return guarded


def _lenient(deserializer: Callable[[bytes], Any] | None
             ) -> Callable[[bytes], Any] | None:
    """Wrap a request deserializer so that bad input becomes UndecodableRequest.

    gRPC answers INTERNAL when a deserializer raises; this way the call answers
    INVALID_ARGUMENT with the reason instead.
    """
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            limits.check_request_size(len(data))
            return deserializer(data)
        except InvalidArgument as error:
            return UndecodableRequest(error)
        except (DecodeError, ValueError, RuntimeError) as error:
            return UndecodableRequest(InvalidArgument(
                f"the request is not a valid protobuf message for this method: {error}"))

    return deserialize


def _passing_serialized(serializer: Callable[[Any], bytes] | None
                        ) -> Callable[[Any], bytes] | None:
    """Wrap a response serializer so that a SerializedResponse is sent as it is."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        if type(response) is SerializedResponse:
            return response.data
        return serializer(response)

    return serialize


def check_request_permissions(caller: Caller, request: Message) -> None:
    """Apply the permission rules that follow from a request's fields alone."""
    if getattr(request, "include_private_key", False) and not caller.may_read_private_keys:
        raise PermissionDenied("this caller may not read private keys; ask without "
                               "include_private_key, or ask the operator for the permission")


def check_response(caller: Caller, response: object) -> None:
    """Raise if a response carries a private key or an app the caller may not see.

    RPC methods already filter by caller; this catches a method that forgot to. A
    SerializedResponse is checked by what it declares about its data.
    """
    if type(response) is SerializedResponse:
        if response.carries_private_key and not caller.may_read_private_keys:
            raise PermissionDenied("this caller may not read private keys")
        if response.app_id and not caller.may_see_app(response.app_id):
            raise NotFound("not found")
        return
    if not isinstance(response, Message):
        return
    for field, value in response.ListFields():
        if field.name == "private_key_pem" and value and not caller.may_read_private_keys:
            raise PermissionDenied("this caller may not read private keys")
        if field.name == "app_id" and value and not caller.may_see_app(value):
            raise NotFound("not found")
        if field.message_type is not None:
            items = value if field.is_repeated else [value]
            for item in items:
                if isinstance(item, Message):
                    check_response(caller, item)
