"""Renewal sweep and expiry warnings on back-dated certificates, with a real Pebble."""

from __future__ import annotations

import datetime
import signal
import uuid

import pytest
from prometheus_client import REGISTRY

from service.backends import Backends
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from stacks import isolated_stack
from worker.expiry_warnings import warn_expiring_certificates
from worker.renewal import renew_due_certificates
from worker.scheduler import SchedulerContext

pytestmark = pytest.mark.pebble


def test_sweep_renews_due_certificates_only(tmp_path) -> None:
    names = {label: f"renew-{label}-{uuid.uuid4().hex[:8]}.example.com"
             for label in ("due", "later", "upload", "overdue")}
    with isolated_stack(tmp_path, workers=1, scheduler=False) as deployment:
        first_ids = deployment.add_and_request(list(names.values()))
        assert set(deployment.wait_until_final(first_ids).values()) == {"SUCCEEDED"}
        deployment.processes.stop("worker-1", sig=signal.SIGTERM)
        old = {label: deployment.stub.GetCertificate(pb.GetCertificateRequest(hostname=name))
               for label, name in names.items()}
        # Back-date the rows. "due" is past its renewal time. "upload" becomes an
        # uploaded certificate that expires in 5 days. "overdue" should have renewed
        # long ago and expires within a day. "later" stays as issued.
        deployment.query(
            "UPDATE certificates SET renew_after = now() - interval '1 minute' WHERE id = %s "
            "RETURNING id", uuid.UUID(old["due"].id))
        deployment.query(
            "UPDATE certificates SET source = 'CUSTOM', renew_after = now() - interval '1 day', "
            "not_after = now() + interval '5 days' WHERE id = %s RETURNING id",
            uuid.UUID(old["upload"].id))
        deployment.query(
            "UPDATE certificates SET renew_after = now() - interval '10 days', "
            "not_after = now() + interval '20 hours' WHERE id = %s RETURNING id",
            uuid.UUID(old["overdue"].id))

        settings = deployment.settings()
        backends = Backends.connect(settings)
        context = SchedulerContext(settings, backends, "test-scheduler")
        try:
            seven_days_before = _expiry_warnings("7")
            queued = renew_due_certificates(context)
            in_flight = dict(deployment.query(
                "SELECT hostname, state FROM issuances WHERE state <> 'SUCCEEDED'"))
            serving_during = deployment.stub.GetCertificate(
                pb.GetCertificateRequest(hostname=names["due"]))
            domain_during = deployment.stub.GetDomain(pb.GetDomainRequest(hostname=names["due"]))
            warned = warn_expiring_certificates(context)
            warned_again = warn_expiring_certificates(context)
            seven_days_after = _expiry_warnings("7")
            upload_domain = deployment.stub.GetDomain(
                pb.GetDomainRequest(hostname=names["upload"]))

            deployment.start_workers(1, first=2)
            renewal_ids = [row[0] for row in deployment.query(
                "SELECT id::text FROM issuances WHERE state <> 'SUCCEEDED'")]
            final = deployment.wait_until_final(renewal_ids)
            queued_after = renew_due_certificates(context)
        finally:
            backends.close()

        serving_after = deployment.stub.GetCertificate(
            pb.GetCertificateRequest(hostname=names["due"]))
        warnings = dict(deployment.query(
            "SELECT d.hostname, e.message FROM events e JOIN domains d ON d.id = e.domain_id "
            "WHERE e.type = 'CERTIFICATE_EXPIRING'"))
        old_rows = deployment.query("SELECT count(*) FROM certificates WHERE id = %s",
                                    uuid.UUID(old["due"].id))[0][0]
        renewal_info_checks = deployment.query(
            "SELECT count(*) FROM certificates WHERE renewal_info_next_check_at IS NOT NULL")[0][0]
        new_renew_after = deployment.query(
            "SELECT renew_after, not_before, not_after FROM certificates WHERE id = %s",
            uuid.UUID(serving_after.id))[0]

    assert queued == 2
    assert in_flight == {names["due"]: "QUEUED", names["overdue"]: "QUEUED"}
    assert serving_during.id == old["due"].id
    assert domain_during.status == pb.Domain.ACTIVE
    assert warned == 2
    assert seven_days_after - seven_days_before == 1
    assert warned_again == 0
    assert "within 7 days" in warnings[names["upload"]]
    assert "does not renew uploaded certificates" in warnings[names["upload"]]
    assert "within 1 day," in warnings[names["overdue"]]
    assert names["due"] not in warnings
    assert names["later"] not in warnings
    assert any("does not renew" in text for text in upload_domain.warnings)
    assert sorted(final.values()) == ["SUCCEEDED", "SUCCEEDED"]
    assert serving_after.id != old["due"].id
    assert old_rows == 1
    assert queued_after == 0
    assert renewal_info_checks == 0
    renew_after, not_before, not_after = new_renew_after
    lifetime = not_after - not_before
    assert abs(renew_after - (not_before + lifetime * 2 / 3)) <= lifetime * 0.02 + \
        datetime.timedelta(seconds=1)


def _expiry_warnings(days: str) -> float:
    return REGISTRY.get_sample_value("certsvc_expiry_warnings_total", {"days": days}) or 0.0
