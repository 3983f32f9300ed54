-- Renewal timing, resumable orders, the CA rate-limit ledger, expiry warnings and the
-- claims that keep several scheduler processes from running the same periodic job.

-- When the scheduler renews a Let's Encrypt certificate: two thirds of its lifetime
-- plus jitter, or a time in the CA's ACME Renewal Information (RFC 9773) window.
ALTER TABLE certificates ADD COLUMN renew_after timestamptz;
-- When the CA's renewalInfo resource is to be fetched again; NULL: not fetched yet.
ALTER TABLE certificates ADD COLUMN renewal_info_next_check_at timestamptz;

UPDATE certificates SET renew_after = not_before + (not_after - not_before) * 2 / 3
WHERE source = 'LETS_ENCRYPT';

CREATE INDEX certificates_lets_encrypt_renew_after ON certificates (renew_after)
    WHERE source = 'LETS_ENCRYPT';
CREATE INDEX certificates_not_after ON certificates (not_after);

-- The private key of the CSR of the issuance's current order, sealed like a
-- certificate's key, so that a later attempt can finalize the same order. It is
-- cleared when the issuance finishes.
ALTER TABLE issuances ADD COLUMN order_key_sealed bytea;

-- Issuances in flight, oldest change first: what the lost-job recovery reads.
CREATE INDEX issuances_in_flight_updated_at ON issuances (updated_at)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED');

-- One row per new order placed and per failed validation, so that certsvc can wait
-- before it would exceed a CA's rate limits. Rows older than the longest limit
-- window are pruned by the scheduler.
CREATE TABLE acme_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    directory_url text NOT NULL,
    account_id uuid,
    kind text NOT NULL CHECK (kind IN ('order', 'failed_validation')),
    hostname text NOT NULL,
    -- The registered domain of hostname by the Public Suffix List, e.g. example.co.uk.
    registered_domain text NOT NULL,
    -- An order for a domain that already holds a Let's Encrypt certificate.
    renewal boolean NOT NULL DEFAULT false,
    issuance_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX acme_ledger_registered_domain ON acme_ledger
    (directory_url, kind, registered_domain, created_at);
CREATE INDEX acme_ledger_hostname ON acme_ledger (directory_url, kind, hostname, created_at);
CREATE INDEX acme_ledger_account ON acme_ledger (account_id, kind, created_at);
CREATE INDEX acme_ledger_created_at ON acme_ledger (created_at);

-- Expiry warnings already sent, one per certificate and threshold (14, 7, 1 days;
-- 0 once it has expired).
CREATE TABLE certificate_expiry_warnings (
    certificate_id uuid NOT NULL REFERENCES certificates (id) ON DELETE CASCADE,
    days integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (certificate_id, days)
);

-- The next run of each periodic job of `certsvc scheduler`. A scheduler process runs
-- a job only after it moved next_run_at forward in one statement, so that several
-- scheduler processes run each job once per interval.
CREATE TABLE scheduler_tasks (
    name text PRIMARY KEY,
    next_run_at timestamptz NOT NULL,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    last_error text NOT NULL DEFAULT '',
    last_run_by text NOT NULL DEFAULT ''
);
