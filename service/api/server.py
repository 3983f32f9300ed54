"""The gRPC api process: CertificateService with health and server reflection."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service import force_https
from service.api.auth import Authenticator
from service.api.credential_files import CredentialFiles
from service.api.guard import CallGuard
from service.api.servicer import CertificateServicer
from service.backends import Backends
from service.config import DEV_INSECURE_WARNING, ConfigError, Settings
from service.grpc_gen.certsvc.v1 import certsvc_pb2, certsvc_pb2_grpc
from service.metrics import start_metrics_server
from service.trust_bundle import load_trust_anchors
from service.validation.public_suffix import is_public_suffix

logger = logging.getLogger(__name__)

SERVICE_NAME = certsvc_pb2.DESCRIPTOR.services_by_name["CertificateService"].full_name
# Calls in progress get this long to finish after SIGTERM.
SHUTDOWN_GRACE_SECONDS = 10.0
# After SIGTERM the health service reports NOT_SERVING this long before the listener
# closes, so load balancers and clients watching health move away first.
SHUTDOWN_DRAIN_SECONDS = 2.0
# The transport refuses larger messages with RESOURCE_EXHAUSTED; requests between
# service.api.limits.MAX_REQUEST_BYTES and this get INVALID_ARGUMENT.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# The same for metadata: above this the transport refuses the call, and above
# service.api.limits.MAX_METADATA_BYTES the guard does.
MAX_TRANSPORT_METADATA_BYTES = 64 * 1024
RPC_THREADS = 32
# After this long a client connection is asked to reconnect (HTTP/2 GOAWAY); calls in
# progress then get the grace period to finish.
MAX_CONNECTION_AGE_SECONDS = 3600
MAX_CONNECTION_AGE_GRACE_SECONDS = 300


class ApiServer:
    """A started gRPC server with its health servicer, listening on port."""

    def __init__(self, server: grpc.Server, health_servicer: health.HealthServicer,
                 port: int, credential_files: CredentialFiles) -> None:
        self.server = server
        self.health = health_servicer
        self.port = port
        self.credential_files = credential_files

    def stop(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
             drain_seconds: float = 0.0) -> None:
        """Report NOT_SERVING, wait drain_seconds, then stop taking calls and let running
        ones finish within grace_seconds."""
        self.health.enter_graceful_shutdown()
        time.sleep(drain_seconds)
        self.server.stop(grace_seconds).wait()
        self.credential_files.stop()


def create_server(settings: Settings, backends: Backends, credential_files: CredentialFiles,
                  address: str | None = None) -> ApiServer:
    """Build and start the server on address (port 0 picks a free port), authenticating
    callers with credential_files, which it keeps watching until stop().

    Raises ConfigError when the address cannot be bound.
    """
    authenticator = credential_files.authenticator
    credentials = credential_files.server_credentials()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=RPC_THREADS, thread_name_prefix="rpc"),
        interceptors=[CallGuard(authenticator, open_reflection=settings.open_reflection)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_metadata_size", MAX_TRANSPORT_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_TRANSPORT_METADATA_BYTES),
            ("grpc.so_reuseport", 0),
            # A connection authenticated its client certificate once, at its handshake, so
            # connections are renewed for a rotated client CA or server certificate to apply.
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_SECONDS * 1000),
            ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_SECONDS * 1000),
        ],
    )
    certsvc_pb2_grpc.add_CertificateServiceServicer_to_server(
        CertificateServicer(backends, authenticator), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    address = address or settings.grpc_address
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        # grpcio 1.85 raises RuntimeError when it cannot bind the address, and also when
        # its TLS stack rejects the credentials.
        port = 0
    if port == 0:
        also = ("" if credentials is None else
                ", or grpc rejected the TLS files (its log lines above say why)")
        raise ConfigError(f"cannot listen on {address} (CERTSVC_GRPC_ADDRESS): another process "
                          f"may use the port{also}; stop that process or choose another "
                          "address")
    server.start()
    credential_files.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ApiServer(server, health_servicer, port, credential_files)


def log_security_warnings(settings: Settings, authenticator: Authenticator) -> None:
    """Log at start-up how callers authenticate and what is weaker than it should be."""
    if settings.dev_insecure:
        logger.warning(DEV_INSECURE_WARNING)
    tls = settings.tls_cert is not None
    if authenticator.registry.by_token_sha256 and not tls:
        logger.warning("bearer tokens are accepted over plaintext gRPC: anyone who can watch "
                       "the network can copy them. Keep the api inside a private network, or "
                       "set CERTSVC_TLS_CERT and CERTSVC_TLS_KEY to encrypt calls")
    logger.info("api credentials tls=%s mutual_tls=%s token_principals=%d "
                "certificate_principals=%d open_reflection=%s", tls,
                settings.tls_client_ca is not None,
                len(set(authenticator.registry.by_token_sha256.values())),
                len(set(authenticator.registry.by_certificate_name.values())),
                settings.open_reflection)


def serve(settings: Settings) -> None:
    """Run the api until SIGTERM or SIGINT, then shut down gracefully."""
    load_trust_anchors(settings.trust_bundle)  # a bad CERTSVC_TRUST_BUNDLE stops the start
    # Bad callers or TLS files stop the start before any connection is made.
    credential_files = CredentialFiles.load(settings)
    # Parse the Public Suffix List now rather than in the first call that checks a name.
    is_public_suffix("example.com")
    backends = Backends.connect(settings, cache_certificates=True)
    start_metrics_server(settings, "api", backends)
    # Redis may have lost the mirror (a restart, an eviction); Postgres has the truth.
    force_https.rebuild_mirror_quietly(backends.database, backends.redis, backends.keys)
    api = create_server(settings, backends, credential_files)
    log_security_warnings(settings, credential_files.authenticator)
    logger.info("api listening address=%s port=%d", settings.grpc_address, api.port)

    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s; shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stopping.wait()
    # A running CheckDomain may take the whole check deadline.
    api.stop(grace_seconds=max(SHUTDOWN_GRACE_SECONDS, settings.check_deadline_seconds + 5),
             drain_seconds=SHUTDOWN_DRAIN_SECONDS)
    backends.close()
    logger.info("api stopped")
