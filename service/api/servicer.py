"""The certsvc.v1.CertificateService servicer: authenticate, call the operation, convert."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2

from service import domain_check, domains, events, force_https, issuance, uploads
from service.api import messages
from service.api.auth import Authenticator
from service.api.certificate_responses import get_certificate_response
from service.api.guard import SerializedResponse, current_caller
from service.api.status import status_code, to_grpc_status
from service.backends import Backends
from service.callers import Caller
from service.errors import CertsvcError, InvalidArgument
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc

logger = logging.getLogger(__name__)

Response = TypeVar("Response")


# Edge routers ask GetCertificate for every hostname that reaches them, scanners' made-up
# ones included, so NOT_FOUND is routine and logged at DEBUG level only.
_LOG_BY_CODE = {
    grpc.StatusCode.UNAVAILABLE: logger.warning,
    grpc.StatusCode.NOT_FOUND: logger.debug,
}


def rpc(method: Callable[..., Response]) -> Callable[..., Response]:
    """Run the method for the caller that the guard admitted; turn errors into gRPC statuses.

    Outside the guard (a server built without service.api.guard.CallGuard) the
    decorator authenticates the call itself and parses a SerializedResponse back into
    its message, because only the guard's serializer sends one as it is.
    """

    @functools.wraps(method)
    def wrapper(self: CertificateServicer, request: Any, context: grpc.ServicerContext) -> Response:
        try:
            caller = current_caller()
            if caller is not None:
                return method(self, request, caller)
            response = method(self, request, self.authenticator.authenticate(context))
            return response.parse() if type(response) is SerializedResponse else response
        except CertsvcError as error:
            code = status_code(error)
            log = _LOG_BY_CODE.get(code, logger.info)
            log("%s failed code=%s: %s", method.__name__, code.name, error)
            context.abort_with_status(to_grpc_status(error))
            raise  # abort_with_status raises; this line is never reached
        except Exception:
            reference = uuid.uuid4().hex[:12]
            logger.exception("%s failed with an unexpected error reference=%s",
                             method.__name__, reference)
            context.abort(grpc.StatusCode.INTERNAL,
                          f"internal error; the server log has details under reference {reference}")
            raise

    return wrapper


class CertificateServicer(certsvc_pb2_grpc.CertificateServiceServicer):
    def __init__(self, backends: Backends, authenticator: Authenticator) -> None:
        self.backends = backends
        self.authenticator = authenticator

    @rpc
    def AddDomain(self, request: pb.AddDomainRequest, caller: Caller) -> pb.Domain:
        domain = domains.add_domain(self.backends, caller, request.hostname, request.app_id)
        return messages.domain_message(domain)

    @rpc
    def GetDomain(self, request: pb.GetDomainRequest, caller: Caller) -> pb.Domain:
        return messages.domain_message(domains.get_domain(self.backends, caller, request.hostname))

    @rpc
    def ListDomains(self, request: pb.ListDomainsRequest, caller: Caller) -> pb.ListDomainsResponse:
        rows, next_token = domains.list_domains(self.backends, caller, app_id=request.app_id,
                                                page_size=request.page_size,
                                                page_token=request.page_token)
        return pb.ListDomainsResponse(domains=[messages.domain_message(row) for row in rows],
                                      next_page_token=next_token)

    @rpc
    def RemoveDomain(self, request: pb.RemoveDomainRequest, caller: Caller) -> empty_pb2.Empty:
        domains.remove_domain(self.backends, caller, request.hostname)
        return empty_pb2.Empty()

    @rpc
    def SetForceHttps(self, request: pb.SetForceHttpsRequest, caller: Caller) -> pb.Domain:
        if not request.HasField("force_https"):
            # Leaving the field out would otherwise read as false and switch the redirect off.
            raise InvalidArgument.for_field(
                "force_https", "force_https is missing; send true to turn the redirect on "
                "or false to turn it off")
        domain = force_https.set_force_https(self.backends, caller, request.hostname,
                                             request.force_https)
        return messages.domain_message(domain)

    @rpc
    def CheckDomain(self, request: pb.CheckDomainRequest, caller: Caller) -> pb.DomainCheck:
        result = domain_check.check_domain(self.backends, caller, request.hostname)
        return messages.domain_check_message(result)

    @rpc
    def RequestCertificate(self, request: pb.RequestCertificateRequest,
                           caller: Caller) -> pb.Issuance:
        record = issuance.request_certificate(self.backends, caller, request.hostname)
        return messages.issuance_message(record)

    @rpc
    def GetIssuance(self, request: pb.GetIssuanceRequest, caller: Caller) -> pb.Issuance:
        return messages.issuance_message(issuance.get_issuance(self.backends, caller, request.id))

    @rpc
    def UploadCertificate(self, request: pb.UploadCertificateRequest,
                          caller: Caller) -> pb.Certificate:
        view = uploads.upload_certificate(self.backends, caller, request.hostname,
                                          request.certificate_chain_pem, request.private_key_pem,
                                          request.passphrase)
        return messages.certificate_message(view)

    @rpc
    def GetCertificate(self, request: pb.GetCertificateRequest,
                       caller: Caller) -> SerializedResponse:
        return get_certificate_response(self.backends, caller, request.hostname,
                                        request.include_private_key)

    @rpc
    def ListDomainEvents(self, request: pb.ListDomainEventsRequest,
                         caller: Caller) -> pb.ListDomainEventsResponse:
        rows, next_token = events.list_domain_events(self.backends, caller, request.hostname,
                                                     page_size=request.page_size,
                                                     page_token=request.page_token)
        return pb.ListDomainEventsResponse(events=[messages.event_message(row) for row in rows],
                                           next_page_token=next_token)

    @rpc
    def Ping(self, request: pb.PingRequest, caller: Caller) -> pb.PingResponse:
        return pb.PingResponse()
