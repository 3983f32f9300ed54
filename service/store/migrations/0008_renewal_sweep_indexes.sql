-- Indexes of the renewal sweep, so that its queries read the due rows and stop instead
-- of scanning every certificate and domain.

-- From a certificate to the domain it serves (domains.certificate_id).
CREATE INDEX domains_certificate_id ON domains (certificate_id);

-- Let's Encrypt certificates by their next renewal information fetch, never-fetched
-- ones (NULL) first: the order in which the sweep fetches renewal information.
CREATE INDEX certificates_lets_encrypt_renewal_info_due
    ON certificates ((coalesce(renewal_info_next_check_at, '-infinity'::timestamptz)))
    WHERE source = 'LETS_ENCRYPT';

-- Issuances that failed, by when: the sweep waits after a recent failure.
CREATE INDEX issuances_failed_updated_at ON issuances (updated_at) WHERE state = 'FAILED';
