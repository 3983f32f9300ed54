"""Conversion of store records into certsvc.v1 protobuf messages."""

from __future__ import annotations

import datetime

from google.protobuf import timestamp_pb2

from service import force_https
from service.certificates import CertificateView
from service.domain_warnings import domain_warnings
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.store.records import DomainRecord, EventRecord, IssuanceRecord
from worker.selfcheck import CheckResult

_SOURCES = {None: pb.NONE, "LETS_ENCRYPT": pb.LETS_ENCRYPT, "CUSTOM": pb.CUSTOM,
            "PLATFORM": pb.PLATFORM}


def timestamp(value: datetime.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def domain_message(domain: DomainRecord) -> pb.Domain:
    return pb.Domain(
        hostname=domain.hostname,
        unicode_hostname=domain.unicode_hostname,
        app_id=domain.app_id,
        status=pb.Domain.Status.Value(domain.effective_status),
        force_https=domain.force_https,
        force_https_effective=force_https.redirect_effective(domain),
        wildcard=domain.wildcard,
        certificate_source=_SOURCES[domain.certificate_source],
        certificate_not_after=timestamp(domain.certificate_not_after),
        last_error=domain.last_error,
        warnings=domain_warnings(domain),
        created_at=timestamp(domain.created_at),
        updated_at=timestamp(domain.updated_at),
    )


def issuance_message(issuance: IssuanceRecord) -> pb.Issuance:
    return pb.Issuance(
        id=str(issuance.id),
        hostname=issuance.hostname,
        state=pb.Issuance.State.Value(issuance.state),
        attempt=issuance.attempt,
        error=issuance.error,
        next_attempt_at=timestamp(issuance.next_attempt_at),
        certificate_id=str(issuance.certificate_id) if issuance.certificate_id else "",
        created_at=timestamp(issuance.created_at),
        updated_at=timestamp(issuance.updated_at),
    )


def certificate_message(view: CertificateView) -> pb.Certificate:
    record = view.record
    return pb.Certificate(
        id=str(record.id),
        hostnames=record.hostnames,
        source=_SOURCES[record.source],
        chain_pem=record.chain_pem,
        private_key_pem=view.private_key_pem,
        not_before=timestamp(record.not_before),
        not_after=timestamp(record.not_after),
        issuer=record.issuer,
        serial_number=record.serial_number,
        sha256_fingerprint=record.sha256_fingerprint,
        key_type=record.key_type,
        warnings=view.warnings,
        created_at=timestamp(record.created_at),
    )


def domain_check_message(result: CheckResult) -> pb.DomainCheck:
    return pb.DomainCheck(
        ok=result.ok,
        url=result.url,
        hops=[pb.HttpHop(url=hop.url, status=hop.status, address=hop.address, error=hop.error)
              for hop in result.hops],
        message=result.message,
        warnings=result.warnings,
        checked_at=timestamp(result.checked_at),
        final_url=result.final_url,
    )


def event_message(event: EventRecord) -> pb.DomainEvent:
    return pb.DomainEvent(
        time=timestamp(event.created_at),
        type=event.type,
        message=event.message,
        issuance_id=str(event.issuance_id) if event.issuance_id else "",
    )
