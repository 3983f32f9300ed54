"""The warnings a Domain message carries: conditions that need the user's attention."""

from __future__ import annotations

import datetime

from service import force_https
from service.store.records import DomainRecord

# Certificates that will not be renewed in time are announced this long before expiry.
EXPIRY_WARNING_WINDOW = datetime.timedelta(days=14)


def domain_warnings(domain: DomainRecord, now: datetime.datetime | None = None) -> list[str]:
    """Return one sentence per condition to fix, in a stable order."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    warnings = []
    if domain.serving_wildcard:
        warnings.append(f"{domain.hostname} has no certificate of its own; the certificate of "
                        f"the wildcard domain {domain.serving_wildcard} serves it")
    redirect_warning = force_https.not_effective_warning(domain, now)
    if redirect_warning:
        warnings.append(redirect_warning)
    warnings.extend(renewal_warnings(domain, now))
    return warnings


def renewal_warnings(domain: DomainRecord, now: datetime.datetime) -> list[str]:
    """Return sentences about an expiring certificate and a renewal that keeps failing."""
    warnings = []
    not_after = domain.certificate_not_after
    if not_after is not None:
        left = not_after - now
        expiry = f"{not_after:%Y-%m-%d %H:%M} UTC"
        if left <= datetime.timedelta(0):
            warnings.append(f"the certificate of {domain.hostname} expired on {expiry}; "
                            "browsers reject it")
        elif left <= EXPIRY_WARNING_WINDOW and _not_renewing(domain, now):
            when = f"in {left.days} days" if left.days >= 1 else "in less than a day"
            if domain.certificate_source == "PLATFORM":
                warnings.append(f"the platform certificate serving {domain.hostname} expires "
                                f"on {expiry} ({when}); an operator installs a new one with "
                                "`certsvc platform-cert`")
            elif domain.certificate_source == "LETS_ENCRYPT":
                warnings.append(f"the certificate of {domain.hostname} expires on {expiry} "
                                f"({when}) and has not been renewed yet; see last_error and "
                                "ListDomainEvents for the cause")
            else:
                warnings.append(f"the certificate of {domain.hostname} expires on {expiry} "
                                f"({when}) and certsvc does not renew it: upload a new one, or "
                                "call RequestCertificate to switch to Let's Encrypt")
    # A hostname whose own request failed is ACTIVE while a wildcard domain's certificate
    # serves it. A PENDING one may carry a self-check message, not a failed request.
    failed_but_served = domain.status == "FAILED" and domain.status_at(now) == "ACTIVE"
    if (domain.status == "ACTIVE" or failed_but_served) and domain.last_error:
        warnings.append(_failed_request_warning(domain))
    return warnings


def _failed_request_warning(domain: DomainRecord) -> str:
    """Describe the failed issuance of a domain that a certificate still serves."""
    # certificate_source is the wildcard certificate's for a hostname that it serves.
    if domain.serving_wildcard:
        return (f"requesting a certificate of its own for {domain.hostname} failed, so the "
                f"certificate of {domain.serving_wildcard} still serves it: "
                f"{domain.last_error}")
    if domain.certificate_source == "LETS_ENCRYPT":
        return f"renewing the certificate of {domain.hostname} failed: {domain.last_error}"
    if domain.certificate_source == "CUSTOM":
        return (f"requesting a Let's Encrypt certificate for {domain.hostname} failed, so the "
                f"uploaded certificate still serves it: {domain.last_error}")
    return f"requesting a certificate for {domain.hostname} failed: {domain.last_error}"


def _not_renewing(domain: DomainRecord, now: datetime.datetime) -> bool:
    if domain.certificate_source != "LETS_ENCRYPT":
        return True
    renew_after = domain.certificate_renew_after
    return renew_after is None or renew_after <= now
