"""Expiry warnings and the expiry metric for the platform's wildcard certificate."""

from __future__ import annotations

import datetime
import uuid

from service.metrics import FleetCollector
from service.store import platform_certificates as platform_rows
from worker.expiry_warnings import warn_expiring_certificates
from worker.scheduler import SchedulerContext


def _install(backends, not_after: datetime.datetime) -> uuid.UUID:
    certificate_id = uuid.uuid4()
    with backends.database.transaction() as connection:
        platform_rows.insert_platform_certificate(connection, platform_rows.NewPlatformCertificate(
            id=certificate_id, platform_domain=f"p{certificate_id.hex[:8]}.example.org",
            hostnames=["*.platform.example.org"], chain_pem="", private_key_sealed=b"\x01",
            key_type="ECDSA-P256", not_before=not_after - datetime.timedelta(days=90),
            not_after=not_after, issuer="CN=test", serial_number="01",
            sha256_fingerprint="00"))
    return certificate_id


def test_platform_certificate_warned_once(settings, backends, caplog) -> None:
    certificate_id = _install(backends, datetime.datetime.now(datetime.timezone.utc)
                              + datetime.timedelta(days=5))
    context = SchedulerContext(settings, backends, "test-platform-expiry")

    warn_expiring_certificates(context)
    warn_expiring_certificates(context)

    with backends.database.transaction() as connection:
        thresholds = connection.execute(
            "SELECT days FROM platform_certificate_expiry_warnings "
            "WHERE platform_certificate_id = %s", (certificate_id,)).fetchall()
    assert thresholds == [(7,)]
    logged = [record.getMessage() for record in caplog.records
              if "platform certificate expiring" in record.getMessage()
              and str(certificate_id) in record.getMessage()]
    assert len(logged) == 1
    assert "certsvc platform-cert" in logged[0]


def test_platform_certificate_in_expiry_metric(backends) -> None:
    _install(backends, datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2))

    families = list(FleetCollector(backends).collect())

    samples = [sample for family in families if family.name.endswith("days_to_expiry")
               for sample in family.samples if sample.labels.get("source") == "PLATFORM"]
    counts = {sample.labels["days_to_expiry"]: sample.value for sample in samples}
    assert counts.get("0-1", 0) >= 1
