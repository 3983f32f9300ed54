"""Authentication of gRPC callers."""

from __future__ import annotations

import logging

import grpc

from service.callers import DEVELOPMENT_OPERATOR, Caller
from service.config import Settings
from service.errors import Unauthenticated

logger = logging.getLogger(__name__)


class Authenticator:
    """Turns a call's credentials into a Caller."""

    def __init__(self, settings: Settings) -> None:
        self._dev_insecure = settings.dev_insecure

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        if self._dev_insecure:
            return DEVELOPMENT_OPERATOR
        raise Unauthenticated(
            "this call carries no valid credentials; send an 'authorization: Bearer <token>' "
            "header or a client certificate"
        )
