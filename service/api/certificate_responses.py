"""GetCertificate's responses, served from the api's cache of serialized responses.

A cache hit costs a dictionary lookup and a visibility check: no Postgres query, no
protobuf message to build or serialize. A miss reads Postgres
(service.certificates.find_serving, in one query with the other misses of the moment),
serializes the response and caches it when only the hostname's own rows decide it.
"""

from __future__ import annotations

import datetime
import time

from service import certificates
from service.api.guard import SerializedResponse
from service.api.messages import certificate_message
from service.backends import Backends
from service.callers import Caller
from service.certificate_cache import CachedCertificate, CertificateCache
from service.certificates import CertificateView
from service.domains import parse_hostname
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.sealed_columns import certificate_key_associated_data
from service.store.records import CertificateRecord
from service.validation.hostname import Hostname


def get_certificate_response(backends: Backends, caller: Caller, hostname_text: str,
                             include_private_key: bool) -> SerializedResponse:
    """Return the serialized certsvc.v1.Certificate that serves a hostname now.

    Raises PermissionDenied when the caller may not read the key it requests, and
    NotFound when nothing the caller may see serves the hostname.
    """
    certificates.check_private_key_permission(caller, include_private_key)
    cache = backends.certificate_cache
    hostname = None
    cached = None
    if cache is not None:
        cached, hostname = _lookup(cache, hostname_text)
    if cached is not None and caller.may_see_app(cached.app_id):
        return _from_cache(backends, cached, include_private_key)
    # A miss, or an entry of an app the caller may not see: then another candidate that
    # the caller may see (the wildcard one label up) could serve it, so ask Postgres.
    return _from_database(backends, caller, hostname or parse_hostname(hostname_text),
                          include_private_key)


def _lookup(cache: CertificateCache, hostname_text: str
            ) -> tuple[CachedCertificate | None, Hostname | None]:
    """Find a hostname's entry, returning the parsed hostname too when it was parsed."""
    # The cache contains normal forms only, so a hostname already in normal form is
    # looked up before it is normalized: normalizing a normal form returns it unchanged.
    cached = cache.get(hostname_text)
    if cached is not None:
        return cached, None
    hostname = parse_hostname(hostname_text)
    if hostname.ascii != hostname_text:
        cached = cache.get(hostname.ascii)
    return cached, hostname


def _from_cache(backends: Backends, cached: CachedCertificate,
                include_private_key: bool) -> SerializedResponse:
    if not include_private_key:
        return SerializedResponse(cached.response, pb.Certificate, app_id=cached.app_id,
                                  carries_private_key=False)
    # Cached entries are never platform hostnames, so the key is sealed to its domain.
    key_pem = certificates.unseal_key_pem(backends, cached.certificate_id,
                                          cached.private_key_sealed,
                                          certificate_key_associated_data(cached.domain_id),
                                          cached.hostname)
    return _with_private_key(cached.response, key_pem, cached.app_id)


def _from_database(backends: Backends, caller: Caller, hostname: Hostname,
                   include_private_key: bool) -> SerializedResponse:
    cache = backends.certificate_cache
    version = cache.version() if cache is not None else 0
    serving = certificates.find_serving(backends, caller, hostname)
    record = serving.certificate
    now = datetime.datetime.now(datetime.timezone.utc)
    view = CertificateView(record, "", certificates.certificate_warnings(record, now))
    response = certificate_message(view).SerializeToString()

    if cache is not None and certificates.cacheable(serving, hostname):
        cache.put(CachedCertificate(
            hostname=serving.hostname, app_id=serving.app_id, domain_id=record.domain_id,
            certificate_id=record.id, private_key_sealed=record.private_key_sealed,
            response=response, fresh_until=_fresh_until(record, now)), version)

    if not include_private_key:
        return SerializedResponse(response, pb.Certificate, app_id=serving.app_id,
                                  carries_private_key=False)
    key_pem = certificates.serving_key_pem(backends, caller, serving)
    return _with_private_key(response, key_pem, serving.app_id)


def _with_private_key(response: bytes, key_pem: str, app_id: str) -> SerializedResponse:
    # A response without private_key_pem followed by a message with only that field
    # parses as one message with both: concatenated protobuf messages merge.
    key_field = pb.Certificate(private_key_pem=key_pem).SerializeToString()
    return SerializedResponse(response + key_field, pb.Certificate, app_id=app_id,
                              carries_private_key=True)


def _fresh_until(record: CertificateRecord, now: datetime.datetime) -> float:
    """Return the time.monotonic() until which the warnings computed at now stay current."""
    change_at = certificates.warnings_change_at(record, now)
    if change_at is None:
        return float("inf")
    return time.monotonic() + (change_at - now).total_seconds()
